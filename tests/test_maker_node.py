"""`maker_node` and `add_maker_step` inside users' graphs: step kinds, sync/async,
checkpointers, interrupt, streaming, LangChain agents, accuracy lift."""

from __future__ import annotations

import asyncio
import math
import pickle
from collections import Counter
from typing import Any, TypedDict

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langchain_core.prompts import ChatPromptTemplate
from langchain_core.runnables import RunnableLambda
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import END, START, StateGraph
from langgraph.types import Command
from pydantic import BaseModel

from maker_graph.errors import ConfigurationError, NoConsensusError, SamplerError
from maker_graph.graph import add_maker_step, maker_node
from maker_graph.records import RawSample
from maker_graph.red_flags import max_output_tokens
from maker_graph.sampling import ProviderRetry, message_text
from maker_graph.scaling import p_step
from maker_graph.testing import (
    ErrorModel,
    ScriptedChatModel,
    ScriptedSampler,
    SimulatedChatModel,
    SimulatedSampler,
)

FAST_RETRY = ProviderRetry(max_attempts=2, initial_delay=0.001, jitter=0.0)
LABELS = ["billing", "bug", "other"]


class Ticket(TypedDict, total=False):
    ticket: str
    label: str
    stats: dict[str, Any]
    routed: str


def ticket_graph(node: Any, *, checkpointer: Any = None) -> Any:
    builder = StateGraph(Ticket)
    builder.add_node("classify", node)
    builder.add_node("route", lambda s: {"routed": f"queue:{s['label']}"})
    builder.add_edge(START, "classify")
    builder.add_edge("classify", "route")
    builder.add_edge("route", END)
    return builder.compile(checkpointer=checkpointer)


def cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


async def run(graph: Any, inputs: Any, config: Any = None, *, use_async: bool) -> Any:
    if use_async:
        return await graph.ainvoke(inputs, config)
    return await asyncio.to_thread(graph.invoke, inputs, config)


def classify_prompt(inputs: dict[str, Any]) -> list[Any]:
    return [HumanMessage(f"Classify this support ticket: {inputs['ticket']}")]


def oracle(messages: list[Any]) -> str:
    text = message_text(messages[-1]).lower()
    return "billing" if "charged" in text else "bug" if "crash" in text else "other"


# --------------------------------------------------------------------------- step kinds


@pytest.mark.parametrize("use_async", [False, True])
async def test_chat_model_step_in_an_existing_graph(use_async: bool) -> None:
    model = SimulatedChatModel(
        oracle=oracle, choices=LABELS, errors=ErrorModel(error_rate=0.2, seed=1)
    )
    node = maker_node(
        model, prompt=classify_prompt, input_keys=["ticket"], output_key="label", stats_key="stats"
    )
    out = await run(ticket_graph(node), {"ticket": "I was charged twice"}, use_async=use_async)
    assert out["label"] == "billing" and out["routed"] == "queue:billing"
    stats = out["stats"]
    assert stats["decided_by"] == "vote" and stats["samples_drawn"] >= 3
    assert stats["input_tokens"] > 0 and stats["output_tokens"] > 0


@pytest.mark.parametrize("use_async", [False, True])
async def test_function_runnable_and_async_steps(use_async: bool) -> None:
    def sync_step(inputs: dict[str, Any]) -> str:
        return inputs["ticket"].split()[0]

    async def async_step(inputs: dict[str, Any]) -> str:
        await asyncio.sleep(0)
        return inputs["ticket"].split()[0]

    runnable = RunnableLambda(lambda inputs: inputs["ticket"].split()[0])
    for step in (sync_step, async_step, runnable):
        node = maker_node(step, k=2, input_keys=["ticket"], output_key="label")
        out = await run(ticket_graph(node), {"ticket": "crash on start"}, use_async=use_async)
        assert out["label"] == "crash"


async def test_step_receives_the_whole_state_without_input_keys() -> None:
    seen: list[dict[str, Any]] = []

    def step(inputs: dict[str, Any]) -> str:
        seen.append(inputs)
        return "other"

    await ticket_graph(maker_node(step, k=1, output_key="label")).ainvoke({"ticket": "hi"})
    assert seen == [{"ticket": "hi"}]


