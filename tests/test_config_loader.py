"""Loading specs into graphs: the examples run offline, every node kind, models, the CLI."""

from __future__ import annotations

import asyncio
import doctest
import importlib
import importlib.util
import json
import math
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import StateGraph
from langgraph.types import Command
from typer.testing import CliRunner

from maker_graph.cli import app, load_commands
from maker_graph.config import Registry, load_graph, load_spec, registry
from maker_graph.errors import MakerRuntimeError, NoConsensusError, SpecError
from maker_graph.scaling import p_step

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "configs"


@pytest.fixture(scope="module")
def example_graphs() -> Iterator[ModuleType]:
    """The factory module `langgraph.json` points at, imported as the server does."""
    with registry.scoped():
        spec = importlib.util.spec_from_file_location(
            "maker_graph_example_graphs", EXAMPLES / "graphs.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


def _sim(answer: str = "billing", **errors: Any) -> dict[str, Any]:
    return {
        "model": "simulated",
        "oracle": {"answer": answer},
        "errors": {"error_rate": 0.0, **errors},
    }


def _one_node(
    node: dict[str, Any],
    *,
    state: dict[str, Any] | None = None,
    models: dict[str, Any] | None = None,
) -> dict[str, Any]:
    return {
        "name": "one",
        "state": state or {"text": "str", "out": "any", "stats": "dict"},
        "models": models if models is not None else {"m": _sim()},
        "nodes": {"n": node},
        "entry": "n",
        "finish": ["n"],
    }


# --------------------------------------------------------------------------- the examples


@pytest.mark.parametrize("name", ["triage", "hanoi", "hybrid"])
def test_each_example_validates_and_builds_uncompiled(
    example_graphs: ModuleType, name: str
) -> None:
    spec = load_spec(EXAMPLES / f"{name}.yaml")
    assert spec.nodes
    graph = getattr(example_graphs, name)
    assert isinstance(graph, StateGraph)  # the server compiles it with its own checkpointer


def test_triage_routes_each_ticket_to_its_desk(example_graphs: ModuleType) -> None:
    graph = example_graphs.triage.compile()
    cases = {
        "I was charged twice for one order": ("billing", "Billing desk"),
        "The app crashes when I open settings": ("bug", "Engineering"),
        "I forgot my password": ("account", "Accounts"),
        "Do you ship to Norway?": ("other", "Support"),
    }
    for ticket, (category, desk) in cases.items():
        out = graph.invoke({"ticket": ticket})
        assert out["category"] == category
        assert out["reply"].startswith(desk)
        assert out["triage_stats"]["decided_by"] == "vote"
        assert set(out) == {"category", "reply", "triage_stats"}  # the spec's output keys


async def test_triage_spec_votes_at_its_k_and_not_k_off_by_one() -> None:
    """The example's spec, with its model's error rate set to 0.3 and its k to 2, 800 tickets.

    Two-sided and sized so a node built with k = 1 or k = 3 from this spec fails:
    the band is p_step(0.7, 2) = 0.845 +- 4 binomial standard errors over 800
    tickets (+-0.051: a correct loader fails with probability about 6e-5), and
    p_step(0.7, 1) = 0.700 and p_step(0.7, 3) = 0.927 lie more than 3.3 of their
    own standard errors outside it (checked below), so a loader off by one in k
    passes with probability below 5e-4. The model errs towards one rival label
    (the worst case p_step describes) with a fixed seed, so the run is the same
    every time. (1,200 tickets gave 5.4 s.e. of margin at 1.5x the time; the
    shipped numbers, 0.8 and k = 3, would need ~8,000 tickets to tell k = 4.)
    """
    p, k, tickets, z, power = 0.7, 2, 800, 4.0, 3.3

    def se(k_: int) -> float:
        e = p_step(p, k_)
        return math.sqrt(e * (1 - e) / tickets)

    low, high = p_step(p, k) - z * se(k), p_step(p, k) + z * se(k)
    # the sizing separates k +- 1: their means lie `power` of their s.e. beyond the band
    assert p_step(p, k - 1) + power * se(k - 1) < low
    assert high < p_step(p, k + 1) - power * se(k + 1)
    spec = yaml.safe_load((EXAMPLES / "triage.yaml").read_text())
    spec["models"]["triage_model"]["errors"] = {"error_rate": 1 - p, "seed": 7}
    spec["nodes"]["classify"]["k"] = k
    spec["nodes"]["classify"]["budget"]["max_samples"] = 200
    graph = load_graph(spec).compile()
    words = {"billing": "refund", "bug": "crash", "account": "password", "other": "hello"}
    labels = [list(words)[i % 4] for i in range(tickets)]
    outs = await asyncio.gather(
        *[
            graph.ainvoke({"ticket": f"ticket {i}: {words[label]} please"})
            for i, label in enumerate(labels)
        ]
    )
    voted = sum(o["category"] == label for o, label in zip(outs, labels, strict=True)) / tickets
    assert low < voted < high
    assert all(o["triage_stats"]["decided_by"] == "vote" for o in outs)


async def test_triage_runs_async_with_a_checkpointer_and_streams(
    example_graphs: ModuleType,
) -> None:
    graph = example_graphs.triage.compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "t1"}}
    seen = [
        next(iter(update))
        async for update in graph.astream(
            {"ticket": "refund my invoice"}, config, stream_mode="updates"
        )
    ]
    assert seen == ["classify", "billing_desk"]
    state = await graph.aget_state(config)
    assert state.values["category"] == "billing"


