"""A spec's `temperature.hotter`: temperature escalation chosen declaratively."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler

from maker_graph.config import load_graph, load_spec
from maker_graph.decorrelation import EscalatingTemperature
from maker_graph.errors import SpecError


class _Temperatures(BaseCallbackHandler):
    """Records the temperature each chat-model call was made with."""

    def __init__(self) -> None:
        self.seen: list[float | None] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        self.seen.append((kwargs.get("invocation_params") or {}).get("temperature"))


def _spec(temperature: Any, *, k: int = 2) -> dict[str, Any]:
    return {
        "name": "heat",
        "state": {"text": "str", "out": "any", "stats": "dict"},
        "models": {
            "m": {
                "model": "simulated",
                "oracle": {"answer": "billing"},
                "choices": ["billing", "bug"],
                # Wrong often enough that many first rounds disagree and go on.
                "errors": {"error_rate": 0.4, "seed": 3},
            }
        },
        "nodes": {
            "n": {
                "kind": "maker",
                "model": "m",
                "prompt": "{text}",
                "output": "out",
                "stats": "stats",
                "k": k,
                "budget": {"max_samples": 12, "on_no_consensus": "plurality"},
                "temperature": temperature,
            }
        },
        "entry": "n",
        "finish": ["n"],
    }


def test_a_spec_with_hotter_validates() -> None:
    spec = load_spec(_spec({"first": 0.0, "rest": 0.2, "hotter": [0.7, 1.0]}))
    assert spec.nodes["n"].temperature.hotter == [0.7, 1.0]  # type: ignore[union-attr]
    # Without it nothing changes: no escalation.
    assert load_spec(_spec({})).nodes["n"].temperature.hotter is None  # type: ignore[union-attr]


@pytest.mark.parametrize("k", [2, 3])
def test_a_runs_samples_get_the_escalated_temperatures(k: int) -> None:
    graph = load_graph(_spec({"rest": 0.2, "hotter": [0.7, 1.0]}, k=k)).compile()
    schedule = EscalatingTemperature(k=k, rest=0.2, hotter=(0.7, 1.0))
    contested = 0
    for i in range(20):
        handler = _Temperatures()
        out = graph.invoke({"text": f"ticket {i}"}, {"callbacks": [handler]})
        drawn = out["stats"]["samples_drawn"]
        # Samples of a round are drawn concurrently, so compare as multisets.
        assert sorted(handler.seen) == sorted(schedule(j) for j in range(drawn))  # type: ignore[type-var]
        contested += drawn > k
    # The error rate makes contested steps common; each of them was drawn hotter.
    assert contested >= 3


def test_without_hotter_later_samples_stay_at_rest() -> None:
    graph = load_graph(_spec({"rest": 0.2})).compile()
    seen: list[float | None] = []
    for i in range(10):
        handler = _Temperatures()
        graph.invoke({"text": f"ticket {i}"}, {"callbacks": [handler]})
        seen += handler.seen
    assert set(seen) == {0.0, 0.2} and len(seen) > 20


def test_async_runs_escalate_too() -> None:
    import asyncio

    graph = load_graph(_spec({"hotter": [0.9]})).compile()

    async def run() -> list[float | None]:
        seen: list[float | None] = []
        for i in range(10):
            handler = _Temperatures()
            await graph.ainvoke({"text": f"ticket {i}"}, {"callbacks": [handler]})
            seen += handler.seen
        return seen

    assert 0.9 in asyncio.run(run())


@pytest.mark.parametrize(
    ("hotter", "where"),
    [
        ([0.5, 3.0], "nodes.n.temperature.hotter.1"),
        ([-0.1], "nodes.n.temperature.hotter.0"),
        ([], "nodes.n.temperature.hotter"),
        ("hot", "nodes.n.temperature.hotter"),
    ],
)
def test_bad_hotter_values_are_refused_where_they_are(hotter: Any, where: str) -> None:
    with pytest.raises(SpecError) as caught:
        load_spec(_spec({"hotter": hotter}))
    assert where in str(caught.value)


def test_a_decomposition_node_takes_hotter_too() -> None:
    spec = {
        "name": "towers",
        "state": {"result": "any"},
        "models": {"sim": {"model": "simulated"}},
        "nodes": {
            "solve": {
                "kind": "decomposition",
                "task": "hanoi",
                "params": {"disks": 3},
                "model": "sim",
                "k": 2,
                "temperature": {"hotter": [0.8]},
                "output": "result",
            }
        },
        "entry": "solve",
        "finish": ["solve"],
    }
    out = load_graph(spec).compile().invoke({})
    assert out["result"]["done"] and out["result"]["steps"] == 7
    with pytest.raises(SpecError, match=r"nodes\.solve\.temperature\.hotter\.0"):
        load_spec(
            {**spec, "nodes": {"solve": {**spec["nodes"]["solve"], "temperature": {"hotter": [9]}}}}
        )


def test_a_decomposition_node_accepts_prompt_rotation() -> None:
    node = {
        "kind": "decomposition",
        "task": "hanoi",
        "params": {"disks": 3},
        "model": "openai:gpt-4.1-mini",
        "prompt_rotation": True,
        "output": "result",
    }
    spec = {"name": "t", "state": {"result": "any"}, "nodes": {"solve": node}}
    spec |= {"entry": "solve", "finish": ["solve"]}
    assert load_spec(spec).nodes["solve"].prompt_rotation is True  # type: ignore[union-attr]
    with pytest.raises(SpecError, match=r"nodes\.solve\.prompt_rotation"):
        load_spec({**spec, "nodes": {"solve": {**node, "prompt_rotation": "often"}}})