async def test_parser_gets_the_ai_message_and_raising_red_flags() -> None:
    model = ScriptedChatModel(answers=["label: bug", "no idea", "label: bug", "label: bug"])
    seen: list[Any] = []

    def parser(message: Any) -> str:
        seen.append(message)
        text = message_text(message)
        if not text.startswith("label: "):
            raise ValueError("not in the expected format")
        return text.removeprefix("label: ")

    node = maker_node(
        model,
        k=3,
        prompt=classify_prompt,
        parser=parser,
        input_keys=["ticket"],
        output_key="label",
        stats_key="stats",
        max_concurrency=1,
    )
    out = await ticket_graph(node).ainvoke({"ticket": "it crashes"})
    assert all(isinstance(m, AIMessage) for m in seen)
    assert out["label"] == "bug" and out["stats"]["red_flags"] == {"parse_error": 1}
    model.assert_all_used()


async def test_structured_output_schema() -> None:
    class Label(BaseModel):
        label: str
        urgent: bool

    model = SimulatedChatModel(oracle=lambda m: '{"label": "bug", "urgent": true}')
    node = maker_node(
        model,
        prompt=classify_prompt,
        structured=Label,
        parser=lambda label: label.label,
        input_keys=["ticket"],
        output_key="label",
    )
    out = await ticket_graph(node).ainvoke({"ticket": "crash"})
    assert out["label"] == "bug"


async def test_chat_prompt_template_and_model_rotation() -> None:
    first = ScriptedChatModel(answers=["bug", "bug"])
    second = ScriptedChatModel(answers=["bug"])
    template = ChatPromptTemplate.from_messages([("human", "Classify: {ticket}")])
    node = maker_node(
        first, models=[second], prompt=template, input_keys=["ticket"], output_key="label"
    )
    out = await ticket_graph(node).ainvoke({"ticket": "crash"})
    assert out["label"] == "bug"
    # Samples 0 and 2 went to the first model, sample 1 to the second.
    assert len(first.calls) == 2 and len(second.calls) == 1
    assert message_text(first.calls[0][-1]) == "Classify: crash"


async def test_length_red_flag_and_temperature_schedule() -> None:
    temps: list[Any] = []
    model = SimulatedChatModel(oracle=lambda m: "bug")
    original = model._agenerate

    async def spy(messages: Any, stop: Any = None, run_manager: Any = None, **kw: Any) -> Any:
        temps.append(kw.get("temperature"))
        return await original(messages, stop, run_manager, **kw)

    object.__setattr__(model, "_agenerate", spy)
    node = maker_node(
        model,
        prompt=classify_prompt,
        input_keys=["ticket"],
        output_key="label",
        temperature=0.3,
        red_flags=[max_output_tokens(50)],
    )
    out = await ticket_graph(node).ainvoke({"ticket": "crash"})
    assert out["label"] == "bug" and temps == [0.3, 0.3, 0.3]


@pytest.mark.parametrize(
    ("step", "options", "message"),
    [
        (lambda s: "x", {"temperature": 0.2}, "only apply when the step is a chat model"),
        (lambda s: "x", {"models": [SimulatedChatModel(oracle=oracle)]}, "rotates chat models"),
        (SimulatedChatModel(oracle=oracle), {"models": [lambda s: "x"]}, "must be chat models"),
        (lambda s: "x", {"input_keys": []}, "input_keys"),
        (lambda s: "x", {"input_keys": ""}, "input_keys"),
        (lambda s: "x", {"on_no_consensus": "vote"}, "on_no_consensus"),
        (lambda s: "x", {"k": 3, "max_samples": 1}, "max_samples"),
    ],
)
def test_bad_options_fail_when_built(step: Any, options: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigurationError, match=message):
        maker_node(step, **options)


async def test_missing_input_key_is_a_clear_error() -> None:
    node = maker_node(lambda s: "x", input_keys=["subject"], output_key="label")
    with pytest.raises(ConfigurationError, match="subject"):
        await ticket_graph(node).ainvoke({"ticket": "t"})


async def test_chat_model_needs_a_prompt_for_several_keys() -> None:
    node = maker_node(SimulatedChatModel(oracle=oracle), output_key="label")
    with pytest.raises(ConfigurationError, match="prompt"):
        await node.ainvoke({"ticket": "t", "label": "x"})


def test_node_runs_outside_a_graph_too() -> None:
    node = maker_node(lambda s: s["q"].strip().lower(), k=2, input_keys=["q"])
    assert node.invoke({"q": " Yes "}) == {"answer": "yes"}


# --------------------------------------------------------------------------- runtime