def test_hanoi_solves_by_decomposition(example_graphs: ModuleType) -> None:
    out = example_graphs.hanoi.compile().invoke({"disks": 4})
    result = out["result"]
    assert result["steps"] == 15 and result["done"] is True
    assert result["final_state"] == [[], [], [4, 3, 2, 1]]
    assert result["totals"]["samples"] >= 45
    assert out["summary"].startswith("Moved 4 disks")


async def test_hanoi_runs_async_too(example_graphs: ModuleType) -> None:
    out = await example_graphs.hanoi.compile().ainvoke({"disks": 3})
    assert out["result"]["steps"] == 7


def test_hanoi_budget_names_the_spec_field(example_graphs: ModuleType) -> None:
    with pytest.raises(MakerRuntimeError, match="nodes.solve.max_total_samples"):
        example_graphs.hanoi.compile().invoke({"disks": 16})


@pytest.mark.parametrize(
    ("request_text", "intent", "answer", "trail"),
    [
        (
            "Please solve the Tower of Hanoi with 4 disks",
            "puzzle",
            "Solved the 4-disk puzzle",
            ["puzzle"],
        ),
        ("Where is my order AB-123? asap", "order", "Your order AB-123 is shipped.", ["order"]),
        ("order CD-456 please", "order", "Your order CD-456 is packed.", ["order"]),
        ("hi there", "other", "I can help with orders and puzzles", ["other"]),
    ],
)
def test_hybrid_pipeline_takes_each_route(
    example_graphs: ModuleType, request_text: str, intent: str, answer: str, trail: list[str]
) -> None:
    out = example_graphs.hybrid.compile().invoke({"request": request_text})
    assert out["intent"] == intent
    assert out["answer"].startswith(answer)
    assert out["trail"] == trail


def test_hybrid_needs_its_registered_tool() -> None:
    with registry.scoped():
        registry._entries["function"].pop("lookup_order", None)  # as in a fresh process
        with pytest.raises(SpecError, match="nodes.lookup.function: unknown function"):
            load_spec(EXAMPLES / "hybrid.yaml")


# --------------------------------------------------------------------------- parsers and keys


