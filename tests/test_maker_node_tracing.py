"""What a graph's callbacks and streams see of a voted step's samples.

Every sample drawn by `maker_node`, `maker_node(durable=True)`, `create_voting_graph`
and `add_maker_step` is a child run `{step}.sample[{i}]` with metadata (round,
sample index, step) and the `nostream` tag, so `stream_mode="messages"` shows each
voted turn once: the node's output, not its k samples. The run's config, callbacks,
runtime context and store reach every sample.
"""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass
from typing import Any, TypedDict
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, HumanMessage, ToolMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.tools import tool
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.config import get_config, get_store
from langgraph.graph import END, START, MessagesState, StateGraph
from langgraph.prebuilt import ToolNode, tools_condition
from langgraph.runtime import get_runtime
from langgraph.store.memory import InMemoryStore

from maker_graph.graph import add_maker_step, create_voting_graph, maker_node
from maker_graph.testing import SimulatedToolModel


class Recorder(BaseCallbackHandler):
    """Every chain and chat-model run started, with its tags, metadata and parent."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.chains: dict[UUID, tuple[str, list[str], dict[str, Any], UUID | None]] = {}
        self.chat: list[tuple[list[str], dict[str, Any], UUID | None]] = []

    def on_chain_start(
        self,
        serialized: Any,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        with self.lock:
            self.chains[run_id] = (
                kw.get("name") or "",
                list(tags or []),
                dict(metadata or {}),
                parent_run_id,
            )

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kw: Any,
    ) -> None:
        with self.lock:
            self.chat.append((list(tags or []), dict(metadata or {}), parent_run_id))

    def samples(self, step: str) -> dict[str, tuple[list[str], dict[str, Any], UUID | None]]:
        prefix = f"{step}.sample["
        return {
            name: (tags, meta, parent)
            for name, tags, meta, parent in self.chains.values()
            if name.startswith(prefix)
        }


class Q(TypedDict, total=False):
    q: str
    answer: str


def two_rounds(inputs: Any, index: int) -> str:
    # k=2: round 1 draws 0 and 1 (a, b: a tie), round 2 draws 2 and 3 (a, a): a wins 3-1.
    return "b" if index == 1 else "a"


def invoke(graph: Any, inputs: Any, config: Any, use_async: bool) -> Any:
    if use_async:
        return asyncio.run(graph.ainvoke(inputs, config))
    return graph.invoke(inputs, config)


def _check_sample_runs(rec: Recorder, step: str, parent_names: set[str]) -> None:
    runs = rec.samples(step)
    assert sorted(runs) == [f"{step}.sample[{i}]" for i in range(4)]
    for name, (tags, meta, parent) in runs.items():
        index = int(name[len(step) + len(".sample[") : -1])
        assert "nostream" in tags and "langsmith:nostream" in tags, (name, tags)
        assert meta["maker_sample_index"] == index
        assert meta["maker_round"] == (1 if index < 2 else 2)
        assert meta["maker_step"] == step
        # A child of the node (or sub-graph branch) that drew it, not a root run.
        assert parent is not None and rec.chains[parent][0] in parent_names, name


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("durable", [False, True])
def test_maker_node_samples_are_child_runs_with_round_index_and_step(
    durable: bool, use_async: bool
) -> None:
    builder = StateGraph(Q)
    builder.add_node(
        "classify", maker_node(two_rounds, k=2, input_keys=["q"], durable=durable, name="ignored")
    )
    builder.add_edge(START, "classify").add_edge("classify", END)
    rec = Recorder()
    out = invoke(builder.compile(), {"q": "x"}, {"callbacks": [rec]}, use_async)
    assert out["answer"] == "a"
    # Named after the node as it was added, with and without durable=True.
    _check_sample_runs(rec, "classify", {"sample"} if durable else {"classify"})


@pytest.mark.parametrize("use_async", [False, True])
def test_voting_graph_and_grafted_step_samples_are_child_runs(use_async: bool) -> None:
    rec = Recorder()
    graph = create_voting_graph(two_rounds, k=2).compile()
    assert invoke(graph, {"step_input": "x"}, {"callbacks": [rec]}, use_async)["answer"] == "a"
    _check_sample_runs(rec, "voting_graph", {"sample"})

    builder = StateGraph(Q)
    nodes = add_maker_step(builder, "label", two_rounds, k=2, input_keys=["q"])
    builder.add_edge(START, nodes.entry)
    rec = Recorder()
    out = invoke(builder.compile(), {"q": "x"}, {"callbacks": [rec]}, use_async)
    assert out["answer"] == "a"
    _check_sample_runs(rec, "label", {"label_sample"})


# --------------------------------------------------------------------------- messages


@tool
def refund(order_id: str) -> str:
    """Refund an order."""
    return f"refunded {order_id}"


@tool
def cancel(order_id: str) -> str:
    """Cancel an order."""
    return f"cancelled {order_id}"


TOOLS = [refund, cancel]


def policy(messages: list[Any]) -> Any:
    last = messages[-1]
    if isinstance(last, ToolMessage):
        return f"Done: {last.content}"
    verb, order = str(last.content).split()
    return {"name": verb, "args": {"order_id": order}}


def model() -> Any:
    # Wrong a quarter of the time, so some turns need a second round.
    return SimulatedToolModel(
        policy=policy, wrong_tool=0.15, wrong_argument=0.10, seed=4
    ).bind_tools(TOOLS)


def react(*, durable: bool) -> Any:
    builder = StateGraph(MessagesState)
    builder.add_node("agent", maker_node(model(), k=3, output_key="messages", durable=durable))
    builder.add_node("tools", ToolNode(TOOLS))
    builder.add_edge(START, "agent")
    builder.add_conditional_edges("agent", tools_condition, ["tools", END])
    builder.add_edge("tools", "agent")
    return builder.compile(checkpointer=InMemorySaver())


def stream(
    graph: Any, text: str, thread: str, use_async: bool, subgraphs: bool = False
) -> list[Any]:
    config = {"configurable": {"thread_id": thread}}
    inputs = {"messages": [HumanMessage(text)]}
    kw = {"stream_mode": "messages", "subgraphs": subgraphs}
    if use_async:

        async def run() -> list[Any]:
            return [c async for c in graph.astream(inputs, config, **kw)]

        chunks = asyncio.run(run())
    else:
        chunks = list(graph.stream(inputs, config, **kw))
    # With subgraphs=True each chunk is (namespace, (message, metadata)).
    return [c[1] if subgraphs else c for c in chunks]


def _ai_chunks(chunks: list[Any]) -> list[AIMessage]:
    return [m for m, _ in chunks if isinstance(m, AIMessage)]


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("durable", [False, True])
def test_each_voted_turn_streams_once(durable: bool, use_async: bool) -> None:
    graph = react(durable=durable)
    for n, (verb, order) in enumerate([("refund", "A1"), ("cancel", "B2"), ("refund", "C3")]):
        thread = f"s-{durable}-{use_async}-{n}"
        streamed = _ai_chunks(stream(graph, f"{verb} {order}", thread, use_async))
        state = graph.get_state({"configurable": {"thread_id": thread}}).values
        turns = [m for m in state["messages"] if isinstance(m, AIMessage)]
        # Two turns (the tool call, the answer), each streamed exactly once, as the
        # message the state holds; k=3 drew at least three samples per turn.
        assert len(turns) == 2
        assert [m.id for m in streamed] == [m.id for m in turns]
        assert streamed[0].tool_calls == turns[0].tool_calls


@pytest.mark.parametrize("use_async", [False, True])
def test_durable_turn_streams_once_with_subgraphs_too(use_async: bool) -> None:
    graph = react(durable=True)
    streamed = _ai_chunks(stream(graph, "cancel D4", f"sub-{use_async}", use_async, subgraphs=True))
    state = graph.get_state({"configurable": {"thread_id": f"sub-{use_async}"}}).values
    turns = [m for m in state["messages"] if isinstance(m, AIMessage)]
    assert [m.id for m in streamed] == [m.id for m in turns] and len(turns) == 2


@pytest.mark.parametrize("use_async", [False, True])
def test_grafted_step_on_a_messages_key_streams_its_turn_once(use_async: bool) -> None:
    builder = StateGraph(MessagesState)
    nodes = add_maker_step(builder, "agent", model(), k=3, output_key="messages")
    builder.add_edge(START, nodes.entry)
    graph = builder.compile(checkpointer=InMemorySaver())
    for thread in ("g1", "g2"):
        thread = f"{thread}-{use_async}"
        streamed = _ai_chunks(stream(graph, "refund E5", thread, use_async))
        (turn,) = [
            m
            for m in graph.get_state({"configurable": {"thread_id": thread}}).values["messages"]
            if isinstance(m, AIMessage)
        ]
        assert [m.id for m in streamed] == [turn.id]


def test_chat_model_runs_are_under_their_sample_runs_and_nostream() -> None:
    rec = Recorder()
    react(durable=False).invoke(
        {"messages": [HumanMessage("refund F6")]},
        {"configurable": {"thread_id": "rec"}, "callbacks": [rec]},
    )
    assert len(rec.chat) >= 6  # two turns, k=3 each at least
    for tags, meta, parent in rec.chat:
        assert "nostream" in tags
        assert parent is not None
        name, _, parent_meta, _ = rec.chains[parent]
        assert name == f"agent.sample[{meta['maker_sample_index']}]"
        assert meta["maker_round"] == parent_meta["maker_round"]


# --------------------------------------------------------------------------- context


@dataclass
class Ctx:
    user: str


class State(TypedDict, total=False):
    q: str
    answer: str


def _seen(rec: Recorder | None) -> tuple[list[dict[str, Any]], Any]:
    seen: list[dict[str, Any]] = []
    lock = threading.Lock()

    def look(config: RunnableConfig, index: int) -> str:
        store = get_store()
        item = store.get(("prefs",), "tone")
        callbacks = config.get("callbacks")
        handlers = (
            list(callbacks.handlers) if hasattr(callbacks, "handlers") else list(callbacks or [])
        )
        with lock:
            seen.append(
                {
                    "index": index,
                    "thread": config["configurable"].get("thread_id"),
                    "user": get_runtime(Ctx).context.user,
                    "tone": item.value["tone"] if item else None,
                    "recorder": rec is not None and rec in handlers,
                }
            )
        return "ok"

    return seen, look


@pytest.mark.parametrize("use_async", [False, True])
@pytest.mark.parametrize("durable", [False, True])
@pytest.mark.parametrize("kind", ["function", "runnable"])
@pytest.mark.parametrize("observed", [False, True])
def test_config_callbacks_context_and_store_reach_every_sample(
    kind: str, durable: bool, use_async: bool, observed: bool
) -> None:
    rec = Recorder() if observed else None
    seen, look = _seen(rec)
    if kind == "function":

        def step(inputs: Any, index: int) -> str:
            config = get_config()
            if observed:  # the sample's run says which sample it is
                assert config["metadata"]["maker_sample_index"] == index
            return look(config, index)

        sampler: Any = step
    else:

        def body(inputs: Any, config: RunnableConfig) -> str:
            return look(config, config["metadata"]["maker_sample_index"])

        sampler = RunnableLambda(body)
    builder = StateGraph(State, context_schema=Ctx)
    builder.add_node("answer_it", maker_node(sampler, k=3, input_keys=["q"], durable=durable))
    builder.add_edge(START, "answer_it").add_edge("answer_it", END)
    store = InMemoryStore()
    store.put(("prefs",), "tone", {"tone": "dry"})
    graph = builder.compile(checkpointer=InMemorySaver(), store=store)
    config: dict[str, Any] = {"configurable": {"thread_id": f"ctx-{kind}-{durable}"}}
    if rec is not None:
        config["callbacks"] = [rec]
    if use_async:
        out = asyncio.run(graph.ainvoke({"q": "?"}, config, context=Ctx(user="ada")))
    else:
        out = graph.invoke({"q": "?"}, config, context=Ctx(user="ada"))
    assert out["answer"] == "ok"
    assert sorted(s["index"] for s in seen) == [0, 1, 2]
    for s in seen:
        assert s["user"] == "ada" and s["tone"] == "dry"
        assert s["thread"] == f"ctx-{kind}-{durable}"
        # The caller's handler reaches the sample (through the sample's own run).
        assert s["recorder"] is observed
    if rec is not None:
        assert len(rec.samples("answer_it")) == 3


# --------------------------------------------------------------------------- n per request


@pytest.mark.parametrize("use_async", [False, True])
def test_one_request_of_n_stays_one_request_and_one_sample_run(use_async: bool) -> None:
    # Wrapping the sampler in sample runs must not turn batching (`n`) off: k=3 at one
    # temperature is one request against the stub, seen as one run for samples 0..2.
    from openai_stub import OpenAIStub, StubBehaviour

    from maker_graph.providers import ProviderOptions, resolve_chat_model

    stub = OpenAIStub(
        lambda messages: "4",
        behaviour=StubBehaviour(
            wrong_rate=0.0,
            ramble_rate=0.0,
            malformed_rate=0.0,
            rate_limit_rate=0.0,
            server_error_rate=0.0,
            retry_after=0.01,
        ),
    ).start()
    try:
        chat = resolve_chat_model(
            "openai:stub", ProviderOptions(base_url=stub.base_url, timeout=10)
        )
        builder = StateGraph(Q)
        builder.add_node("sum", maker_node(chat, k=3, input_keys=["q"], temperature=0.1))
        builder.add_edge(START, "sum").add_edge("sum", END)
        rec = Recorder()
        out = invoke(builder.compile(), {"q": "2+2?"}, {"callbacks": [rec]}, use_async)
        assert out["answer"] == "4"
        assert stub.stats["requests"] == 1 and stub.stats["choices"] == 3
        runs = rec.samples("sum")
        assert list(runs) == ["sum.sample[0..2]"]
        tags, meta, _ = runs["sum.sample[0..2]"]
        assert meta["maker_sample_indices"] == [0, 1, 2] and meta["maker_round"] == 1
        assert "nostream" in tags
    finally:
        stub.stop()


@pytest.mark.parametrize("use_async", [False, True])
def test_escalating_node_names_its_sample_runs_after_the_node(use_async: bool) -> None:
    # on_no_consensus="escalate" votes inside a LangGraph task (so a resume does not
    # redraw); the runs still carry the node's name, not the task's.
    builder = StateGraph(Q)
    builder.add_node(
        "classify", maker_node(two_rounds, k=2, input_keys=["q"], on_no_consensus="escalate")
    )
    builder.add_edge(START, "classify").add_edge("classify", END)
    rec = Recorder()
    config = {"configurable": {"thread_id": f"esc-{use_async}"}, "callbacks": [rec]}
    out = invoke(builder.compile(checkpointer=InMemorySaver()), {"q": "x"}, config, use_async)
    assert out["answer"] == "a"
    # (The task is named after `name=`, the node after where it was added.)
    _check_sample_runs(rec, "classify", {"maker_step.vote"})
