"""Vote the tool choice of a support agent: plain `create_agent` vs `MakerMiddleware`.

The simulated model picks the wrong tool 15 % of the time (always the same
plausible neighbour for a conversation) and the right tool with a near-miss
order id 10 % of the time. Both agents answer the same 200 requests; the script
prints how often the tool call that actually ran was the right one. Offline,
a few seconds.

The second half is the same step in a hand-written `MessagesState` ReAct graph
with a `ToolNode`: in a messages state `maker_node` reads the conversation and
appends the winning AIMessage, tool calls included, with no keys named.

Run: python examples/agent_tool_voting.py
"""

from __future__ import annotations

import asyncio
from collections import Counter
from typing import Any

from langchain.agents import create_agent
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.tools import tool
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition

from maker_graph import MakerMiddleware, maker_node
from maker_graph.scaling import p_step
from maker_graph.testing import SimulatedToolModel

CONVERSATIONS = 200
RAN: Counter[str] = Counter()


@tool(return_direct=True)
def refund(order_id: str) -> str:
    """Refund an order."""
    RAN["refund"] += 1
    return f"refund issued for {order_id}"


@tool(return_direct=True)
def cancel(order_id: str) -> str:
    """Cancel an order that has not shipped."""
    RAN["cancel"] += 1
    return f"order {order_id} cancelled"


@tool(return_direct=True)
def track(order_id: str) -> str:
    """Tell where an order is."""
    RAN["track"] += 1
    return f"order {order_id} is in transit"


TOOLS = [refund, cancel, track]


def policy(messages: list[Any]) -> Any:
    """What a perfect agent does: the tool the customer asked for, then a summary."""
    if isinstance(messages[-1], ToolMessage):
        return f"All done: {messages[-1].content}."
    verb, order = str(messages[-1].content).split(" order ")
    return {"name": verb.lower(), "args": {"order_id": order}}


def requests(n: int) -> list[tuple[str, str]]:
    verbs = ["Refund", "Cancel", "Track"]
    return [(verbs[i % 3], f"#{1000 + i}") for i in range(n)]


def exact_accuracy(probs: list[float], k: int) -> float:
    """P(right action wins) of a first-to-ahead-by-k vote; probs[0] is the right action."""
    states, win = {tuple([0] * len(probs)): 1.0}, 0.0
    while states:
        nxt: dict[tuple[int, ...], float] = {}
        for counts, pr in states.items():
            for i, p in enumerate(probs):
                c = list(counts)
                c[i] += 1
                top = sorted(c, reverse=True)
                if top[0] - top[1] >= k:
                    win += pr * p if c[0] == top[0] else 0.0
                elif pr * p > 1e-15:
                    nxt[tuple(c)] = nxt.get(tuple(c), 0.0) + pr * p
        states = nxt
    return win


def accuracy(agent: Any) -> tuple[float, float]:
    """(tool accuracy, model calls per request) over the same requests."""

    async def one(verb: str, order: str) -> tuple[bool, int]:
        out = await agent.ainvoke({"messages": [HumanMessage(f"{verb} order {order}")]})
        (ai,) = [m for m in out["messages"] if isinstance(m, AIMessage)]
        (call,) = ai.tool_calls
        drawn = ai.response_metadata.get("maker", {}).get("samples_drawn", 1)
        right = call["name"] == verb.lower() and call["args"] == {"order_id": order}
        return right, drawn

    async def run() -> list[tuple[bool, int]]:
        return await asyncio.gather(*[one(v, o) for v, o in requests(CONVERSATIONS)])

    results = asyncio.run(run())
    return (sum(r for r, _ in results) / len(results), sum(d for _, d in results) / len(results))


def main() -> None:
    model = SimulatedToolModel(policy=policy, wrong_tool=0.15, wrong_argument=0.10, seed=7)
    RAN.clear()
    plain, _ = accuracy(create_agent(model, TOOLS))
    plain_runs = sum(RAN.values())
    RAN.clear()
    voted, calls = accuracy(create_agent(model, TOOLS, middleware=[MakerMiddleware(k=3)]))
    voted_runs = sum(RAN.values())
    print(f"conversations: {CONVERSATIONS}")
    print(f"plain agent tool accuracy: {plain:.1%}")
    print(
        f"MakerMiddleware(k=3) tool accuracy: {voted:.1%}  "
        f"(p_step(0.75, 3) = {p_step(0.75, 3):.1%}; exact for this error mix "
        f"{exact_accuracy([0.75, 0.15, 0.10], 3):.1%})"
    )
    print(f"model calls per request: plain 1.0, voted {calls:.2f}")
    print(f"tools run: plain {plain_runs}, voted {voted_runs} (one per request: losers never run)")

    # The same voted step in a hand-written ReAct graph.
    bound = SimulatedToolModel(policy=policy, seed=7).bind_tools(TOOLS)
    graph = StateGraph(MessagesState)
    graph.add_node("agent", maker_node(bound, k=3))
    graph.add_node("tools", ToolNode(TOOLS))
    graph.add_edge(START, "agent")
    graph.add_conditional_edges("agent", tools_condition, ["tools", END])
    graph.add_edge("tools", END)
    out = graph.compile().invoke({"messages": [HumanMessage("Refund order #42")]})
    print(
        "ReAct graph:",
        " -> ".join(
            f"{type(m).__name__}({m.tool_calls[0]['name']})"
            if getattr(m, "tool_calls", None)
            else f"{type(m).__name__}({m.content!r})"
            for m in out["messages"]
        ),
    )


if __name__ == "__main__":
    main()