async def test_budget_spent_raises_through_the_graph() -> None:
    node = maker_node(
        ScriptedSampler(["a", "b"] * 3),
        k=2,
        max_samples=6,
        input_keys=["ticket"],
        output_key="label",
    )
    with pytest.raises(NoConsensusError) as info:
        await ticket_graph(node).ainvoke({"ticket": "t"})
    assert info.value.tally == {"a": 3, "b": 3}


# k=2 within 4 samples: two answers alternating tie 2-2 and go to a human.
ESCALATE_A_TIE: dict[str, Any] = {
    "k": 2,
    "max_samples": 4,
    "on_no_consensus": "escalate",
    "input_keys": ["ticket"],
    "output_key": "label",
    "stats_key": "stats",
}


@pytest.mark.parametrize("use_async", [False, True])
async def test_escalation_interrupts_and_resume_does_not_redraw(use_async: bool) -> None:
    calls: list[int] = []

    def step(inputs: dict[str, Any], index: int) -> str:
        calls.append(index)
        return "bug" if index % 2 else "billing"

    node = maker_node(step, **ESCALATE_A_TIE)
    graph = ticket_graph(node, checkpointer=InMemorySaver())
    config = cfg(f"escalate-{use_async}")
    paused = await run(graph, {"ticket": "odd one"}, config, use_async=use_async)
    (request,) = paused["__interrupt__"]
    assert request.value["tally"] == [["billing", 2], ["bug", 2]]
    assert request.value["node"] == "classify"
    assert sorted(calls) == [0, 1, 2, 3]
    out = await run(graph, Command(resume="other"), config, use_async=use_async)
    assert out["label"] == "other" and out["routed"] == "queue:other"
    assert out["stats"]["decided_by"] == "escalation"
    assert sorted(calls) == [0, 1, 2, 3]  # the vote's result was saved, not redrawn


def _billed(text: str) -> AIMessage:
    usage = {"input_tokens": 10, "output_tokens": 2, "total_tokens": 12}
    return AIMessage(text, usage_metadata=usage)  # type: ignore[arg-type]


@pytest.mark.parametrize("use_async", [False, True])
async def test_an_undecided_step_keeps_its_bill(use_async: bool) -> None:
    """Four billed samples, 2-2: the escalated step's stats still count their tokens,
    and a step that raises says what it cost (it had reported none)."""
    answers = [_billed("billing"), _billed("bug")] * 2
    node = maker_node(ScriptedChatModel(answers=answers), prompt=classify_prompt, **ESCALATE_A_TIE)
    graph = ticket_graph(node, checkpointer=InMemorySaver())
    config = cfg(f"billed-{use_async}")
    await run(graph, {"ticket": "odd one"}, config, use_async=use_async)
    out = await run(graph, Command(resume="other"), config, use_async=use_async)
    assert out["stats"]["decided_by"] == "escalation"
    assert (out["stats"]["input_tokens"], out["stats"]["output_tokens"]) == (40, 8)

    builder = StateGraph(Ticket)
    add_maker_step(
        builder,
        "classify",
        ScriptedChatModel(answers=answers),
        prompt=classify_prompt,
        k=2,
        max_samples=4,
        input_keys=["ticket"],
        output_key="label",
    )
    builder.add_edge(START, "classify")
    with pytest.raises(NoConsensusError) as info:
        await run(builder.compile(), {"ticket": "odd one"}, use_async=use_async)
    assert (info.value.input_tokens, info.value.output_tokens) == (40, 8)


@pytest.mark.parametrize("use_async", [False, True])
async def test_with_and_without_a_checkpointer(use_async: bool) -> None:
    node = maker_node(lambda s: "bug", input_keys=["ticket"], output_key="label")
    for checkpointer in (None, InMemorySaver()):
        graph = ticket_graph(node, checkpointer=checkpointer)
        out = await run(graph, {"ticket": "t"}, cfg("c"), use_async=use_async)
        assert out["routed"] == "queue:bug"
        if checkpointer is not None:
            assert graph.get_state(cfg("c")).values["label"] == "bug"


