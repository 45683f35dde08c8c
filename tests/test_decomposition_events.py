"""`create_decomposition_graph` labels every event with its `name=` (at chunk=1 too),
and its events carry exactly the documented fields."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from maker_graph.graph import create_decomposition_graph
from maker_graph.graph.events import EVENT_FIELDS, EVENT_NAMES
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing.errors_model import ErrorModel


def _check_fields(events: list[dict[str, Any]], node: str) -> set[str]:
    for event in events:
        assert event["event"] in EVENT_NAMES, event
        assert set(event) == {"event", "node", *EVENT_FIELDS[event["event"]]}, event
        assert event["node"] == node, event
    return {event["event"] for event in events}


def _sync(graph: Any) -> list[dict[str, Any]]:
    return [event for _, event in graph.stream({}, stream_mode="custom", subgraphs=True)]


def _async(graph: Any) -> list[dict[str, Any]]:
    async def run() -> list[dict[str, Any]]:
        return [event async for _, event in graph.astream({}, stream_mode="custom", subgraphs=True)]

    return asyncio.run(run())


@pytest.mark.parametrize("stream", [_sync, _async], ids=["sync", "async"])
def test_one_step_graph_labels_votes_and_chunks_with_its_name(stream: Any) -> None:
    task = HanoiTask(3)
    # Seeded simulated errors: some samples parse to a rival move, some do not parse
    # (red flags), so every voting event kind shows up.
    errors = ErrorModel(error_rate=0.2, malformed_rate=0.2, seed=3)
    graph = create_decomposition_graph(
        task, simulated_sampler(task, errors), chunk=1, name="hanoi"
    ).compile()
    events = stream(graph)
    kinds = _check_fields(events, "hanoi")
    assert {
        "maker.round",
        "maker.sample",
        "maker.red_flag",
        "maker.decided",
        "maker.chunk",
    } <= kinds
    chunks = [e for e in events if e["event"] == "maker.chunk"]
    assert [c["steps_done"] for c in chunks] == list(range(1, task.total_steps + 1))
    assert [c["done"] for c in chunks] == [False] * (task.total_steps - 1) + [True]
    decided = [e for e in events if e["event"] == "maker.decided"]
    assert [c["samples"] for c in chunks] == [d["samples_drawn"] for d in decided]


def test_default_name_labels_one_step_events_too() -> None:
    task = HanoiTask(2)
    graph = create_decomposition_graph(task, simulated_sampler(task), chunk=1).compile()
    assert {e["node"] for e in _sync(graph)} == {"decompose"}


def test_chunked_graph_streams_documented_progress_and_chunk_events() -> None:
    task = HanoiTask(6)  # 63 steps in chunks of 20: four chunks
    graph = create_decomposition_graph(
        task, simulated_sampler(task), chunk=20, name="hanoi"
    ).compile()
    events = _sync(graph)
    assert _check_fields(events, "hanoi") == {"maker.chunk", "maker.progress"}
    progress = [e for e in events if e["event"] == "maker.progress"]
    chunks = [e for e in events if e["event"] == "maker.chunk"]
    assert [c["steps_done"] for c in chunks] == [20, 40, 60, 63]
    assert progress[-1]["steps"] == 63 and progress[-1]["total_steps"] == 63
    assert progress[-1]["samples"] >= 3 * 63  # at least k votes per step
    assert all(p["elapsed"] >= 0 and p["red_flagged"] >= 0 for p in progress)
    steps = [p["steps"] for p in progress]
    assert steps == sorted(steps)