def test_labels_parser_forgives_case_and_punctuation_but_nothing_else() -> None:
    spec = _one_node(
        {
            "kind": "maker",
            "model": "m",
            "prompt": "{text}",
            "output": "out",
            "stats": "stats",
            "k": 2,
            "parser": {"kind": "labels", "labels": ["billing", "bug"]},
        },
        models={"m": _sim("  'Billing'. ")},
    )
    out = load_graph(spec).compile().invoke({"text": "x"})
    assert out["out"] == "billing"
    bad = _one_node(
        {
            "kind": "maker",
            "model": "m",
            "prompt": "{text}",
            "output": "out",
            "k": 2,
            "parser": {"kind": "labels", "labels": ["billing", "bug"]},
            "budget": {"max_samples": 4},
        },
        models={"m": _sim("billing or bug")},
    )
    with pytest.raises(NoConsensusError) as info:
        load_graph(bad).compile().invoke({"text": "x"})
    assert info.value.red_flags == {"parse_error": 4}


@pytest.mark.parametrize(
    ("parser", "reply", "expected"),
    [
        ({"kind": "regex", "pattern": r"(\d+)", "group": 1, "convert": "int"}, "a 1 b 2", 1),
        (
            {
                "kind": "regex",
                "pattern": r"(\d+)",
                "group": 1,
                "convert": "int",
                "occurrence": "last",
            },
            "a 1 b 2",
            2,
        ),
        (
            {"kind": "regex", "pattern": r"move = (?P<m>\[.*?\])", "group": "m"},
            "move = [1, 0, 2]",
            "[1, 0, 2]",
        ),
        (
            {"kind": "regex", "pattern": r"(\d+\.\d+)", "group": 1, "convert": "float"},
            "pi is 3.14",
            3.14,
        ),
        ({"kind": "text", "lowercase": True}, "  YES ", "yes"),
        (
            {
                "kind": "json",
                "schema": {
                    "type": "object",
                    "properties": {
                        "name": {"type": "string"},
                        "qty": {"type": "integer", "minimum": 1},
                    },
                },
            },
            '```json\n{"name": "bolt", "qty": 3}\n```',
            {"name": "bolt", "qty": 3},
        ),
        (
            {"kind": "json", "schema": {"type": "array", "items": {"type": "integer"}}},
            "[1, 2, 3]",
            [1, 2, 3],
        ),
        ({"kind": "json", "schema": {"type": "string", "enum": ["a", "b"]}}, '"b"', "b"),
        ({"kind": "registered", "name": "integer"}, "there are 42 of them", 42),
    ],
)
def test_parsers_turn_replies_into_answers(
    parser: dict[str, Any], reply: str, expected: Any
) -> None:
    spec = _one_node(
        {
            "kind": "maker",
            "model": "m",
            "prompt": "{text}",
            "output": "out",
            "k": 2,
            "parser": parser,
        },
        models={"m": _sim(reply)},
    )
    assert load_graph(spec).compile().invoke({"text": "x"})["out"] == expected


@pytest.mark.parametrize(
    ("parser", "reply"),
    [
        ({"kind": "regex", "pattern": r"(\d+)", "group": 1, "occurrence": "only"}, "1 and 2"),
        ({"kind": "regex", "pattern": r"(\w+)", "group": 1, "convert": "int"}, "abc"),
        (
            {
                "kind": "json",
                "schema": {
                    "type": "object",
                    "properties": {"qty": {"type": "integer", "minimum": 1}},
                },
            },
            '{"qty": 0}',
        ),
        (
            {
                "kind": "json",
                "schema": {"type": "object", "properties": {"qty": {"type": "integer"}}},
            },
            '{"qty": "3"}',
        ),
        (
            {
                "kind": "json",
                "schema": {"type": "object", "properties": {"qty": {"type": "integer"}}},
            },
            '{"qty": 3, "extra": 1}',
        ),
        (
            {
                "kind": "json",
                "schema": {"type": "object", "properties": {"qty": {"type": "integer"}}},
            },
            "qty: 3",
        ),
    ],
)
def test_replies_that_do_not_parse_are_red_flagged(parser: dict[str, Any], reply: str) -> None:
    spec = _one_node(
        {
            "kind": "maker",
            "model": "m",
            "prompt": "{text}",
            "output": "out",
            "k": 2,
            "parser": parser,
            "budget": {"max_samples": 3},
        },
        models={"m": _sim(reply)},
    )
    with pytest.raises(NoConsensusError) as info:
        load_graph(spec).compile().invoke({"text": "x"})
    # Every reply was thrown away; after two, the one sample left of the budget could
    # not give any answer a 2-vote lead, so the step stops there (loss of hope).
    assert info.value.red_flags == {"parse_error": 2}
    assert info.value.samples_drawn == 2 and info.value.stopped == "hopeless"
    assert "stopped early" in str(info.value)


