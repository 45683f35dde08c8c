"""When voting cannot decide within budget, ask a human: `interrupt()`, then resume.

A contract-review graph asks a model whether a clause is "allowed" or
"forbidden". The clause is genuinely ambiguous, so the (simulated) model splits
its samples about evenly; with k=3 and at most 10 samples no answer gets three
votes ahead. Instead of failing, the voted node (`on_no_consensus="escalate"`)
pauses the graph with an `interrupt()` carrying the tally. A reviewer answers,
the graph resumes with `Command(resume=answer)`, and the run goes on: the
samples already drawn are not drawn again.

Run: `python examples/human_escalation.py` (add `--answer forbidden` to play the reviewer).
"""

from __future__ import annotations

import argparse
from typing import Any, TypedDict

from langchain_core.messages import HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command

from maker_graph.graph import maker_node
from maker_graph.testing import ErrorModel, SimulatedChatModel

CLAUSE = "The supplier may share aggregated usage data with affiliates."


class Review(TypedDict, total=False):
    clause: str
    verdict: str
    stats: dict[str, Any]
    action: str


def prompt(inputs: dict[str, Any]) -> list[Any]:
    return [
        HumanMessage(
            f"Is this clause allowed under our policy? Answer allowed or "
            f"forbidden.\nClause: {inputs['clause']}"
        )
    ]


# An ambiguous case: the model answers "forbidden" about half the time (seed 13 is
# one where ten samples stay within two votes of each other).
model = SimulatedChatModel(
    oracle=lambda messages: "allowed",
    choices=["allowed", "forbidden"],
    errors=ErrorModel(error_rate=0.5, seed=13),
)


def act(state: Review) -> dict[str, Any]:
    return {"action": "sign" if state["verdict"] == "allowed" else "send back to legal"}


def build() -> Any:
    builder = StateGraph(Review)
    builder.add_node(
        "review",
        maker_node(
            model,
            k=3,
            prompt=prompt,
            input_keys=["clause"],
            output_key="verdict",
            stats_key="stats",
            max_samples=10,
            on_no_consensus="escalate",
        ),
    )
    builder.add_node("act", act)
    builder.add_edge(START, "review")
    builder.add_edge("review", "act")
    builder.add_edge("act", END)
    # interrupt() needs a checkpointer: it keeps the paused run until the answer comes.
    return builder.compile(checkpointer=InMemorySaver())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--answer",
        default="forbidden",
        choices=["allowed", "forbidden"],
        help="the human reviewer's verdict (default: forbidden)",
    )
    args = parser.parse_args()

    graph = build()
    config = {"configurable": {"thread_id": "review-1"}}
    paused = graph.invoke({"clause": CLAUSE}, config)
    if "__interrupt__" not in paused:
        print(f"decided without a human: {paused['verdict']}")
        return
    request = paused["__interrupt__"][0].value
    print(f"escalated: {request['question']}")
    print(f"  tally after {request['samples_drawn']} samples: {request['tally']}")
    print(f"  reviewer answers: {args.answer}")
    done = graph.invoke(Command(resume=args.answer), config)
    print(
        f"verdict: {done['verdict']} (decided by {done['stats']['decided_by']}), "
        f"action: {done['action']}"
    )


if __name__ == "__main__":
    main()
