"""The voting sub-graph: Send fan-out, k-ahead reducer, red-flag guard edge, budgets,
escalation by interrupt, checkpointer resume, subgraph streaming, accuracy lift."""

from __future__ import annotations

import asyncio
import math
import pickle
from collections import Counter
from typing import Any, TypedDict

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command, Send

from maker_graph.errors import ConfigurationError, NoConsensusError, SamplerError
from maker_graph.graph import create_voting_graph
from maker_graph.graph.voting_graph import (
    STATS_KEY,
    k_ahead_reducer,
    new_tally,
    red_flag_condition,
    tally_condition,
)
from maker_graph.records import RawSample
from maker_graph.red_flags import max_output_tokens
from maker_graph.sampling import ProviderRetry
from maker_graph.scaling import p_step
from maker_graph.testing import ErrorModel, ScriptedSampler, SimulatedSampler

FAST_RETRY = ProviderRetry(max_attempts=2, initial_delay=0.001, jitter=0.0)


def strict(text: str) -> str:
    if text.startswith("BAD"):
        raise ValueError("malformed")
    return text


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


class ByIndex:
    """Answers by sample index, so the outcome does not depend on thread timing."""

    def __init__(self, answers: list[str]) -> None:
        self.answers = answers
        self.calls: list[int] = []

    async def sample(self, step_input: Any, index: int) -> RawSample:
        self.calls.append(index)
        return RawSample(self.answers[index], self.answers[index])


async def run(graph: Any, inputs: Any, config: Any = None, *, use_async: bool) -> Any:
    if use_async:
        return await graph.ainvoke(inputs, config)
    return await asyncio.to_thread(graph.invoke, inputs, config)


# --------------------------------------------------------------------------- shape


def test_drawing_shows_dispatch_sample_tally_and_the_guard_edge() -> None:
    mermaid = create_voting_graph(lambda q: "x").compile().get_graph().draw_mermaid()
    for node in ("dispatch", "sample", "tally"):
        assert f"{node}({node})" in mermaid
    assert "sample -. &nbsp;red_flag&nbsp; .-> sample" in mermaid  # the guard edge
    assert "sample -. &nbsp;vote&nbsp; .-> tally" in mermaid
    assert "tally -. &nbsp;next_round&nbsp; .-> sample" in mermaid
    assert "escalate" not in mermaid
    with_escalation = create_voting_graph(lambda q: "x", on_no_consensus="escalate")
    drawn = with_escalation.compile().get_graph().draw_mermaid()
    assert "tally -. &nbsp;no_consensus&nbsp; .-> escalate" in drawn