def test_structured_output_and_key_fields() -> None:
    """Structured output goes through the model's tool call; votes compare `id` only."""
    reply = '{"id": "A-1", "note": "urgent"}'
    spec = _one_node(
        {
            "kind": "maker",
            "model": "m",
            "prompt": "{text}",
            "output": "out",
            "stats": "stats",
            "k": 3,
            "key": {"fields": ["id"]},
            "parser": {
                "kind": "json",
                "structured": True,
                "schema": {
                    "type": "object",
                    "properties": {"id": {"type": "string"}, "note": {"type": "string"}},
                    "required": ["id"],
                },
            },
        },
        models={"m": _sim(reply)},
    )
    out = load_graph(spec).compile().invoke({"text": "x"})
    assert out["out"] == {"id": "A-1", "note": "urgent"}
    assert out["stats"]["tally"] == [['{"id":"A-1"}', 3]]


def test_casefold_key_merges_votes() -> None:
    spec = _one_node(
        {
            "kind": "maker",
            "model": "m",
            "prompt": "{text}",
            "output": "out",
            "stats": "stats",
            "k": 2,
            "key": "casefold",
        },
        models={"m": _sim("Yes")},
    )
    out = load_graph(spec).compile().invoke({"text": "x"})
    assert out["stats"]["tally"] == [["yes", 2]]


def test_red_flags_discard_long_replies_before_they_vote() -> None:
    # Every ramble is long and wrong; the token cap throws them all away.
    models = {
        "m": {
            "model": "simulated",
            "oracle": {"answer": "billing"},
            "choices": ["billing", "bug"],
            "errors": {
                "error_rate": 0.0,
                "ramble_rate": 0.4,
                "ramble_tokens": 300,
                "ramble_error_rate": 1.0,
                "seed": 2,
            },
        }
    }
    spec = _one_node(
        {
            "kind": "maker",
            "model": "m",
            "prompt": "{text}",
            "output": "out",
            "stats": "stats",
            "k": 3,
            "red_flags": [
                {"kind": "max_output_tokens", "limit": 50},
                {"kind": "matches", "pattern": "reconsider", "reason": "hedging"},
            ],
        },
        models=models,
    )
    graph = load_graph(spec).compile()
    flagged = 0
    for i in range(10):
        out = graph.invoke({"text": f"ticket {i}"})
        assert out["out"] == "billing"
        flagged += out["stats"]["red_flags"].get("too_long", 0)
    assert flagged > 0


