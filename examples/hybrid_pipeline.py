"""A hybrid pipeline: plain nodes, a tool, a voted extraction and a decomposition sub-graph.

A request comes in as free text. The graph
1. normalises it (a plain node),
2. extracts the order with a chat model under k-ahead voting (`maker_node` with a
   structured-output schema; the simulated model gets the disk count wrong one
   time in four),
3. looks the customer up with a LangChain tool,
4. routes: a tower to move goes to a decomposition sub-graph (`decomposition_node`),
   which solves Towers of Hanoi one voted move at a time (chunked, with its
   progress streamed to the parent), and
5. writes a report (a plain node).

Everything runs offline on simulated models. Run: `python examples/hybrid_pipeline.py`
"""

from __future__ import annotations

import json
import re
from typing import Any, TypedDict

from langchain_core.messages import HumanMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, StateGraph
from pydantic import BaseModel

from maker_graph.graph import decomposition_node, maker_node
from maker_graph.sampling import message_text
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel, SimulatedChatModel

REQUEST = "  Customer ACME-42 asks: please move the tower of 8 disks from peg A to peg C.  "


class Order(BaseModel):
    """What the extraction step must read from the request."""

    customer: str
    disks: int


class Pipeline(TypedDict, total=False):
    request: str
    text: str
    order: Order
    tier: str
    solution: dict[str, Any]
    solve_stats: dict[str, Any]
    report: str


def normalize(state: Pipeline) -> dict[str, Any]:
    return {"text": " ".join(state["request"].split())}


def extraction_prompt(inputs: dict[str, Any]) -> list[Any]:
    return [HumanMessage(f"Extract customer id and number of disks as JSON.\n{inputs['text']}")]


def read_order(messages: list[Any]) -> str:
    """The simulated model's right answer: what a careful reader would extract."""
    text = message_text(messages[-1])
    customer = re.search(r"[A-Z]+-\d+", text)
    disks = re.search(r"(\d+) disks", text)
    return json.dumps(
        {
            "customer": customer.group(0) if customer else "",
            "disks": int(disks.group(1)) if disks else 0,
        }
    )


def misread_order(messages: list[Any], rival: int) -> str:
    order = json.loads(read_order(messages))
    order["disks"] += 1 + rival  # the typical slip: an off-by-one count
    return json.dumps(order)


extractor = SimulatedChatModel(
    oracle=read_order, wrong=misread_order, errors=ErrorModel(error_rate=0.25, seed=2)
)


@tool
def customer_tier(customer: str) -> str:
    """Look up a customer's support tier."""
    return {"ACME-42": "gold"}.get(customer, "standard")


def lookup(state: Pipeline) -> dict[str, Any]:
    return {"tier": customer_tier.invoke({"customer": state["order"].customer})}


def needs_decomposition(state: Pipeline) -> str:
    return "solve" if state["order"].disks > 0 else "report"


solve = decomposition_node(
    lambda inputs: HanoiTask(inputs["order"].disks),
    make_sampler=lambda task: simulated_sampler(task, ErrorModel(error_rate=0.02, seed=5)),
    input_keys=["order"],
    output_key="solution",
    answer=lambda task, final: {"solved": task.is_done(final), "final_state": final},
    stats_key="solve_stats",
    chunk=64,
)


def report(state: Pipeline) -> dict[str, Any]:
    order, stats = state["order"], state.get("solve_stats", {})
    solved = state.get("solution", {}).get("solved", False)
    return {
        "report": (
            f"customer {order.customer} ({state['tier']}): moved {order.disks} "
            f"disks in {stats.get('steps', 0)} voted steps, solved: {solved}"
        )
    }


def build() -> Any:
    builder = StateGraph(Pipeline)
    builder.add_node("normalize", normalize)
    builder.add_node(
        "extract",
        maker_node(
            extractor,
            k=3,
            prompt=extraction_prompt,
            structured=Order,
            input_keys=["text"],
            output_key="order",
        ),
    )
    builder.add_node("lookup", lookup)
    builder.add_node("solve", solve)
    builder.add_node("report", report)
    builder.add_edge(START, "normalize")
    builder.add_edge("normalize", "extract")
    builder.add_edge("extract", "lookup")
    builder.add_conditional_edges("lookup", needs_decomposition, ["solve", "report"])
    builder.add_edge("solve", "report")
    builder.add_edge("report", END)
    return builder.compile()


def main() -> None:
    graph = build()
    chunks = 0
    final: dict[str, Any] = {}
    for namespace, mode, chunk in graph.stream(
        {"request": REQUEST}, stream_mode=["updates", "custom", "values"], subgraphs=True
    ):
        if mode == "custom" and chunk["event"] == "maker.decided":
            print(f"voted extraction: {chunk['winner']} (tally {chunk['tally']})")
        elif mode == "custom" and chunk["event"] == "maker.chunk":
            chunks += 1
            print(f"  decomposition chunk {chunks}: {chunk['steps_done']} steps done")
        elif mode == "updates" and not namespace:
            print("node finished:", ", ".join(chunk))
        elif mode == "values" and not namespace:
            final = chunk
    print("report:", final["report"])


if __name__ == "__main__":
    main()
