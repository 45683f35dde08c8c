"""Every progress event maker_graph writes is a documented name with documented fields.

The names are read from the source (every `"event": "maker...."` literal), so an
event added anywhere without joining `EVENT_NAMES` (or the tree's
`TREE_EVENT_NAMES`) fails here; the fields are checked on events streamed by real
graphs, which also carry the name of the graph node they came from.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langgraph.func import entrypoint
from langgraph.graph import START, StateGraph

from maker_graph.errors import SamplerError
from maker_graph.graph import add_maker_step, create_voting_graph, maker_node, maker_task
from maker_graph.graph.events import EVENT_FIELDS, EVENT_NAMES
from maker_graph.graph.hybrid import decomposition_node
from maker_graph.recursive.events import TREE_EVENT_NAMES
from maker_graph.sampling import ProviderRetry
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler

ROOT = Path(__file__).resolve().parents[1]
LITERAL = re.compile(r"""["']event["']\s*:\s*["'](maker\.[a-z_.]+)["']""")
ESCALATION = "maker.escalation"  # the value of `interrupt()`, never streamed


def emitted_names() -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted((ROOT / "maker_graph").rglob("*.py")):
        for name in LITERAL.findall(path.read_text()):
            found.setdefault(name, []).append(str(path.relative_to(ROOT)))
    return found


def test_every_event_name_in_the_source_is_a_known_name() -> None:
    found = emitted_names()
    # The scan itself must see the events it is meant to police.
    assert {"maker.round", "maker.decided", "maker.progress", "maker.tree.solved"} <= set(found)
    known = set(EVENT_NAMES) | set(TREE_EVENT_NAMES) | {ESCALATION}
    unknown = {name: where for name, where in found.items() if name not in known}
    assert not unknown, f"add these to EVENT_NAMES and document them: {unknown}"
    assert set(EVENT_FIELDS) == set(EVENT_NAMES)


def test_the_escalation_request_is_never_streamed() -> None:
    # It is documented as the interrupt's value; streaming it too would make it an event.
    for path in (ROOT / "maker_graph").rglob("*.py"):
        assert not re.search(r"emit\(\s*escalation_request", path.read_text()), path


def test_reference_page_has_an_events_table_with_every_name() -> None:
    page = (ROOT / "docs" / "reference.md").read_text()
    assert "\n## Events" in page
    events = page.split("\n## Events", 1)[1].split("\n## ", 1)[0]
    missing = [
        name
        for name in (*EVENT_NAMES, *TREE_EVENT_NAMES, ESCALATION)
        if f"| `{name}` |" not in events
    ]
    assert not missing, missing


class _State(TypedDict, total=False):
    q: str
    a: str
    disks: int


def _stream(graph: Any, inputs: Any) -> list[dict[str, Any]]:
    return [event for _, event in graph.stream(inputs, stream_mode="custom", subgraphs=True)]


def _check_fields(events: list[dict[str, Any]], node: str) -> set[str]:
    for event in events:
        assert event["event"] in EVENT_NAMES, event
        assert set(event) == {"event", "node", *EVENT_FIELDS[event["event"]]}, event
        assert event["node"] == node, event
    return {event["event"] for event in events}


def test_add_maker_step_events_have_their_fields_and_the_steps_name() -> None:
    failed: set[int] = set()

    def step(inputs: dict[str, Any], index: int) -> str:
        if index == 0 and 0 not in failed:  # one provider failure, retried by the guard edge
            failed.add(0)
            raise ConnectionError("down")
        return "bad" if index == 1 else "ok"

    builder = StateGraph(_State)
    add_maker_step(
        builder,
        "classify",
        step,
        k=2,
        input_keys=["q"],
        output_key="a",
        red_flags=[lambda sample: sample.value == "bad"],
        retry=ProviderRetry(max_attempts=1, initial_delay=0.001, jitter=0.0),
    )
    builder.add_edge(START, "classify")
    kinds = _check_fields(_stream(builder.compile(), {"q": "?"}), "classify")
    assert kinds == {
        "maker.round",
        "maker.sample",
        "maker.red_flag",
        "maker.provider_failure",
        "maker.decided",
    }


def test_decomposition_node_events_have_their_fields_and_the_nodes_name() -> None:
    builder = StateGraph(_State)
    builder.add_node(
        "solve",
        decomposition_node(
            lambda s: HanoiTask(s["disks"]),
            make_sampler=simulated_sampler,
            input_keys=["disks"],
            output_key="a",
            answer=lambda task, final: task.total_steps,
            name="solve",
        ),
    )
    builder.add_edge(START, "solve")
    kinds = _check_fields(_stream(builder.compile(), {"disks": 3}), "solve")
    assert kinds == {"maker.chunk", "maker.progress"}


def _flaky_step(inputs: Any, index: int) -> str:
    return "bad" if index == 1 else "ok"


_FLAG = [lambda sample: sample.value == "bad"]


def _node_graph(node: Any) -> Any:
    builder = StateGraph(_State)
    builder.add_node("classify", node)
    builder.add_edge(START, "classify")
    return builder.compile()


def _surface_events(surface: str) -> list[dict[str, Any]]:
    """The custom-stream events of one voted step named "classify" on each surface."""
    options: dict[str, Any] = {"k": 2, "red_flags": _FLAG}
    if surface in ("maker_node", "maker_node_durable"):
        node = maker_node(
            _flaky_step, input_keys="q", output_key="a", durable="durable" in surface, **options
        )
        return _stream(_node_graph(node), {"q": "?"})
    if surface == "voting_graph_node":
        sub = create_voting_graph(_flaky_step, input_keys="q", output_key="a", **options)
        return _stream(_node_graph(sub.compile()), {"q": "?"})
    if surface == "voting_graph_named":
        graph = create_voting_graph(_flaky_step, name="classify", **options).compile()
        return _stream(graph, {"step_input": "?"})
    assert surface == "maker_task"
    voted = maker_task(_flaky_step, name="classify", **options)

    @entrypoint()
    def flow(q: str) -> str:
        return str(voted(q).result())

    return [event for _, event in flow.stream("?", stream_mode="custom", subgraphs=True)]


@pytest.mark.parametrize(
    "surface",
    ["maker_node", "maker_node_durable", "voting_graph_node", "voting_graph_named", "maker_task"],
)
def test_every_voted_step_surface_streams_the_same_events_under_its_nodes_name(
    surface: str,
) -> None:
    events = _surface_events(surface)
    kinds = _check_fields(events, "classify")
    assert kinds == {"maker.round", "maker.sample", "maker.red_flag", "maker.decided"}
    first = next(e for e in events if e["event"] == "maker.round")
    assert (first["round"], first["samples"], first["drawn"]) == (1, 2, 0)
    decided = [e for e in events if e["event"] == "maker.decided"]
    assert len(decided) == 1 and decided[0]["winner"] == "ok"


def test_engine_surfaces_report_a_provider_failure_that_ends_the_vote() -> None:
    def down(inputs: Any) -> str:
        raise ConnectionError("down")

    retry = ProviderRetry(max_attempts=1, initial_delay=0.001, jitter=0.0)
    node = maker_node(down, k=2, input_keys="q", output_key="a", retry=retry)
    events: list[dict[str, Any]] = []
    with pytest.raises(SamplerError):
        for _, event in _node_graph(node).stream({"q": "?"}, stream_mode="custom", subgraphs=True):
            events.append(event)
    assert "maker.provider_failure" in _check_fields(events, "classify")