async def test_resume_after_a_provider_outage_redraws_the_step_only() -> None:
    state = {"broken": True}
    calls: list[int] = []

    async def step(inputs: dict[str, Any], index: int) -> str:
        calls.append(index)
        if state["broken"] and index == 1:
            raise ConnectionError("down")
        return "bug"

    graph = ticket_graph(
        maker_node(step, input_keys=["ticket"], output_key="label", retry=FAST_RETRY),
        checkpointer=InMemorySaver(),
    )
    with pytest.raises(SamplerError):
        await graph.ainvoke({"ticket": "t"}, cfg("outage"))
    assert Counter(calls) == {0: 1, 1: 2, 2: 1}  # siblings finished, not cancelled
    state["broken"] = False
    out = await graph.ainvoke(None, cfg("outage"))
    # By default maker_node is one engine call: its step is voted again from
    # scratch (durable=True and add_maker_step keep finished samples; see below).
    assert out["routed"] == "queue:bug" and Counter(calls) == {0: 2, 1: 3, 2: 2}


async def test_streaming_progress_events() -> None:
    node = maker_node(
        ScriptedSampler(["bug", "BAD", "bug"] * 2),
        k=2,
        parser=lambda t: t if t != "BAD" else int(t),
        input_keys=["ticket"],
        output_key="label",
    )
    graph = ticket_graph(node)
    events = [e async for e in graph.astream({"ticket": "t"}, stream_mode="custom")]
    names = [e["event"] for e in events]
    # Round 1: bug, BAD (red flag); round 2 needs one more valid vote: bug.
    assert names == [
        "maker.round",
        "maker.sample",
        "maker.sample",
        "maker.red_flag",
        "maker.round",
        "maker.sample",
        "maker.decided",
    ]
    rounds = [(e["round"], e["samples"], e["drawn"]) for e in events if e["event"] == "maker.round"]
    assert rounds == [(1, 2, 0), (2, 1, 2)]
    assert {e["node"] for e in events} == {"classify"}
    sync_events = list(graph.stream({"ticket": "t"}, stream_mode=["custom", "updates"]))
    assert ("updates", {"route": {"routed": "queue:bug"}}) in sync_events


# --------------------------------------------------------------------------- agents


@pytest.mark.parametrize("use_async", [False, True])
async def test_inside_a_langchain_agent(use_async: bool) -> None:
    from langchain.agents import create_agent

    def prompt(inputs: dict[str, Any]) -> list[Any]:
        return [HumanMessage("Classify: " + message_text(inputs["messages"][-1]))]

    classifier = SimulatedChatModel(
        oracle=oracle, choices=LABELS, errors=ErrorModel(error_rate=0.2, seed=9)
    )
    node = maker_node(
        classifier, prompt=prompt, input_keys=["messages"], output_key="label", name="triage"
    )
    agent_model = SimulatedChatModel(oracle=lambda m: "On it.", errors=ErrorModel(error_rate=0.0))
    agent = create_agent(agent_model, tools=[], middleware=[node.as_middleware()])
    assert "triage.before_agent" in agent.get_graph().draw_mermaid()
    inputs = {"messages": [HumanMessage("the app crashes at login")]}
    out = await run(agent, inputs, use_async=use_async)
    assert out["label"] == "bug" and out["messages"][-1].content == "On it."


def test_middleware_hook_must_be_known() -> None:
    with pytest.raises(ConfigurationError, match="hook"):
        maker_node(lambda s: "x").as_middleware(hook="around_model")


# --------------------------------------------------------------------------- grafting


@pytest.mark.parametrize("use_async", [False, True])
async def test_add_maker_step_grafts_visible_nodes(use_async: bool) -> None:
    builder = StateGraph(Ticket)
    nodes = add_maker_step(
        builder,
        "classify",
        lambda s: "bug",
        input_keys=["ticket"],
        output_key="label",
        stats_key="stats",
        then="route",
    )
    builder.add_node("route", lambda s: {"routed": f"queue:{s['label']}"})
    builder.add_edge(START, nodes.entry)
    builder.add_edge("route", END)
    graph = builder.compile(checkpointer=InMemorySaver())
    drawn = graph.get_graph().draw_mermaid()
    assert "classify -.-> classify_sample" in drawn
    assert "classify_sample -. &nbsp;red_flag&nbsp; .-> classify_sample" in drawn
    assert "classify_tally -. &nbsp;decided&nbsp; .-> route" in drawn
    out = await run(graph, {"ticket": "t"}, cfg("graft"), use_async=use_async)
    assert out["routed"] == "queue:bug" and out["stats"]["samples_drawn"] == 3
    # The tally is one extra state key, kept out of the user's output schema but
    # checkpointed with the rest of the state, and it records how the step was decided.
    assert nodes.votes_key == "classify_votes" and "classify_votes" not in out
    tally = graph.get_state(cfg("graft")).values["classify_votes"]
    assert tally["decided_by"] == "vote" and tally["values"] == ["bug"] and tally["counts"] == [3]


