"""Prompt rotation through `ChatModelSampler(prompt=[...])` and the surfaces built on it.

tests/test_correlated_forecast.py already shows a `Rotation` of simulated samplers
(one seed per "wording") lowering collisions through `estimate`. Here the wording is
real: a `SimulatedChatModel` keys its randomness, its hard steps included, on the
prompt text it is sent, so which steps it is stuck on depends on how the prompt is
phrased, and the only thing that changes between the two arms is the prompt builder.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TypedDict

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langgraph.graph import START, StateGraph
from openai_stub import OpenAIStub, StubBehaviour

from maker_graph.decorrelation import prompt_rotation
from maker_graph.errors import ConfigurationError
from maker_graph.graph import create_voting_graph, maker_node
from maker_graph.sampling import ChatModelSampler, TemperatureSchedule, use_variation
from maker_graph.testing import ErrorModel, SimulatedChatModel
from maker_graph.vote import VotePolicy, Voter

WORDINGS = (
    "What is {a} + {b}? Reply with the number only.",
    "Add {a} and {b}. Answer with just the sum.",
    "Compute the sum of {a} and {b}; give only the result.",
)


def builder(template: str) -> Any:
    def build(step: dict[str, int]) -> list[Any]:
        return [HumanMessage(template.format(**step))]

    return build


def sum_oracle(messages: list[Any]) -> str:
    a, b = (int(x) for x in re.findall(r"\d+", messages[-1].content)[:2])
    return str(a + b)


# Stuck on 6 % of prompts (always the same wrong answer: rival 0, hard_error_rate 1),
# 1 % independent errors elsewhere. Hard steps are drawn per prompt text, so each
# wording of a step is stuck or not on its own die.
STUCK = ErrorModel(error_rate=0.01, hard_fraction=0.06, hard_error_rate=1.0, seed=3)


def steps(n: int, seed: int) -> list[dict[str, int]]:
    import random

    rng = random.Random(seed)
    return [{"a": rng.randrange(10**6), "b": rng.randrange(10**6)} for _ in range(n)]


def collisions(sampler: ChatModelSampler, inputs: list[dict[str, int]]) -> tuple[int, int]:
    """(steps whose samples 0 and 1 are both wrong with one answer, steps with both wrong)."""

    async def run() -> tuple[int, int]:
        same = both = 0
        for step in inputs:
            truth = str(step["a"] + step["b"])
            texts = [(await sampler.sample(step, i)).text for i in (0, 1)]
            if texts[0] != truth and texts[1] != truth:
                both += 1
                same += texts[0] == texts[1]
        return same, both

    return asyncio.run(run())


def voted_errors(sampler: ChatModelSampler, inputs: list[dict[str, int]], k: int) -> int:
    voter = Voter(sampler, policy=VotePolicy(k=k, max_samples=60, on_no_consensus="plurality"))

    async def run() -> int:
        wrong = 0
        for step in inputs:
            result = await voter.vote(step)
            wrong += result.winner != str(step["a"] + step["b"])
        return wrong

    return asyncio.run(run())


def test_rotation_lowers_the_collision_rate_when_errors_depend_on_wording() -> None:
    model = SimulatedChatModel(oracle=sum_oracle, errors=STUCK)
    inputs = steps(800, seed=11)
    fixed = ChatModelSampler(model, prompt=builder(WORDINGS[0]))
    rotated = ChatModelSampler(model, prompt=[builder(w) for w in WORDINGS])
    same_fixed, both_fixed = collisions(fixed, inputs)
    same_rotated, both_rotated = collisions(rotated, inputs)
    # One wording: a stuck step collides on both samples: ~6 % of 800 = 48 (binomial
    # s.d. ~6.7), plus ~0.01 % from independent errors. Rotated: samples 0 and 1 are
    # two wordings, both stuck on ~0.36 % = ~2.9 steps (s.d. ~1.7). The bounds below
    # are each mean -/+ 4 s.d.; the ratio bound leaves the two arms far apart.
    assert same_fixed >= 21, (same_fixed, both_fixed)
    assert same_rotated <= 10, (same_rotated, both_rotated)
    assert same_rotated * 4 < same_fixed
    # Every double error of the fixed wording is a collision (one rival): the errors
    # are perfectly correlated, which is what rotation breaks.
    assert same_fixed == both_fixed


def test_rotation_lowers_the_voted_error() -> None:
    # k = 3 on 300 fresh steps. One wording: every stuck step is lost (~6 %: 18, s.d.
    # ~4.1). Rotated: a step is lost only when two of the three wordings are stuck
    # (3 * 0.06^2 ~ 1 %: ~3.2, s.d. ~1.8). Bounds: mean -/+ 4 s.d.
    model = SimulatedChatModel(oracle=sum_oracle, errors=STUCK)
    inputs = steps(300, seed=12)
    schedule = TemperatureSchedule(first=0.0, rest=0.7)
    wrong_fixed = voted_errors(
        ChatModelSampler(model, prompt=builder(WORDINGS[0]), temperature=schedule), inputs, 3
    )
    wrong_rotated = voted_errors(
        ChatModelSampler(model, prompt=[builder(w) for w in WORDINGS], temperature=schedule),
        inputs,
        3,
    )
    assert wrong_fixed >= 3, wrong_fixed
    assert wrong_rotated <= 11, wrong_rotated
    assert wrong_rotated * 2 < wrong_fixed


# --------------------------------------------------------------------------- the builder


class Recorder:
    """An oracle that remembers every prompt text it was asked."""

    def __init__(self) -> None:
        self.seen: list[str] = []

    def __call__(self, messages: list[Any]) -> str:
        self.seen.append(messages[-1].content)
        return sum_oracle(messages)


def test_sample_i_uses_wording_i_mod_n_and_a_stuck_redraw_moves_on() -> None:
    recorder = Recorder()
    model = SimulatedChatModel(oracle=recorder, errors=ErrorModel(error_rate=0.0))
    sampler = ChatModelSampler(model, prompt=[builder(w) for w in WORDINGS[:2]])
    step = {"a": 2, "b": 3}
    for i in range(4):
        assert asyncio.run(sampler.sample(step, i)).text == "5"
    assert recorder.seen == [WORDINGS[i % 2].format(a=2, b=3) for i in range(4)]
    recorder.seen.clear()
    with use_variation(1):  # a stuck step's redraw asks the next wording
        asyncio.run(sampler.sample(step, 0))
    assert recorder.seen == [WORDINGS[1].format(a=2, b=3)]


def test_a_builder_with_an_index_parameter_is_given_the_sample_index() -> None:
    recorder = Recorder()
    model = SimulatedChatModel(oracle=recorder, errors=ErrorModel(error_rate=0.0))

    async def build(step: dict[str, int], index: int) -> str:  # async builders work too
        return WORDINGS[index % 3].format(**step)

    sampler = ChatModelSampler(model, prompt=build)
    for i in (0, 1, 5):
        asyncio.run(sampler.sample({"a": 1, "b": 1}, i))
    assert recorder.seen == [WORDINGS[i % 3].format(a=1, b=1) for i in (0, 1, 5)]
    # A builder whose second parameter has another name keeps the one-argument call.
    plain = ChatModelSampler(model, prompt=lambda step, extra="x": f"{step['a']} + {step['b']}")
    assert asyncio.run(plain.sample({"a": 4, "b": 4}, 2)).text == "8"


@pytest.mark.parametrize(
    "prompt, message",
    [
        ([], "at least one prompt"),
        (["What is {a} + {b}?"], "entry 0 is a str"),
        ([builder(WORDINGS[0]), None], "entry 1 is a NoneType"),
    ],
)
def test_bad_paraphrase_lists_fail_when_built(prompt: Any, message: str) -> None:
    model = SimulatedChatModel(oracle=sum_oracle)
    with pytest.raises(ConfigurationError, match=message):
        ChatModelSampler(model, prompt=prompt)


def test_chat_prompt_templates_rotate_too() -> None:
    recorder = Recorder()
    model = SimulatedChatModel(oracle=recorder, errors=ErrorModel(error_rate=0.0))
    templates = [ChatPromptTemplate.from_messages([("human", w)]) for w in WORDINGS]
    for sampler in (
        ChatModelSampler(model, prompt=templates, max_tokens=20),
        prompt_rotation(model, templates, max_tokens=20),
    ):
        recorder.seen.clear()
        for i in range(3):
            assert asyncio.run(sampler.sample({"a": 7, "b": 8}, i)).text == "15"
        assert recorder.seen == [w.format(a=7, b=8) for w in WORDINGS]


# --------------------------------------------------------------------------- surfaces


class Sums(TypedDict, total=False):
    a: int
    b: int
    answer: str


def test_maker_node_and_the_voting_graph_pass_paraphrases_through() -> None:
    recorder = Recorder()
    model = SimulatedChatModel(oracle=recorder, errors=ErrorModel(error_rate=0.0))
    prompts = [builder(w) for w in WORDINGS]
    node = maker_node(model, k=3, prompt=prompts, input_keys=["a", "b"])
    graph = StateGraph(Sums)
    graph.add_node("add", node)
    graph.add_edge(START, "add")
    assert graph.compile().invoke({"a": 20, "b": 22})["answer"] == "42"
    # k = 3 unanimous: samples 0, 1, 2, one per wording.
    assert sorted(recorder.seen) == sorted(w.format(a=20, b=22) for w in WORDINGS)

    recorder.seen.clear()
    voting = create_voting_graph(model, k=2, prompt=prompts[:2]).compile()
    out = voting.invoke(
        {"step_input": {"a": 1, "b": 2}}, {"configurable": {"thread_id": "rotation"}}
    )
    assert out["answer"] == "3"
    assert sorted(recorder.seen) == sorted(w.format(a=1, b=2) for w in WORDINGS[:2])


# --------------------------------------------------------------------------- batching (n)


@pytest.fixture
def stub() -> Iterator[tuple[OpenAIStub, list[str]]]:
    seen: list[str] = []

    def oracle(messages: Any) -> str:
        seen.append(messages[-1]["content"])
        return "4"

    behaviour = StubBehaviour(
        wrong_rate=0.0,
        ramble_rate=0.0,
        malformed_rate=0.0,
        rate_limit_rate=0.0,
        server_error_rate=0.0,
        retry_after=0.01,
    )
    server = OpenAIStub(oracle, behaviour=behaviour).start()  # type: ignore[arg-type]
    try:
        yield server, seen
    finally:
        server.stop()


def test_different_wordings_never_share_one_n_request(stub: tuple[OpenAIStub, list[str]]) -> None:
    from maker_graph.providers import ProviderOptions, resolve_chat_model

    server, seen = stub
    model = resolve_chat_model("openai:stub", ProviderOptions(base_url=server.base_url, timeout=10))
    one_temperature = TemperatureSchedule(first=0.1, rest=0.1)
    sampler = ChatModelSampler(
        model,
        prompt=[lambda q: f"first wording: {q}", lambda q: f"second: {q}"],
        temperature=one_temperature,
    )
    assert sampler.batch_limit > 1
    assert sampler.batch_key(0) == sampler.batch_key(2) != sampler.batch_key(1)

    def indexed(q: str, index: int) -> str:
        return f"sample {index}: {q}"

    per_sample = ChatModelSampler(model, prompt=indexed, temperature=one_temperature)
    assert per_sample.batch_key(0) is None  # its input may differ per index

    async def run() -> tuple[Any, int, Any]:  # one event loop: the client's pool is bound to it
        rotated = await Voter(sampler, policy=VotePolicy(k=4)).vote("2+2?")
        requests = server.stats["requests"]
        return rotated, requests, await Voter(per_sample, policy=VotePolicy(k=2)).vote("2+2?")

    result, requests, by_index = asyncio.run(run())
    assert result.winner == "4" and result.samples_drawn == 4
    # Samples 0 and 2 (first wording) are one request, 1 and 3 (second) another.
    assert requests == 2 and server.stats["choices"] - 2 == 4
    assert by_index.winner == "4" and by_index.samples_drawn == 2
    assert server.stats["requests"] - requests == 2  # one request per sample
    assert sorted(set(seen)) == [
        "first wording: 2+2?",
        "sample 0: 2+2?",
        "sample 1: 2+2?",
        "second: 2+2?",
    ]


# --------------------------------------------------------------------------- specs


def _spec(**maker: Any) -> dict[str, Any]:
    node = {
        "kind": "maker",
        "model": "m",
        "output": "answer",
        "k": 3,
        "prompt": "What is {a} + {b}?",
        **maker,
    }
    return {
        "name": "sums",
        "state": {"a": "int", "b": "int", "answer": "str"},
        "models": {
            "m": {
                "model": "simulated",
                "oracle": {"function": "sum_text"},
                "errors": {"error_rate": 0.0},
            }
        },
        "nodes": {"add": node},
        "entry": "add",
        "finish": ["add"],
    }


def test_a_spec_rotates_its_prompts() -> None:
    from maker_graph.config import Registry, load_graph

    reg = Registry()
    seen: list[str] = []

    @reg.oracle
    def sum_text(prompt: str) -> str:
        seen.append(prompt)
        a, b = (int(x) for x in re.findall(r"\d+", prompt)[:2])
        return str(a + b)

    spec = _spec(
        prompts=[
            "Add {b} to {a}.",
            [
                {"role": "system", "content": "Reply with a number."},
                {"role": "user", "content": "Sum of {a} and {b}?"},
            ],
        ]
    )
    out = load_graph(spec, registry=reg).compile().invoke({"a": 40, "b": 2})
    assert out["answer"] == "42"
    assert sorted(seen) == sorted(["What is 40 + 2?", "Add 2 to 40.", "Sum of 40 and 2?"])


@pytest.mark.parametrize(
    "prompts, message",
    [
        (
            ["Add {a} to itself."],
            r"nodes.add.prompts.0: a paraphrase must use the placeholders "
            r"of prompt \({a}, {b}\), this one uses {a}",
        ),
        (["{a} + {b}", "{a} + {b} + {c}?"], r"nodes.add.prompts.1: .* uses {a}, {b}, {c}"),
        (["{a} + {b.x}"], r"nodes.add.prompts.0: .*bare name"),
        ([""], r"nodes.add.prompts.0"),
    ],
)
def test_spec_paraphrases_are_checked(prompts: list[Any], message: str) -> None:
    from maker_graph.config import load_spec
    from maker_graph.errors import SpecError

    with pytest.raises(SpecError, match=message):
        load_spec(_spec(prompts=prompts))


def test_the_json_schema_offers_prompts_on_maker_nodes() -> None:
    from maker_graph.config import spec_json_schema

    field = spec_json_schema()["$defs"]["MakerNode"]["properties"]["prompts"]
    assert field["type"] == "array" and "rotation" in field["description"]


# --------------------------------------------------------------------------- the docs


GUIDE = Path(__file__).resolve().parents[1] / "docs" / "choosing-a-model.md"


def _guide_section() -> str:
    text = GUIDE.read_text(encoding="utf-8")
    section = re.search(r"### Rotating prompts\n(.*?)\n## ", text, re.S)
    assert section, "docs/choosing-a-model.md lost its 'Rotating prompts' section"
    return section.group(1)


def test_the_guides_rotation_example_prints_what_it_shows() -> None:
    block = re.search(r"```python\n(.*?)```", _guide_section(), re.S)
    assert block, "the 'Rotating prompts' section lost its example"
    code = block.group(1)
    # What it prints is shown as a "# ..." line right under each print(...).
    shown = re.findall(r"^print\(.*\)\n# (.*)$", code, re.M)
    assert len(shown) == 2, shown
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "docs/choosing-a-model.md", "exec"), {"__name__": "guide"})
    assert out.getvalue().splitlines() == shown


def test_the_guides_rotation_spec_loads_and_runs() -> None:
    from maker_graph.config import load_graph

    block = re.search(r"```yaml\n(.*?)```", _guide_section(), re.S)
    assert block, "the 'Rotating prompts' section lost its spec"
    graph = load_graph(block.group(1)).compile()
    assert graph.invoke({"ticket": "I was charged twice"})["category"] == "billing"


# --------------------------------------------------------------- heat after disagreement


def _temperatures(answers: list[str], k: int) -> tuple[Any, list[float | None]]:
    from maker_graph.decorrelation import EscalatingTemperature
    from maker_graph.testing import ScriptedChatModel

    sampler = ChatModelSampler(
        ScriptedChatModel(answers=answers),
        temperature=EscalatingTemperature(k=k, hotter=(0.7, 1.0)),
    )
    voter = Voter(sampler, policy=VotePolicy(k=k, keep_samples=True))
    result = asyncio.run(voter.vote("q"))
    return result.winner, [s.raw.temperature for s in sorted(result.samples, key=lambda s: s.index)]


def test_escalating_temperature_heats_only_a_contested_step() -> None:
    # Unanimous first round: near-greedy samples only.
    assert _temperatures(["a", "a"], k=2) == ("a", [0.0, 0.1])
    # The first round disagrees: the next k samples at 0.7, the k after them at 1.0.
    winner, temps = _temperatures(["a", "b", "a", "b", "a", "a"], k=2)
    assert winner == "a" and temps == [0.0, 0.1, 0.7, 0.7, 1.0, 1.0]


def test_escalating_temperature_checks_its_settings() -> None:
    from maker_graph.decorrelation import EscalatingTemperature

    with pytest.raises(ConfigurationError, match="k must be"):
        EscalatingTemperature(k=0)
    with pytest.raises(ConfigurationError, match="hotter"):
        EscalatingTemperature(k=3, hotter=())
    with pytest.raises(ConfigurationError, match="hotter"):
        EscalatingTemperature(k=3, hotter=(0.5, 3.0))
