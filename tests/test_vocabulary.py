"""One vocabulary across the voted-step surfaces, and no silent misconfiguration.

`maker_node`, `add_maker_step`, `create_voting_graph` and `maker_task` share their
step options (`StepOptions`), `input_keys` means the same everywhere (a str: that
key's value; a list: a dict of the keys), `stats_key` is None by default, and a
resume value after an escalation is checked like a sample.
"""

from __future__ import annotations

import warnings
from collections import Counter
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint
from langgraph.graph import START, StateGraph
from langgraph.types import Command

from maker_graph.errors import ConfigurationError, SamplerError
from maker_graph.graph import (
    STATS_KEY,
    add_maker_step,
    create_voting_graph,
    maker_node,
    maker_task,
)
from maker_graph.sampling import ProviderRetry
from maker_graph.testing import ScriptedSampler

LABELS = ("billing", "bug")


def label(text: Any) -> str:
    """A strict parser: one of LABELS, else the sample is red-flagged."""
    value = str(getattr(text, "content", text)).strip().lower()
    if value not in LABELS:
        raise ValueError(f"expected one of {list(LABELS)}, got {value!r}")
    return value


class State(TypedDict, total=False):
    q: str
    a: str
    maker_stats: dict[str, Any]
    step_input: str
    answer: str
    other: str


# --------------------------------------------------------------------------- input_keys


def test_input_keys_as_one_key_hands_the_raw_value_on_every_state_surface() -> None:
    seen: list[Any] = []

    def step(value: Any) -> str:
        seen.append(value)
        return "bug"

    builder = StateGraph(State)
    builder.add_node("node", maker_node(step, k=1, input_keys="q", output_key="a"))
    builder.add_edge(START, "node")
    assert builder.compile().invoke({"q": "crash"})["a"] == "bug"

    grafted = StateGraph(State)
    nodes = add_maker_step(grafted, "graft", step, k=1, input_keys="q", output_key="a")
    grafted.add_edge(START, nodes.entry)
    assert grafted.compile().invoke({"q": "crash"})["a"] == "bug"

    sub = create_voting_graph(step, k=1, input_keys="q", output_key="a").compile()
    assert sub.invoke({"q": "crash"}) == {"a": "bug"}
    assert seen == ["crash", "crash", "crash"]


def test_input_keys_as_a_list_hands_a_dict_on_every_state_surface() -> None:
    seen: list[Any] = []

    def step(value: Any) -> str:
        seen.append(value)
        return "ok"

    maker_node(step, k=1, input_keys=["q"]).invoke({"q": "x", "other": "y"})
    create_voting_graph(step, k=1, input_keys=["q"]).compile().invoke({"q": "x"})
    assert seen == [{"q": "x"}, {"q": "x"}]


def test_an_unknown_option_is_refused_by_name() -> None:
    for factory in (maker_node, create_voting_graph, maker_task):
        with pytest.raises(TypeError, match="kk"):
            factory(lambda q: "x", kk=3)  # type: ignore[operator]


# --------------------------------------------------------------------------- stats_key


def test_stats_key_is_off_by_default_on_every_surface() -> None:
    assert maker_node(lambda q: "x", k=1).invoke({"q": 1}) == {"answer": "x"}
    out = create_voting_graph(lambda q: "x", k=1).compile().invoke({"step_input": 1})
    assert out == {"answer": "x"}
    with_stats = create_voting_graph(lambda q: "x", k=1, stats_key=STATS_KEY).compile()
    assert with_stats.invoke({"step_input": 1})[STATS_KEY]["samples_drawn"] == 1


def test_two_voting_sub_graphs_in_parallel_do_not_collide_by_default() -> None:
    # The parent declares `maker_stats`: a default that wrote it from both branches
    # would fail with InvalidUpdateError.
    builder = StateGraph(State)
    builder.add_node("one", create_voting_graph(lambda q: "x", k=1).compile())
    builder.add_node(
        "two", create_voting_graph(lambda q: "y", k=1, input_keys="q", output_key="a").compile()
    )
    builder.add_edge(START, "one")
    builder.add_edge(START, "two")
    out = builder.compile().invoke({"step_input": "s", "q": "t"})
    assert (out["answer"], out["a"]) == ("x", "y")
    assert "maker_stats" not in out


# --------------------------------------------------------------------------- the output key


@pytest.mark.parametrize("durable", [False, True])
def test_maker_node_refuses_an_output_key_the_state_does_not_have(durable: bool) -> None:
    builder = StateGraph(State)
    builder.add_node(
        "classify", maker_node(lambda q: "x", k=1, output_key="lable", durable=durable)
    )
    builder.add_edge(START, "classify")
    with pytest.raises(ConfigurationError, match=r"output_key='lable' is not a key"):
        builder.compile().invoke({"q": "t"})


def test_maker_node_refuses_a_stats_key_the_state_does_not_have() -> None:
    builder = StateGraph(State)
    builder.add_node("classify", maker_node(lambda q: "x", k=1, output_key="a", stats_key="st"))
    builder.add_edge(START, "classify")
    with pytest.raises(ConfigurationError, match=r"stats_key='st' is not a key"):
        builder.compile().invoke({"q": "t"})