def test_registered_components_with_params() -> None:
    reg = Registry()
    calls: list[str] = []

    @reg.parser("first_word", factory=True)
    def first_word(upper: bool = False) -> Any:
        def parse(output: Any) -> str:
            word = str(output.content).split()[0]
            return word.upper() if upper else word

        return parse

    @reg.red_flag("mentions", factory=True)
    def mentions(word: str) -> Any:
        return lambda sample: word in sample.raw.text

    @reg.key("length")
    def length(answer: Any) -> int:
        return len(answer)

    @reg.oracle
    def echo(prompt: str) -> str:
        calls.append(prompt)
        return prompt.split(":", 1)[1].strip()

    @reg.function(factory=True)
    def stamp(label: str) -> Any:
        return lambda state: {"stats": {"label": label}}

    spec = {
        "name": "custom",
        "state": {"text": "str", "out": "any", "stats": "dict"},
        "models": {
            "m": {
                "model": "simulated",
                "oracle": {"function": "echo"},
                "errors": {"error_rate": 0.0},
            }
        },
        "nodes": {
            "n": {
                "kind": "maker",
                "model": "m",
                "prompt": "say: {text}",
                "output": "out",
                "k": 2,
                "parser": {"kind": "registered", "name": "first_word", "params": {"upper": True}},
                "key": {"function": "length"},
                "red_flags": [
                    {"kind": "registered", "name": "mentions", "params": {"word": "forbidden"}}
                ],
            },
            "s": {"kind": "function", "function": "stamp", "params": {"label": "done"}},
        },
        "edges": ["START -> n", "n -> s", "s -> END"],
    }
    out = load_graph(spec, registry=reg).compile().invoke({"text": "hello world"})
    assert out["out"] == "HELLO"
    assert out["stats"] == {"label": "done"}
    assert calls and calls[0] == "say: hello world"
    bad = json.loads(json.dumps(spec))
    bad["nodes"]["n"]["parser"]["params"] = {"lower": True}
    with pytest.raises(SpecError, match="nodes.n.parser.params: params do not fit parser"):
        load_spec(bad, registry=reg)


# --------------------------------------------------------------------------- node kinds


def test_prompt_node_makes_one_call_and_fails_clearly_on_a_bad_reply() -> None:
    spec = _one_node(
        {
            "kind": "prompt",
            "model": "m",
            "prompt": [
                {"role": "system", "content": "Be brief."},
                {"role": "user", "content": "{text}"},
            ],
            "output": "out",
            "temperature": 0.3,
            "max_tokens": 20,
        },
        models={"m": _sim("fine")},
    )
    assert load_graph(spec).compile().invoke({"text": "hi"})["out"] == "fine"
    strict = _one_node(
        {
            "kind": "prompt",
            "model": "m",
            "prompt": "{text}",
            "output": "out",
            "parser": {"kind": "labels", "labels": ["yes", "no"]},
        },
        models={"m": _sim("maybe")},
    )
    with pytest.raises(MakerRuntimeError, match="node 'n': the model's reply did not parse"):
        load_graph(strict).compile().invoke({"text": "hi"})


def test_function_node_writing_an_undeclared_key_fails_clearly() -> None:
    reg = Registry()
    reg.add("function", "leaky", lambda state: {"undeclared": 1})
    spec = _one_node({"kind": "function", "function": "leaky"})
    with pytest.raises(MakerRuntimeError, match="wrote 'undeclared', which the spec's state"):
        load_graph(spec, registry=reg).compile().invoke({"text": "x"})


async def test_async_function_node() -> None:
    reg = Registry()

    @reg.function
    async def shout(state: dict[str, Any], suffix: str = "!") -> dict[str, Any]:
        return {"out": state["text"].upper() + suffix}

    spec = _one_node({"kind": "function", "function": "shout", "params": {"suffix": "?"}})
    out = await load_graph(spec, registry=reg).compile().ainvoke({"text": "hi"})
    assert out["out"] == "HI?"


def test_missing_prompt_value_is_a_clear_runtime_error() -> None:
    spec = _one_node({"kind": "prompt", "model": "m", "prompt": "{text}", "output": "out"})
    with pytest.raises(MakerRuntimeError, match="state key\\(s\\) text have no value yet"):
        load_graph(spec).compile().invoke({})


def test_decomposition_with_fixed_params_and_bad_params() -> None:
    spec = _one_node(
        {
            "kind": "decomposition",
            "task": "hanoi",
            "params": {"disks": 2},
            "model": "simulated",
            "output": "out",
        }
    )
    assert load_graph(spec).compile().invoke({})["out"]["steps"] == 3
    bad = _one_node(
        {
            "kind": "decomposition",
            "task": "hanoi",
            "params": {"disks": 0},
            "model": "simulated",
            "output": "out",
        }
    )
    with pytest.raises(SpecError, match="nodes.n.params: task 'hanoi' refused its params"):
        load_graph(bad)


