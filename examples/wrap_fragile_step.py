"""Wrap the fragile step of an existing LangGraph agent graph in `maker_node`.

The graph: an LLM labels a support ticket, then a router sends the ticket to a
queue. The labelling model is right 80 % of the time (a simulated chat model,
so this runs offline). We run a few hundred tickets through the graph as it
is, then again with the labelling node replaced by
`maker_node(model, k=3, ...)` — nothing else in the graph changes — and print
both accuracies next to the scaling law's prediction.

Run: `python examples/wrap_fragile_step.py`
"""

from __future__ import annotations

import asyncio
import random
from typing import Any, TypedDict

from langchain_core.messages import HumanMessage
from langgraph.graph import END, START, StateGraph

from maker_graph.graph import maker_node
from maker_graph.red_flags import max_output_tokens
from maker_graph.sampling import message_text
from maker_graph.scaling import p_step
from maker_graph.testing import ErrorModel, SimulatedChatModel

LABELS = ["billing", "bug", "account", "other"]
TEMPLATES = {
    "billing": [
        "I was charged twice for order {n}",
        "Refund for invoice {n} please",
        "Why is my bill {n} dollars higher this month?",
    ],
    "bug": [
        "The app crashes when I open report {n}",
        "Export {n} fails with an error",
        "Button {n} does nothing on Android",
    ],
    "account": [
        "I cannot log in to account {n}",
        "Reset the password of user {n}",
        "Please delete my account {n}",
    ],
    "other": [
        "Do you have an office in city {n}?",
        "Who won the contest {n}?",
        "Can I suggest feature {n}?",
    ],
}
TICKETS = 300


class TicketState(TypedDict, total=False):
    ticket: str
    label: str
    queue: str


def make_tickets(n: int, seed: int = 3) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        label = rng.choice(LABELS)
        out.append((rng.choice(TEMPLATES[label]).format(n=i), label))
    return out


TRUTH = dict(make_tickets(TICKETS))


def oracle(messages: list[Any]) -> str:
    """The right label for the ticket in the prompt (the simulated model errs around it)."""
    ticket = message_text(messages[-1]).split("Ticket: ", 1)[1]
    return TRUTH[ticket]


def prompt(inputs: dict[str, Any]) -> list[Any]:
    return [
        HumanMessage(f"Label this ticket as one of {', '.join(LABELS)}. Ticket: {inputs['ticket']}")
    ]


MODEL = SimulatedChatModel(
    oracle=oracle, choices=LABELS, errors=ErrorModel(error_rate=0.2, rivals=1, seed=11)
)


# --------------------------------------------------------------------- the existing graph


async def classify(state: TicketState) -> dict[str, Any]:
    """The original, fragile step: one model call."""
    reply = await MODEL.ainvoke(prompt({"ticket": state["ticket"]}))
    return {"label": message_text(reply).strip()}


def route(state: TicketState) -> str:
    return {"billing": "finance", "bug": "engineering", "account": "support"}.get(
        state["label"], "triage"
    )


def build(classifier: Any) -> Any:
    builder = StateGraph(TicketState)
    builder.add_node("classify", classifier)
    for queue in ("finance", "engineering", "support", "triage"):
        builder.add_node(queue, lambda s, q=queue: {"queue": q})
        builder.add_edge(queue, END)
    builder.add_edge(START, "classify")
    builder.add_conditional_edges(
        "classify", route, ["finance", "engineering", "support", "triage"]
    )
    return builder.compile()


async def accuracy(graph: Any) -> float:
    limit = asyncio.Semaphore(50)

    async def one(ticket: str) -> bool:
        async with limit:
            out = await graph.ainvoke({"ticket": ticket})
        return bool(out["label"] == TRUTH[ticket])

    results = await asyncio.gather(*[one(t) for t in TRUTH])
    return sum(results) / len(results)


async def main() -> None:
    single = await accuracy(build(classify))
    # The only change: the classify node is now voted (k=3), red-flag guarded
    # (answers over 20 tokens are discarded) and budgeted (at most 30 samples).
    voted_node = maker_node(
        MODEL,
        k=3,
        prompt=prompt,
        input_keys=["ticket"],
        output_key="label",
        red_flags=[max_output_tokens(20)],
        max_samples=30,
    )
    voted = await accuracy(build(voted_node))
    print(f"tickets: {TICKETS}")
    print(f"single-sample accuracy: {single:.1%}")
    print(
        f"voted accuracy (k=3): {voted:.1%}   (scaling law p_step(0.8, 3) = {p_step(0.8, 3):.1%})"
    )


if __name__ == "__main__":
    asyncio.run(main())
