"""`decomposition_node`: a decomposed run as one node of a larger, hybrid pipeline.

A router (or an agent) in the parent graph decides *what* to solve; this node
builds the `Task` from the parent state, runs it as a decomposition sub-graph
and writes the answer back, so the pipeline continues with it. The sub-graph's
progress reaches the parent with `subgraphs=True`, and with a checkpointer an
interrupted run continues where it stopped.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..errors import ConfigurationError
from ..tasks.base import Task
from ..vote import VotePolicy
from ._node import DualNode
from ._options import pick
from .decomposition import DEFAULT_CHUNK, create_decomposition_graph

__all__ = ["decomposition_node"]


def decomposition_node(
    make_task: Callable[[dict[str, Any]], Task],
    sampler: Any = None,
    *,
    make_sampler: Callable[[Task], Any] | None = None,
    input_keys: Sequence[str] | None = None,
    output_key: str = "answer",
    answer: Callable[[Task, Any], Any] | None = None,
    stats_key: str | None = None,
    k: int = 3,
    policy: VotePolicy | None = None,
    chunk: int = DEFAULT_CHUNK,
    name: str = "decompose",
) -> DualNode:
    """A node that solves a sub-task by maximal decomposition and writes its answer.

    For hybrid pipelines: the parent graph (a router, an agent) decides *what* to
    solve; this node builds the `Task` from the parent state, runs it as a
    decomposition sub-graph (its events reach the parent with `subgraphs=True`),
    and writes `answer(task, final_state)` to `output_key`.

    Args:
        make_task: a dict of the parent state's `input_keys` (whole state when None)
            -> the `Task` to solve.
        sampler: the sampler for every task; or give `make_sampler(task)`.
        make_sampler: builds the sampler for the task at hand.
        input_keys: the parent-state keys `make_task` reads.
        output_key: where the answer goes.
        answer: (task, final task state) -> the answer (default: the final state).
        stats_key: where the run's totals go (optional).
        k: the voting margin (ignored with `policy`).
        policy: the per-step `VotePolicy`.
        chunk: steps per superstep of the sub-graph.
        name: the node's name in events.

    Example:
        >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
        >>> node = decomposition_node(lambda s: HanoiTask(s["disks"]),
        ...                           make_sampler=simulated_sampler, input_keys=["disks"],
        ...                           answer=lambda task, final: task.total_steps)
        >>> node.invoke({"disks": 3})
        {'answer': 7}
    """
    if (sampler is None) == (make_sampler is None):
        raise ConfigurationError(
            "decomposition_node needs exactly one of sampler= or make_sampler="
        )
    keys = list(input_keys) if input_keys is not None else None

    def prepare(values: Mapping[str, Any]) -> tuple[Task, Any]:
        task = make_task(pick(values, keys))
        chosen = make_sampler(task) if make_sampler is not None else sampler
        graph = create_decomposition_graph(
            task, chosen, k=k, policy=policy, chunk=chunk, name=name
        ).compile()
        return task, graph

    def output(task: Task, final: Mapping[str, Any]) -> dict[str, Any]:
        load_state = getattr(task, "load_state", None)
        state = load_state(final["state"]) if load_state is not None else final["state"]
        out = {output_key: answer(task, state) if answer is not None else state}
        if stats_key is not None:
            out[stats_key] = {
                "steps": final.get("step"),
                "done": final.get("done"),
                **(final.get("totals") or {}),
            }
        return out

    def run(values: Mapping[str, Any]) -> dict[str, Any]:
        task, graph = prepare(values)
        return output(task, graph.invoke({}))

    async def arun(values: Mapping[str, Any]) -> dict[str, Any]:
        task, graph = prepare(values)
        return output(task, await graph.ainvoke({}))

    return DualNode(name, run, arun)
