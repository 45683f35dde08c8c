"""Multiply long numbers with agents that find the decomposition themselves.

Four roles, each a LangChain chat model (simulated here, so this runs
offline; each is wrong on 5 % of its calls): decomposers propose how to split
a product, discriminators vote among the distinct proposals, solvers multiply
the small leaves and composers shift and add. Every role is voted
first-to-ahead-by-k (k = 3) and red-flagged. The tree is a LangGraph graph
(`create_recursive_graph`); its record is printed as text and as Mermaid.

To use a real model instead, pass it for every role:
`multiplication_roles(init_chat_model("openai:gpt-4.1-mini"))`.

Run: `python examples/recursive_multiplication.py`
"""

from __future__ import annotations

import asyncio
import random

from maker_graph.recursive import MemoryTreeRecorder, RecursionPolicy, load_events
from maker_graph.recursive.render import render_mermaid, render_text
from maker_graph.tasks.multiplication import (
    Multiplier,
    RoleErrors,
    multiplication_roles,
    simulated_models,
)


async def main() -> None:
    recorder = MemoryTreeRecorder()
    models = simulated_models(RoleErrors.uniform(0.05, seed=11), kind="chat")
    multiplier = Multiplier(
        multiplication_roles(models, k=3),
        policy=RecursionPolicy(max_depth=8, candidates=3),
        recorder=recorder,
    )

    # One small product, shown whole: who proposed what, and every vote.
    small = await multiplier.multiply(48213, 907)
    tree = load_events(recorder.events)[-1]
    print(render_text(tree))
    print()
    print(render_mermaid(tree))
    print()

    # Then random 10x10-digit products, checked against Python's integers. (One at a
    # time: the nodes of each tree already run their calls in parallel.)
    rng = random.Random(5)
    pairs = [(rng.randrange(10**9, 10**10), rng.randrange(10**9, 10**10)) for _ in range(4)]
    results = [await multiplier.multiply(a, b) for a, b in pairs]
    for r in results:
        print(f"{r.a} × {r.b} = {r.answer}  ({r.stats['nodes']} nodes, {r.samples} samples)")
    correct = sum(r.correct for r in results) + small.correct
    print(
        f"correct: {correct}/{len(results) + 1} products "
        f"(mean {sum(r.samples for r in results) / len(results):.0f} samples per 10x10 product)"
    )


if __name__ == "__main__":
    asyncio.run(main())