def test_factory_returns_an_uncompiled_state_graph() -> None:
    assert isinstance(create_voting_graph(lambda q: "x"), StateGraph)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"k": 0}, "k must be"),
        ({"k": 3, "max_samples": 2}, "max_samples"),
        ({"on_no_consensus": "coin"}, "on_no_consensus"),
        ({"temperature": 0.5}, "only apply when the step is a chat model"),
        ({"input_keys": "answer"}, "must differ"),
    ],
)
def test_bad_options_fail_at_build_time(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        create_voting_graph(lambda q: "x", **options)


# --------------------------------------------------------------------------- voting


@pytest.mark.parametrize("use_async", [False, True])
async def test_invoke_and_ainvoke_decide_by_k_ahead(use_async: bool) -> None:
    sampler = ByIndex(["a", "b", "a", "a", "a"])
    graph = create_voting_graph(sampler, k=2, stats_key=STATS_KEY).compile()
    out = await run(graph, {"step_input": "q"}, use_async=use_async)
    assert out["answer"] == "a"
    stats = out["maker_stats"]
    # Round 1 draws k=2 (a, b: lead 0), round 2 needs 2 more (a, a: lead 2).
    assert stats["samples_drawn"] == 4 and stats["rounds"] == 2
    assert stats["tally"] == [["a", 3], ["b", 1]]
    assert sorted(sampler.calls) == [0, 1, 2, 3]
    assert set(out) == {"answer", "maker_stats"}  # the output schema hides the tally


async def test_custom_keys_and_no_stats_by_default() -> None:
    graph = create_voting_graph(lambda q: q * 2, k=1, input_keys="q", output_key="a").compile()
    assert await graph.ainvoke({"q": "ab"}) == {"a": "abab"}


async def test_input_keys_as_a_list_hands_the_step_a_dict() -> None:
    graph = create_voting_graph(lambda d: f"{d['a']}-{d['b']}", k=1, input_keys=["a", "b"])
    assert await graph.compile().ainvoke({"a": 1, "b": 2}) == {"answer": "1-2"}


def test_input_key_still_works_with_a_deprecation_warning() -> None:
    with pytest.warns(DeprecationWarning, match=r"use input_keys="):
        graph = create_voting_graph(lambda q: q * 2, k=1, input_key="q", output_key="a")
    assert graph.compile().invoke({"q": "ab"}) == {"a": "abab"}
    with pytest.raises(ConfigurationError, match="input_keys= only"):
        create_voting_graph(lambda q: q, input_key="q", input_keys="q")


def test_reducer_joins_votes_and_records_the_first_answer_k_ahead() -> None:
    join = k_ahead_reducer(2)
    tally = new_tally("q")
    for key in ["a", "b", "b", "a", "b", "b"]:
        tally = join(tally, {"op": "sample", "key": key, "value": key.upper(), "drawn": 1})
        if tally["winner"] is not None:
            break
    assert tally["keys"][tally["winner"]] == "b" and tally["values"] == ["A", "B"]
    # Keys that came back from a checkpointer as lists still match their tuples.
    tally = join(new_tally(), {"op": "sample", "key": (1, (2, 3)), "value": 1, "drawn": 1})
    tally["keys"] = [[1, [2, 3]]]
    tally = join(tally, {"op": "sample", "key": (1, (2, 3)), "value": 1, "drawn": 1})
    assert tally["counts"] == [2] and tally["winner"] == 0
    flagged = join(new_tally(), {"op": "sample", "flag": "too_long", "drawn": 1})
    assert flagged["flags"] == {"too_long": 1} and flagged["valid"] == 0


def test_routers_only_follow_the_nodes_decision() -> None:
    send = Send("sample", {"index": 4})
    assert red_flag_condition({"maker_graph.route": send}) is send
    assert red_flag_condition({"maker_graph.route": None}) == "vote"
    assert tally_condition({"maker_graph.route": "decided"}) == "decided"
    assert tally_condition({"maker_graph.route": []}) == []


# --------------------------------------------------------------------------- red flags


async def test_red_flagged_sample_is_resampled_through_the_guard_edge() -> None:
    sampler = ScriptedSampler(["a", "BAD", "a", "a"])
    graph = create_voting_graph(sampler, k=3, parser=strict, stats_key=STATS_KEY).compile()
    updates = [u async for u in graph.astream({"step_input": "q"}, stream_mode="updates")]
    nodes = [next(iter(u)) for u in updates]
    # dispatch; three samples; the guard sends the flagged one straight back to
    # `sample` (a superstep where the tally only waits), then the tally decides.
    assert nodes[:4] == ["dispatch", "sample", "sample", "sample"]
    assert sorted(nodes[4:6]) == ["sample", "tally"] and nodes[6:] == ["tally"]
    # Slot 1's resample takes the next index of its slot (1 + k), never a sibling's.
    assert [i for _, i in sampler.calls] == [0, 1, 2, 4]
    final = updates[-1]["tally"]
    assert final["answer"] == "a"
    assert final["maker_stats"]["red_flags"] == {"parse_error": 1}
    assert final["maker_stats"]["tally"] == [["a", 3]]  # the flagged sample never voted
    assert final["maker_stats"]["samples_drawn"] == 4


async def test_length_red_flag_uses_reported_tokens() -> None:
    sampler = ScriptedSampler(
        [
            RawSample("x", "x", output_tokens=900),
            RawSample("y", "y", output_tokens=10),
            RawSample("y", "y", output_tokens=10),
        ]
    )
    graph = create_voting_graph(
        sampler, k=2, red_flags=[max_output_tokens(750)], stats_key=STATS_KEY
    ).compile()
    out = await graph.ainvoke({"step_input": "q"})
    assert out["answer"] == "y"
    assert out["maker_stats"]["red_flags"] == {"too_long": 1}


@pytest.mark.parametrize(("k", "budget"), [(3, 7), (2, 5), (4, 4)])
async def test_red_flag_resampling_never_exceeds_the_budget(k: int, budget: int) -> None:
    calls: list[int] = []

    async def always_bad(q: str, index: int) -> str:
        calls.append(index)
        return "BAD"

    graph = create_voting_graph(always_bad, k=k, parser=strict, max_samples=budget).compile()
    with pytest.raises(NoConsensusError) as info:
        await graph.ainvoke({"step_input": "q"})
    assert len(calls) == budget == info.value.samples_drawn
    assert len(set(calls)) == budget  # every sample had its own index
    assert info.value.red_flags == {"parse_error": budget}
    assert info.value.max_samples == budget


# --------------------------------------------------------------------------- budget


async def test_budget_spent_raises_with_the_tally() -> None:
    graph = create_voting_graph(ScriptedSampler(["a", "b"] * 3), k=2, max_samples=6).compile()
    with pytest.raises(NoConsensusError) as info:
        await graph.ainvoke({"step_input": "q"})
    assert info.value.tally == {"a": 3, "b": 3}
    assert info.value.samples_drawn == 6 and info.value.k == 2


async def test_budget_spent_with_plurality_takes_the_leader() -> None:
    sampler = ScriptedSampler(["b", "a", "a", "b", "a"])
    graph = create_voting_graph(
        sampler, k=3, max_samples=5, on_no_consensus="plurality", stats_key=STATS_KEY
    ).compile()
    out = await graph.ainvoke({"step_input": "q"})
    assert out["answer"] == "a" and out["maker_stats"]["decided_by"] == "plurality"


@pytest.mark.parametrize("use_async", [False, True])
async def test_escalation_interrupts_and_resumes_with_the_human_answer(use_async: bool) -> None:
    sampler = ByIndex(["a", "b"] * 2)
    graph = create_voting_graph(
        sampler, k=2, max_samples=4, on_no_consensus="escalate", stats_key=STATS_KEY
    ).compile(checkpointer=InMemorySaver())
    config = cfg(f"esc-{use_async}")
    paused = await run(graph, {"step_input": "which?"}, config, use_async=use_async)
    (request,) = paused["__interrupt__"]
    assert request.value["event"] == "maker.escalation"
    assert request.value["tally"] == [["a", 2], ["b", 2]]
    assert request.value["step_input"] == "which?"
    out = await run(graph, Command(resume="c"), config, use_async=use_async)
    assert out["answer"] == "c"
    assert out["maker_stats"]["decided_by"] == "escalation"
    assert sorted(sampler.calls) == [0, 1, 2, 3]  # resuming ran the escalate node only


async def test_escalation_handler_answers_without_interrupt() -> None:
    seen = []

    async def stronger_model(result: Any) -> str:
        seen.append(dict(result.tally))
        return "b"

    graph = create_voting_graph(
        ScriptedSampler(["a", "b"]),
        k=2,
        max_samples=2,
        on_no_consensus="escalate",
        escalate=stronger_model,
    ).compile()
    out = await graph.ainvoke({"step_input": "q"})
    assert out["answer"] == "b" and seen == [{"a": 1, "b": 1}]


# --------------------------------------------------------------------------- failures


class Flaky:
    """Sample 1 fails while `broken`; every call is recorded, finished ones too."""

    def __init__(self) -> None:
        self.calls: list[int] = []
        self.finished: list[int] = []
        self.broken = True

    async def sample(self, step_input: Any, index: int) -> RawSample:
        self.calls.append(index)
        if index == 1 and self.broken:
            await asyncio.sleep(0.005)
            raise ConnectionError("provider down")
        await asyncio.sleep(0.03)  # slower than the failure: a cancelled sibling shows
        self.finished.append(index)
        return RawSample("a", "a")


async def test_a_failing_sample_never_cancels_its_siblings() -> None:
    flaky = Flaky()
    graph = create_voting_graph(flaky, k=3, retry=FAST_RETRY).compile()
    with pytest.raises(SamplerError):
        await graph.ainvoke({"step_input": "q"})
    assert sorted(flaky.finished) == [0, 2]  # both siblings ran to the end


@pytest.mark.parametrize("use_async", [False, True])
async def test_resume_after_an_exception_mid_vote_loses_no_finished_sample(
    use_async: bool,
) -> None:
    flaky = Flaky()
    graph = create_voting_graph(flaky, k=3, retry=FAST_RETRY, stats_key=STATS_KEY).compile(
        checkpointer=InMemorySaver()
    )
    config = cfg(f"resume-{use_async}")
    with pytest.raises(SamplerError):
        await run(graph, {"step_input": "q"}, config, use_async=use_async)
    before = Counter(flaky.calls)
    assert before[0] == before[2] == 1
    flaky.broken = False
    out = await run(graph, None, config, use_async=use_async)
    assert out["answer"] == "a"
    after = Counter(flaky.calls)
    assert after[0] == after[2] == 1  # finished samples were not drawn again
    assert after[1] == before[1] + 1  # only the failed one was
    assert out["maker_stats"]["provider_failures"] == {"exception": 2}


async def test_transient_provider_failures_are_retried_not_counted() -> None:
    sampler = SimulatedSampler(
        lambda q: "ok", errors=ErrorModel(error_rate=0.0, exception_rate=0.3, seed=5)
    )
    graph = create_voting_graph(
        sampler, k=3, retry=ProviderRetry(initial_delay=0.0), stats_key=STATS_KEY
    ).compile()
    out = await graph.ainvoke({"step_input": "q"})
    assert out["answer"] == "ok" and out["maker_stats"]["samples_drawn"] == 3


# --------------------------------------------------------------------------- parent graphs


class Parent(TypedDict, total=False):
    step_input: str
    answer: str
    n: int


def parent_loop(voting: Any, steps: int) -> StateGraph[Any, Any, Any, Any]:
    def prepare(state: Parent) -> dict[str, Any]:
        n = state.get("n", 0)
        return {"step_input": f"q{n}", "n": n + 1}

    builder = StateGraph(Parent)
    builder.add_node("prepare", prepare)
    builder.add_node("vote", voting)
    builder.add_edge(START, "prepare")
    builder.add_edge("prepare", "vote")
    builder.add_conditional_edges(
        "vote", lambda s: "prepare" if s["n"] < steps else END, ["prepare", END]
    )
    return builder


async def test_custom_events_reach_the_parent_with_subgraphs() -> None:
    voting = create_voting_graph(
        ScriptedSampler(["a", "BAD", "a", "a"]), k=3, parser=strict
    ).compile()
    graph = parent_loop(voting, 1).compile()
    events = [
        (ns, chunk) async for ns, chunk in graph.astream({}, stream_mode="custom", subgraphs=True)
    ]
    names = [chunk["event"] for _, chunk in events]
    assert names[0] == "maker.round"
    assert names.count("maker.sample") == 4 and names.count("maker.red_flag") == 1
    assert names[-1] == "maker.decided" and events[-1][1]["winner"] == "a"
    assert all(ns and ns[0].startswith("vote:") for ns, _ in events)  # from the subgraph


async def test_tally_resets_per_step_and_state_stays_small() -> None:
    answers = SimulatedSampler(lambda q: q.upper(), errors=ErrorModel(error_rate=0.1, seed=3))
    voting = create_voting_graph(answers, k=2).compile()
    saver = InMemorySaver()
    graph = parent_loop(voting, 40).compile(checkpointer=saver)
    config = {**cfg("loop"), "recursion_limit": 1000}
    out = await graph.ainvoke({}, config)
    assert out == {"step_input": "q39", "answer": "Q39", "n": 40}
    sizes = [len(pickle.dumps(s.values)) for s in graph.get_state_history(config)]
    assert max(sizes) - min(sizes) < 200  # no key grows with the number of steps


async def test_voting_graph_state_is_o1_when_checkpointed_itself() -> None:
    graph = create_voting_graph(ScriptedSampler(["a", "b", "a", "a"]), k=2).compile(
        checkpointer=InMemorySaver()
    )
    await graph.ainvoke({"step_input": "q"}, cfg("t"))
    tally = graph.get_state(cfg("t")).values["maker_votes"]
    assert tally["counts"] == [3, 1] and tally["in_flight"] == 0
    assert tally["decided_by"] == "vote"


# --------------------------------------------------------------------------- statistics


async def test_accuracy_lift_matches_p_step_and_not_k_off_by_one() -> None:
    """p = 0.7 per sample, one rival answer, k = 2, 1,200 questions (seed 11).

    Two-sided, sized so a graph behaving as k = 1 or k = 3 fails: the band is
    p_step(0.7, 2) = 0.845 +- 4 binomial standard errors over 1,200 questions
    (+-0.042), and the same 4-s.e. bands around p_step(0.7, 1) = 0.700 and
    p_step(0.7, 3) = 0.927 do not overlap it (checked below). Single-sample
    accuracy must sit near 0.7 by the same rule. A false failure needs a 4-s.e.
    excursion (about 6e-5 each).
    """
    p, k, questions, z = 0.7, 2, 1200, 4.0

    def band(e: float) -> tuple[float, float]:
        half = z * math.sqrt(e * (1 - e) / questions)
        return e - half, e + half

    low, high = band(p_step(p, k))
    assert band(p_step(p, k - 1))[1] < low and high < band(p_step(p, k + 1))[0]
    sampler = SimulatedSampler(
        lambda q: f"right-{q}",
        errors=ErrorModel(error_rate=1 - p, rivals=1, seed=11),
        tokens=len,
    )
    graph = create_voting_graph(sampler, k=k, max_samples=200).compile()
    outs = await asyncio.gather(*[graph.ainvoke({"step_input": str(i)}) for i in range(questions)])
    voted = sum(out["answer"] == f"right-{i}" for i, out in enumerate(outs)) / questions
    firsts = [await sampler.sample(str(i), 0) for i in range(questions)]
    single = sum(raw.text == f"right-{i}" for i, raw in enumerate(firsts)) / questions
    assert low < voted < high
    single_low, single_high = band(p)
    assert single_low < single < single_high
    assert voted > single + 0.1


def test_docs_show_the_graph_this_code_draws() -> None:
    from pathlib import Path

    docs = (Path(__file__).resolve().parent.parent / "docs" / "voting.md").read_text()
    drawn = create_voting_graph(lambda q: "x", on_no_consensus="escalate").compile()
    assert drawn.get_graph().draw_mermaid().strip() in docs