def test_decomposition_chunk_one_steps_through_the_voting_nodes() -> None:
    spec = _one_node(
        {
            "kind": "decomposition",
            "task": "hanoi",
            "params": {"disks": 3},
            "model": "simulated",
            "chunk": 1,
            "output": "out",
        }
    )
    graph = load_graph(spec).compile()
    out = graph.invoke({})["out"]
    assert out["steps"] == 7 and out["done"] is True
    # chunk=1 shows each micro-step's vote: the inner graph streams one decision per step.
    events = [
        e
        for _, e in graph.stream({}, stream_mode="custom", subgraphs=True)
        if isinstance(e, dict) and e.get("event") == "maker.decided"
    ]
    assert len(events) == 7
    # More chunks than the parent run's recursion limit (25): the sub-graph gets its own.
    many = _one_node(
        {
            "kind": "decomposition",
            "task": "hanoi",
            "params": {"disks": 6},
            "model": "simulated",
            "chunk": 2,
            "output": "out",
        }
    )
    assert load_graph(many).compile().invoke({})["out"]["steps"] == 63
    bad = _one_node(
        {
            "kind": "decomposition",
            "task": "hanoi",
            "params": {"disks": 3},
            "model": "simulated",
            "chunk": 0,
            "output": "out",
        }
    )
    with pytest.raises(SpecError, match="nodes.n.chunk"):
        load_graph(bad)


def test_a_task_without_simulator_cannot_use_a_simulated_model() -> None:
    reg = registry.copy()
    reg.add("task", "plain_task", lambda: None, factory=True)
    spec = _one_node(
        {"kind": "decomposition", "task": "plain_task", "model": "simulated", "output": "out"}
    )
    with pytest.raises(SpecError, match="has no simulator"):
        load_graph(spec, registry=reg)


# --------------------------------------------------------------------------- edges, state


def test_routes_compare_values_as_text_and_fail_without_a_case() -> None:
    reg = Registry()
    reg.add("function", "mark", lambda state, value: {"out": value})
    reg.add("function", "noop", lambda state: {})
    spec = {
        "name": "r",
        "state": {"flag": "bool", "out": "any"},
        "nodes": {
            "check": {"kind": "function", "function": "noop"},
            "yes": {"kind": "function", "function": "mark", "params": {"value": "y"}},
            "no": {"kind": "function", "function": "mark", "params": {"value": "n"}},
        },
        "entry": "check",
        "routes": [{"from": "check", "on": "flag", "cases": {"true": "yes", "false": "no"}}],
        "finish": ["yes", "no"],
    }
    graph = load_graph(spec, registry=reg).compile()
    assert graph.invoke({"flag": True})["out"] == "y"
    assert graph.invoke({"flag": False})["out"] == "n"
    with pytest.raises(MakerRuntimeError, match="flag='null' matches no case"):
        graph.invoke({})
    mermaid = graph.get_graph().draw_mermaid()
    assert "check -.-> yes" in mermaid or "check -.->" in mermaid


def test_reducers_append_add_and_merge() -> None:
    reg = Registry()
    reg.add("function", "write", lambda state: {"log": "a", "count": 2, "meta": {"b": 1}})
    spec = {
        "name": "reducers",
        "state": {
            "log": {"type": "list", "reducer": "append"},
            "count": {"type": "int", "reducer": "add"},
            "meta": {"type": "dict", "reducer": "merge"},
        },
        "nodes": {"w": {"kind": "function", "function": "write"}},
        "entry": "w",
        "finish": ["w"],
    }
    out = (
        load_graph(spec, registry=reg)
        .compile()
        .invoke({"log": ["start"], "count": 1, "meta": {"a": 0}})
    )
    assert out == {"log": ["start", "a"], "count": 3, "meta": {"a": 0, "b": 1}}