def test_add_maker_step_checks_names_and_keys() -> None:
    builder = StateGraph(Ticket)
    with pytest.raises(ConfigurationError, match="'answer' is not a key"):
        add_maker_step(builder, "classify", lambda s: "x")
    builder.add_node("classify", lambda s: {})
    with pytest.raises(ConfigurationError, match="already exist"):
        add_maker_step(builder, "classify", lambda s: "x", output_key="label")


async def test_add_maker_step_resume_keeps_finished_samples() -> None:
    state = {"broken": True}
    calls: list[int] = []

    async def step(inputs: dict[str, Any], index: int) -> str:
        calls.append(index)
        if state["broken"] and index == 1:
            await asyncio.sleep(0.005)
            raise ConnectionError("down")
        await asyncio.sleep(0.02)
        return "bug"

    builder = StateGraph(Ticket)
    nodes = add_maker_step(
        builder, "classify", step, input_keys=["ticket"], output_key="label", retry=FAST_RETRY
    )
    builder.add_edge(START, nodes.entry)
    graph = builder.compile(checkpointer=InMemorySaver())
    with pytest.raises(SamplerError):
        await graph.ainvoke({"ticket": "t"}, cfg("graft"))
    state["broken"] = False
    out = await graph.ainvoke(None, cfg("graft"))
    assert out["label"] == "bug"
    assert Counter(calls) == {0: 1, 1: 5, 2: 1}  # 2 tries, 2 more, then 1 that worked


async def test_grafted_step_in_a_loop_resets_its_tally() -> None:
    class Loop(TypedDict, total=False):
        n: int
        q: str
        a: str

    builder = StateGraph(Loop)
    builder.add_node("next", lambda s: {"n": s.get("n", 0) + 1, "q": f"q{s.get('n', 0)}"})
    sampler = SimulatedSampler(
        lambda inputs: inputs["q"].upper(),
        errors=ErrorModel(error_rate=0.2, seed=2),
        step_key=lambda inputs: inputs["q"],
    )
    nodes = add_maker_step(
        builder, "solve", sampler, k=2, input_keys=["q"], output_key="a", then="check"
    )
    builder.add_node("check", lambda s: {})
    builder.add_edge(START, "next")
    builder.add_edge("next", nodes.entry)
    builder.add_conditional_edges("check", lambda s: END if s["n"] >= 30 else "next", ["next", END])
    saver = InMemorySaver()
    graph = builder.compile(checkpointer=saver)
    config = {**cfg("loop"), "recursion_limit": 2000}
    out = await graph.ainvoke({}, config)
    assert out["a"] == "Q29"
    votes = graph.get_state(config).values["solve_votes"]
    assert sum(votes["counts"]) <= 10 and votes["input"] == {"q": "q29"}  # this step only
    sizes = [len(pickle.dumps(s.values)) for s in graph.get_state_history(config)]
    assert max(sizes) < 2000


# --------------------------------------------------------------------------- statistics


async def test_voted_accuracy_matches_p_step_and_not_k_off_by_one() -> None:
    """Single-sample accuracy 0.7 (one rival label), k = 2, 1,200 tickets, seed 21.

    Two-sided, sized so a node behaving as k = 1 or k = 3 fails: the band is
    p_step(0.7, 2) = 0.845 +- 4 binomial standard errors over 1,200 tickets
    (+-0.042), and the same 4-s.e. bands around p_step(0.7, 1) = 0.700 and
    p_step(0.7, 3) = 0.927 do not overlap it (checked below). A false failure
    needs a 4-s.e. excursion (about 6e-5).
    """
    p, k, questions, z = 0.7, 2, 1200, 4.0

    def band(k_: int) -> tuple[float, float]:
        e = p_step(p, k_)
        half = z * math.sqrt(e * (1 - e) / questions)
        return e - half, e + half

    low, high = band(k)
    assert band(k - 1)[1] < low and high < band(k + 1)[0]  # the sizing separates k +- 1
    sampler = SimulatedSampler(
        lambda inputs: f"label-{inputs['ticket']}",
        errors=ErrorModel(error_rate=1 - p, rivals=1, seed=21),
        step_key=lambda inputs: inputs["ticket"],
        tokens=len,
    )
    graph = ticket_graph(
        maker_node(sampler, input_keys=["ticket"], output_key="label", k=k, max_samples=200)
    )
    outs = await asyncio.gather(*[graph.ainvoke({"ticket": str(i)}) for i in range(questions)])
    voted = sum(o["label"] == f"label-{i}" for i, o in enumerate(outs)) / questions
    assert low < voted < high


