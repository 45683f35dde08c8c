"""What the LangGraph surfaces cost on top of the engine.

Three comparisons, all on zero-latency samplers so that only orchestration is
measured:

1. one voted step: `Voter.vote` (the engine) and `vote_step` (builds its voter per
   call) against `maker_node` in a one-node graph (`ainvoke` and `invoke`), the
   voting sub-graph `create_voting_graph` (a `Send` per sample) and
   `add_maker_step` (the same nodes grafted into a parent graph);
2. a whole decomposed run: `run_task` against the chunked decomposition graph on
   Towers of Hanoi with the simulated sampler (0.2 % errors, about gpt-4.1-mini's rate; at 1 % a
   20-disk run at k=3 fails two times in three), same seed;
3. the decomposition graph at `chunk=1` (every step through the voting nodes),
   per step.

Run: `python benchmarks/graph_overhead.py [--disks 20] [--steps 2000] [--json out.json]`
Medians of `--repeats` runs; expect ±20 % from run to run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, TypedDict

from langgraph.graph import END, START, StateGraph

from maker_graph.graph import (
    add_maker_step,
    create_decomposition_graph,
    create_voting_graph,
    maker_node,
)
from maker_graph.records import RawSample
from maker_graph.run import run_task
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel, SimulatedSampler
from maker_graph.vote import VotePolicy, Voter, vote_step


class Instant:
    """A sampler that answers at once: the same answer for every sample."""

    async def sample(self, step_input: Any, index: int) -> RawSample:
        return RawSample("yes", "yes", output_tokens=1)


class State(TypedDict, total=False):
    q: str
    a: str


def noisy() -> SimulatedSampler:
    """Right 80 % of the time, one rival: ~4.5 samples and ~1.6 rounds per step at k=3."""
    return SimulatedSampler(lambda q: "yes", errors=ErrorModel(error_rate=0.2, seed=1), tokens=len)


async def per_step(fn: Callable[[int], Awaitable[Any]], steps: int) -> float:
    for i in range(min(50, steps)):  # warm-up
        await fn(i)
    started = time.perf_counter()
    for i in range(steps):
        await fn(i)
    return (time.perf_counter() - started) / steps * 1e6


def one_node_graph(node: Any) -> Any:
    builder = StateGraph(State)
    builder.add_node("step", node)
    builder.add_edge(START, "step")
    builder.add_edge("step", END)
    return builder.compile()


def grafted_graph(sampler: Any) -> Any:
    builder = StateGraph(State)
    nodes = add_maker_step(builder, "step", sampler, input_keys=["q"], output_key="a")
    builder.add_edge(START, nodes.entry)
    return builder.compile()


async def voted_step(steps: int, make_sampler: Callable[[], Any]) -> dict[str, float]:
    voter = Voter(make_sampler(), policy=VotePolicy(k=3, max_samples=200))
    node = maker_node(make_sampler(), input_keys=["q"], output_key="a", max_samples=200)
    node_graph = one_node_graph(node)
    voting = create_voting_graph(
        make_sampler(), k=3, max_samples=200, input_keys="q", output_key="a", stats_key=None
    ).compile()
    grafted = grafted_graph(make_sampler())
    shared = make_sampler()

    async def engine_in_node(state: State) -> dict[str, Any]:
        return {"a": (await voter.vote(state["q"])).winner}

    async def nothing(state: State) -> dict[str, Any]:
        return {"a": "yes"}

    bare = one_node_graph(nothing)
    bare_sync = one_node_graph(lambda state: {"a": "yes"})
    engine_node = one_node_graph(engine_in_node)

    def sync_loop() -> float:
        # A sync caller has no running event loop: time it from a plain thread.
        for i in range(min(50, steps)):
            node_graph.invoke({"q": f"q{i}"})
        started = time.perf_counter()
        for i in range(steps):
            node_graph.invoke({"q": f"q{i}"})
        return (time.perf_counter() - started) / steps * 1e6

    def bare_sync_loop() -> float:
        for i in range(min(50, steps)):
            bare_sync.invoke({"q": f"q{i}"})
        started = time.perf_counter()
        for i in range(steps):
            bare_sync.invoke({"q": f"q{i}"})
        return (time.perf_counter() - started) / steps * 1e6

    results = {
        "Voter.vote (engine)": await per_step(lambda i: voter.vote(f"q{i}"), steps),
        "vote_step": await per_step(
            lambda i: vote_step(shared, f"q{i}", k=3, max_samples=200), steps
        ),
        "bare 1-node graph (no vote)": await per_step(
            lambda i: bare.ainvoke({"q": f"q{i}"}), steps
        ),
        "Voter.vote in a plain node": await per_step(
            lambda i: engine_node.ainvoke({"q": f"q{i}"}), steps
        ),
        "maker_node graph, ainvoke": await per_step(
            lambda i: node_graph.ainvoke({"q": f"q{i}"}), steps
        ),
        "bare 1-node graph, invoke": await asyncio.to_thread(bare_sync_loop),
        "maker_node graph, invoke": await asyncio.to_thread(sync_loop),
        "create_voting_graph, ainvoke": await per_step(
            lambda i: voting.ainvoke({"q": f"q{i}"}), steps
        ),
        "add_maker_step graph, ainvoke": await per_step(
            lambda i: grafted.ainvoke({"q": f"q{i}"}), steps
        ),
    }
    return results


async def decomposition(disks: int, chunk: int, graph_first: bool) -> dict[str, float]:
    task = HanoiTask(disks)
    errors = ErrorModel(error_rate=0.002, seed=1)
    graph = create_decomposition_graph(task, simulated_sampler(task, errors), chunk=chunk).compile()

    async def engine_run() -> tuple[Any, float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        report = await run_task(task, simulated_sampler(task, errors))
        return report, time.perf_counter() - wall, time.process_time() - cpu

    async def graph_run() -> tuple[Any, float, float]:
        wall, cpu = time.perf_counter(), time.process_time()
        out = await graph.ainvoke({}, {"recursion_limit": 100_000})
        return out, time.perf_counter() - wall, time.process_time() - cpu

    # Alternate which goes first: a loaded machine drifts, and order must not decide.
    # CPU time is the steadier figure on a shared machine (it leaves out the time
    # other processes held the cores); wall time is reported too.
    if graph_first:
        out, graphed, graphed_cpu = await graph_run()
        report, engine, engine_cpu = await engine_run()
    else:
        report, engine, engine_cpu = await engine_run()
        out, graphed, graphed_cpu = await graph_run()
    assert out["done"] and out["step"] == report.steps == task.total_steps
    return {
        "steps": report.steps,
        "run_task_s": engine,
        "graph_s": graphed,
        "ratio": graphed / engine,
        "run_task_cpu_s": engine_cpu,
        "graph_cpu_s": graphed_cpu,
        "cpu_ratio": graphed_cpu / engine_cpu,
    }


async def one_step_graph(disks: int) -> dict[str, float]:
    task = HanoiTask(disks)
    errors = ErrorModel(error_rate=0.002, seed=1)
    started = time.perf_counter()
    await run_task(task, simulated_sampler(task, errors))
    engine = (time.perf_counter() - started) / task.total_steps * 1e6
    graph = create_decomposition_graph(task, simulated_sampler(task, errors), chunk=1).compile()
    started = time.perf_counter()
    out = await graph.ainvoke({}, {"recursion_limit": 100_000})
    per = (time.perf_counter() - started) / task.total_steps * 1e6
    assert out["done"]
    return {
        "steps": task.total_steps,
        "run_task_us_per_step": engine,
        "chunk1_graph_us_per_step": per,
    }


def median_of(runs: list[dict[str, float]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


async def main(argv: list[str]) -> dict[str, Any]:
    parser = argparse.ArgumentParser(description="LangGraph surface overhead")
    parser.add_argument("--steps", type=int, default=1000, help="voted steps per measurement")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--disks", type=int, default=16, help="Hanoi size for run_task vs graph")
    parser.add_argument("--chunk", type=int, default=10_000)
    parser.add_argument("--one-step-disks", type=int, default=9)
    parser.add_argument(
        "--only",
        choices=["steps", "decomposition", "chunk1"],
        help="run one of the three comparisons",
    )
    parser.add_argument("--json", help="write the results to this file")
    args = parser.parse_args(argv)

    out: dict[str, Any] = {"steps": args.steps, "repeats": args.repeats}
    todo = {args.only} if args.only else {"steps", "decomposition", "chunk1"}
    samplers: tuple[tuple[str, Callable[[], Any]], ...] = (
        ("unanimous (3 samples/step)", Instant),
        ("p=0.8 (noisy)", noisy),
    )
    for name, make in samplers if "steps" in todo else ():
        runs = [await voted_step(args.steps, make) for _ in range(args.repeats)]
        table = median_of(runs)
        out[name] = table
        base = table["Voter.vote (engine)"]
        print(f"\none voted step, k=3, {name}: us per step (median of {args.repeats})")
        for label, us in table.items():
            extra = f"  (+{us - base:,.0f} us over the engine)" if us != base else ""
            print(f"  {label:32s} {us:9,.0f}{extra}")

    if "decomposition" in todo:
        await decomposition(8, args.chunk, False)  # warm-up: imports, token counter, caches
        runs = []
        for i in range(args.repeats):
            runs.append(await decomposition(args.disks, args.chunk, i % 2 == 1))
            r = runs[-1]
            print(
                f"  run {i + 1}: run_task {r['run_task_s']:.2f} s "
                f"({r['run_task_cpu_s']:.2f} s CPU), graph {r['graph_s']:.2f} s "
                f"({r['graph_cpu_s']:.2f} s CPU)",
                flush=True,
            )
        dec = median_of(runs)
        out["decomposition"] = {**dec, "disks": args.disks, "chunk": args.chunk}
        print(
            f"\nHanoi {args.disks} disks ({int(dec['steps']):,} steps), chunk={args.chunk}: "
            f"run_task {dec['run_task_s']:.2f} s, decomposition graph {dec['graph_s']:.2f} s, "
            f"ratio {dec['ratio']:.3f}; CPU: {dec['run_task_cpu_s']:.2f} s vs "
            f"{dec['graph_cpu_s']:.2f} s, ratio {dec['cpu_ratio']:.3f} (medians of "
            f"{args.repeats})"
        )

    if "chunk1" in todo:
        one = await one_step_graph(args.one_step_disks)
        out["chunk1"] = {**one, "disks": args.one_step_disks}
        print(
            f"Hanoi {args.one_step_disks} disks at chunk=1: "
            f"{one['chunk1_graph_us_per_step']:,.0f} us/step vs run_task "
            f"{one['run_task_us_per_step']:,.0f} us/step"
        )
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=2))  # noqa: ASYNC240 - once, at the end
    return out


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1:]))