def test_escalation_interrupts_and_resumes_with_a_human_answer() -> None:
    models = {
        "m": {
            "model": "simulated",
            "oracle": {"answer": "billing"},
            "choices": ["billing", "bug"],
            "errors": {"error_rate": 0.5, "seed": 1},
        }
    }
    spec = _one_node(
        {
            "kind": "maker",
            "model": "m",
            "prompt": "{text}",
            "output": "out",
            "k": 5,
            "budget": {"max_samples": 5, "on_no_consensus": "escalate"},
        },
        models=models,
    )
    graph = load_graph(spec).compile(checkpointer=InMemorySaver())
    config = {"configurable": {"thread_id": "esc"}}
    first = graph.invoke({"text": "which desk?"}, config)
    assert "__interrupt__" in first
    resumed = graph.invoke(Command(resume="bug"), config)
    assert resumed["out"] == "bug"


# --------------------------------------------------------------------------- models


def test_provider_models_take_their_key_from_the_named_variable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("MAKER_TEST_KEY", raising=False)
    spec = _one_node(
        {"kind": "prompt", "model": "gpt", "prompt": "{text}", "output": "out"},
        models={"gpt": {"model": "openai:gpt-4.1-mini", "api_key_env": "MAKER_TEST_KEY"}},
    )
    with pytest.raises(SpecError) as info:
        load_graph(spec)
    assert info.value.problems[0][0] == "models.gpt"
    assert "MAKER_TEST_KEY" in info.value.problems[0][1]
    monkeypatch.setenv("MAKER_TEST_KEY", "sk-test-not-real")
    graph = load_graph(spec)
    model = graph.nodes["n"].runnable
    assert model is not None


def test_a_local_server_model_builds_offline() -> None:
    spec = _one_node(
        {"kind": "maker", "model": ["local", "local2"], "prompt": "{text}", "output": "out"},
        models={
            "local": {
                "model": "openai:qwen2.5-0.5b",
                "base_url": "http://127.0.0.1:9/v1",
                "max_tokens": 40,
                "temperature": 0.2,
                "timeout": 5,
                "requests_per_second": 5,
            },
            "local2": {"model": "openai:qwen2.5-1.5b", "base_url": "http://127.0.0.1:9/v1"},
        },
    )
    node = load_graph(spec).nodes["n"].runnable
    models = node.voter.sampler.models  # type: ignore[union-attr]
    assert [type(m).__name__ for m in models] == ["ChatOpenAI", "ChatOpenAI"]
    assert models[0].max_tokens == 40
    assert models[0].rate_limiter is not None and models[1].rate_limiter is None