async def test_one_failing_call_never_cancels_sibling_samples() -> None:
    finished: list[int] = []

    async def step(inputs: dict[str, Any], index: int) -> RawSample:
        if index == 0:
            raise ConnectionError("blip")  # fails once per attempt, retried
        await asyncio.sleep(0.01)
        finished.append(index)
        return RawSample("bug", "bug")

    node = maker_node(
        step,
        k=3,
        max_samples=6,
        on_no_consensus="plurality",
        input_keys=["ticket"],
        output_key="label",
        retry=FAST_RETRY,
    )
    with pytest.raises(SamplerError):
        await ticket_graph(node).ainvoke({"ticket": "t"})
    assert sorted(finished) == [1, 2]


def test_an_unused_escalation_handler_is_a_setup_error() -> None:
    with pytest.raises(ConfigurationError, match="only called with"):
        maker_node(lambda s: "x", escalate=lambda result: "y")


@pytest.mark.parametrize("use_async", [False, True])
async def test_durable_node_resume_keeps_finished_samples(use_async: bool) -> None:
    state = {"broken": True}
    calls: list[int] = []

    async def step(inputs: dict[str, Any], index: int) -> str:
        calls.append(index)
        if state["broken"] and index == 1:
            await asyncio.sleep(0.005)
            raise ConnectionError("down")
        await asyncio.sleep(0.02)
        return "bug"

    node = maker_node(
        step,
        input_keys=["ticket"],
        output_key="label",
        stats_key="stats",
        retry=FAST_RETRY,
        durable=True,
    )
    graph = ticket_graph(node, checkpointer=InMemorySaver())
    config = cfg(f"durable-{use_async}")
    with pytest.raises(SamplerError):
        await run(graph, {"ticket": "t"}, config, use_async=use_async)
    state["broken"] = False
    out = await run(graph, None, config, use_async=use_async)
    assert out["routed"] == "queue:bug" and out["stats"]["samples_drawn"] == 3
    assert Counter(calls) == {0: 1, 1: 5, 2: 1}  # samples 0 and 2 were never redrawn


async def test_durable_node_escalates_and_streams_from_its_subgraph() -> None:
    calls: list[int] = []

    def step(inputs: dict[str, Any], index: int) -> str:
        calls.append(index)
        return "bug" if index % 2 else "billing"

    node = maker_node(
        step,
        k=2,
        max_samples=4,
        on_no_consensus="escalate",
        durable=True,
        input_keys=["ticket"],
        output_key="label",
    )
    graph = ticket_graph(node, checkpointer=InMemorySaver())
    events = [
        (ns, e)
        async for ns, e in graph.astream(
            {"ticket": "t"}, cfg("durable-esc"), stream_mode="custom", subgraphs=True
        )
    ]
    assert any(e["event"] == "maker.sample" and ns for ns, e in events)
    (request,) = graph.get_state(cfg("durable-esc")).interrupts
    assert request.value["tally"] == [["billing", 2], ["bug", 2]]
    out = await graph.ainvoke(Command(resume="other"), cfg("durable-esc"))
    assert out["label"] == "other" and sorted(calls) == [0, 1, 2, 3]


def test_sync_invoke_keeps_loop_bound_clients_working() -> None:
    """Async provider clients (httpx pools) belong to the loop they first ran on."""

    class LoopBoundClient:
        def __init__(self) -> None:
            self.loop: Any = None

        async def sample(self, step_input: Any, index: int) -> RawSample:
            loop = asyncio.get_running_loop()
            if self.loop is None:
                self.loop = loop
            if loop is not self.loop or self.loop.is_closed():
                raise RuntimeError("Event loop is closed")  # what a pooled client would do
            return RawSample("bug", "bug")

    client = LoopBoundClient()
    graph = ticket_graph(
        maker_node(
            client, input_keys=["ticket"], output_key="label", retry=ProviderRetry(max_attempts=1)
        )
    )
    for _ in range(3):
        assert graph.invoke({"ticket": "t"})["label"] == "bug"