# --------------------------------------------------------------------------- sub-graph input


def test_a_voting_sub_graph_without_its_input_says_what_to_pass() -> None:
    builder = StateGraph(State)
    builder.add_node("classify", create_voting_graph(lambda q: "x", k=1).compile())
    builder.add_edge(START, "classify")
    with pytest.raises(ConfigurationError) as info:
        builder.compile().invoke({"q": "t"})
    message = str(info.value)
    assert "'step_input'" in message and "input_keys=" in message
    assert "maker_votes" not in message  # the sub-graph's internal key is not the user's


# --------------------------------------------------------------------------- resume values


def _escalating(surface: str) -> tuple[Any, Any]:
    """A graph whose one step ("classify") escalates, and the input that starts it."""
    sampler = ScriptedSampler(["billing", "bug"] * 4)
    options: dict[str, Any] = {
        "k": 2,
        "max_samples": 4,
        "parser": label,
        "on_no_consensus": "escalate",
    }
    saver = InMemorySaver()
    if surface == "maker_task":
        voted = maker_task(sampler, name="classify", **options)

        @entrypoint(checkpointer=saver)
        def flow(q: str) -> str:
            return str(voted(q).result())

        return flow, "t"
    builder = StateGraph(State)
    if surface == "add_maker_step":
        nodes = add_maker_step(
            builder, "classify", sampler, input_keys="q", output_key="a", **options
        )
        builder.add_edge(START, nodes.entry)
    else:
        if surface == "voting_graph":
            node = create_voting_graph(sampler, input_keys="q", output_key="a", **options).compile()
        else:
            node = maker_node(
                sampler, input_keys="q", output_key="a", durable="durable" in surface, **options
            )
        builder.add_node("classify", node)
        builder.add_edge(START, "classify")
    return builder.compile(checkpointer=saver), {"q": "t"}


SURFACES = ["maker_node", "maker_node_durable", "add_maker_step", "voting_graph", "maker_task"]


def _answer(out: Any) -> Any:
    return out if isinstance(out, str) else out["a"]


@pytest.mark.parametrize("surface", SURFACES)
def test_a_resume_value_the_parser_refuses_is_asked_for_again(surface: str) -> None:
    graph, start = _escalating(surface)
    config = {"configurable": {"thread_id": surface}}
    first = graph.invoke(start, config)
    assert first["__interrupt__"][0].value["event"] == "maker.escalation"
    again = graph.invoke(Command(resume="banana"), config)
    request = again["__interrupt__"][0].value
    assert request["refused"] == "banana"
    for expected in ("'banana'", "billing", "bug", "parse_error"):
        assert expected in request["question"], request["question"]
    # The thread is not stuck on the refused value; " Bug " parses as the candidate "bug".
    assert _answer(graph.invoke(Command(resume=" Bug "), config)) == "bug"


@pytest.mark.parametrize("surface", SURFACES)
def test_a_candidate_resume_value_is_taken_as_is(surface: str) -> None:
    graph, start = _escalating(surface)
    config = {"configurable": {"thread_id": "c"}}
    graph.invoke(start, config)
    assert _answer(graph.invoke(Command(resume="billing"), config)) == "billing"


def test_deprecated_spellings_warn_naming_the_new_one() -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        create_voting_graph(lambda q: "x", input_key="q")
    assert [str(w.message) for w in caught if w.category is DeprecationWarning] == [
        "create_voting_graph(input_key=...) is deprecated; use input_keys=... (same meaning)"
    ]


# ------------------------------------------------------------- durable= and durability=


@pytest.mark.parametrize("durability", ["sync", "exit"])
@pytest.mark.parametrize("surface", ["add_maker_step", "maker_node_durable", "maker_node"])
def test_durable_samples_survive_an_exception_under_every_durability(
    surface: str, durability: str
) -> None:
    """docs/wrapping.md's table: `durability="exit"` still writes the finished samples
    when the run exits with an error; only `maker_node` without `durable=True` redraws."""
    calls: Counter[int] = Counter()
    down = {"on": True}

    def step(q: Any, index: int) -> str:
        calls[index] += 1
        if index == 2 and down["on"]:
            raise ConnectionError("down")
        return "no" if index == 1 else "ok"

    options: dict[str, Any] = {
        "k": 3,
        "input_keys": "q",
        "output_key": "a",
        "retry": ProviderRetry(max_attempts=1, initial_delay=0.001, jitter=0.0),
    }
    builder = StateGraph(State)
    if surface == "add_maker_step":
        builder.add_edge(START, add_maker_step(builder, "c", step, **options).entry)
    else:
        builder.add_node("c", maker_node(step, durable=surface != "maker_node", **options))
        builder.add_edge(START, "c")
    graph = builder.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "1"}}
    with pytest.raises(SamplerError):
        graph.invoke({"q": "x"}, config, durability=durability)
    before = Counter(calls)
    down["on"] = False
    assert graph.invoke(None, config, durability=durability)["a"] == "ok"
    redrawn = sorted((calls - before).elements())
    assert redrawn == ([0, 1, 2, 3, 4] if surface == "maker_node" else [2, 3, 4])