def test_missing_langchain_gives_an_install_hint(monkeypatch: pytest.MonkeyPatch) -> None:
    real = importlib.util.find_spec

    def hide_langchain(name: str, *args: Any) -> Any:
        return None if name == "langchain" else real(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", hide_langchain)
    spec = _one_node(
        {"kind": "prompt", "model": "openai:gpt-4.1-mini", "prompt": "{text}", "output": "out"}
    )
    with pytest.raises(SpecError) as info:
        load_graph(spec)
    location, message = info.value.problems[0]
    assert location == "nodes.n.model"
    assert "pip install 'maker-graph[providers]'" in message


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli() -> CliRunner:
    load_commands()
    return CliRunner()


def test_cli_schema_prints_the_committed_schema(cli: CliRunner) -> None:
    result = cli.invoke(app, ["schema"])
    assert result.exit_code == 0
    assert result.output == (ROOT / "maker-graph.schema.json").read_text(encoding="utf-8")


def test_cli_validate(cli: CliRunner) -> None:
    result = cli.invoke(
        app, ["validate", str(EXAMPLES / "triage.yaml"), str(EXAMPLES / "hanoi.yaml")]
    )
    assert result.exit_code == 0, result.output
    assert "ok: " in result.output and "ticket-triage: 5 nodes" in result.output
    built = cli.invoke(
        app,
        [
            "validate",
            "--build",
            str(EXAMPLES / "hybrid.yaml"),
            "--import",
            str(EXAMPLES / "graphs.py"),
        ],
    )
    assert built.exit_code == 0, built.output
    assert "builds (11 nodes)" in built.output


def test_cli_run_prints_the_final_state(cli: CliRunner) -> None:
    result = cli.invoke(
        app, ["run", str(EXAMPLES / "triage.yaml"), "--input", '{"ticket": "my invoice is wrong"}']
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert out["category"] == "billing"


def test_cli_run_streams_updates(cli: CliRunner, tmp_path: Path) -> None:
    payload = tmp_path / "input.json"
    payload.write_text('{"disks": 2}')
    result = cli.invoke(
        app, ["run", str(EXAMPLES / "hanoi.yaml"), "--input", f"@{payload}", "--stream"]
    )
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert json.loads(lines[0])["solve"]["result"]["steps"] == 3
    assert '"summary"' in result.output


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--input", "{not json"], 2, "error: --input is not JSON"),
        (["--input", "[1]"], 2, "error: --input must be a JSON object"),
        (["--input", '{"tikket": "x"}'], 2, "error: --input: unknown key(s) tikket"),
        (["--input", '{"ticket": 3}'], 2, "error: --input: ticket must be str, got 3"),
        (["--import", "no_such_module_xyz"], 2, "error: --import no_such_module_xyz"),
    ],
)
def test_cli_run_bad_input_is_one_clear_line(
    cli: CliRunner, args: list[str], code: int, message: str
) -> None:
    result = cli.invoke(app, ["run", str(EXAMPLES / "triage.yaml"), *args])
    assert result.exit_code == code
    assert result.output.startswith(message), result.output
    assert "Traceback" not in result.output


def test_cli_run_reports_a_broken_spec_and_a_failed_run(cli: CliRunner, tmp_path: Path) -> None:
    broken = cli.invoke(app, ["run", str(ROOT / "tests/broken_specs/k_zero.yaml")])
    assert broken.exit_code == 2
    assert "nodes.classify.k: must be >= 1, got 0" in broken.output
    result = cli.invoke(app, ["run", str(EXAMPLES / "hanoi.yaml"), "--input", '{"disks": 16}'])
    assert result.exit_code == 1
    assert result.output.startswith("error: samples budget spent")
    assert len(result.output.strip().splitlines()) == 1


# --------------------------------------------------------------------------- docs


@pytest.mark.parametrize(
    "module",
    [
        "maker_graph.config",
        "maker_graph.config.loader",
        "maker_graph.config.spec",
        "maker_graph.config.checks",
        "maker_graph.config.registry",
        "maker_graph.registry",
        "maker_graph.config._build",
        "maker_graph.config._parsers",
    ],
)
def test_docstring_examples_run(module: str) -> None:
    with registry.scoped():
        result = doctest.testmod(importlib.import_module(module), optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


def test_configs_doc_names_every_field() -> None:
    from maker_graph.config import spec_json_schema

    text = (ROOT / "docs" / "configs.md").read_text(encoding="utf-8")
    schema = spec_json_schema()
    missing = sorted(
        {
            field
            for definition in [schema, *schema["$defs"].values()]
            for field in definition.get("properties", {})
            if f"`{field}`" not in text
        }
    )
    assert missing == []


def test_complete_specs_in_the_configs_doc_load() -> None:
    text = (ROOT / "docs" / "configs.md").read_text(encoding="utf-8")
    blocks = [b.split("```", 1)[0] for b in text.split("```yaml\n")[1:]]
    complete = [
        b
        for b in blocks
        if "\nnodes:" in b and b.lstrip("# \n").startswith(("name:", "yaml-language-server"))
    ]
    assert complete
    for block in complete:
        assert load_spec(block).nodes
