"""`maker_node`: put a voted step into a graph you already have.

`maker_node(step, ...)` returns a node for `builder.add_node(...)`. It reads the
step's input from the parent state, decides the step with the engine (`Voter`:
rounds of parallel samples, k-ahead voting, red-flag resampling, a budget) and
writes the winning answer back. One node, one superstep: the cheapest way to
make a fragile step reliable. It works under `invoke` and `ainvoke`, `stream`
and `astream` (progress events on the `custom` stream), any checkpointer, and
`interrupt` (escalation when the budget is spent).

`maker_node(..., durable=True)` runs the voting sub-graph inside the node
instead, so each finished sample is checkpointed; `maker_graph.graph.graft.
add_maker_step` grafts that sub-graph's nodes into your own builder.

Example:
    >>> from typing import TypedDict
    >>> from langgraph.graph import END, START, StateGraph
    >>> from maker_graph.graph import maker_node
    >>> class State(TypedDict, total=False):
    ...     ticket: str
    ...     label: str
    >>> builder = StateGraph(State)
    >>> _ = builder.add_node("classify", maker_node(lambda s: "billing", k=2,
    ...                                                 input_keys=["ticket"], output_key="label"))
    >>> _ = builder.add_edge(START, "classify").add_edge("classify", END)
    >>> builder.compile().invoke({"ticket": "charged twice"})["label"]
    'billing'
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, cast

from langchain_core.messages import BaseMessage
from langchain_core.runnables.config import ensure_config
from langgraph.config import get_config
from langgraph.func import task
from typing_extensions import Unpack

from .._sync import run_sync
from ..errors import ConfigurationError, NoConsensusError, SamplerError
from ..records import Sample, StepResult
from ..vote import Voter
from ._escalation import escalated, result_fields, step_result, undecided
from ._node import DualNode
from ._options import (
    SampleRuns,
    StepOptions,
    VotedStep,
    as_message,
    check_input_keys,
    checked_input,
    observed,
    pick,
    read_key,
    state_keys,
)
from .events import VoteEvents, decided_event, emit
from .voting_graph import MESSAGE_KEY, STATS_KEY, voting_builder

__all__ = ["MakerNode", "maker_node"]


class MakerNode(DualNode):
    """A voted step as a graph node (see `maker_node`); sync and async.

    Attributes:
        voter: the compiled `Voter` (sampler, parser, key, red flags, policy).
        input_keys: the parent-state key (a str: its value) or keys (a list: a dict of
            them) the step reads; None: the whole state.
        output_key: where the winner is written (`"answer"`; in a messages state
            `"messages"` unless an output key was given, see `maker_node`).
        stats_key: where the step's `StepResult.to_dict()` is written, if anywhere.
    """

    def __init__(
        self,
        name: str,
        voter: Voter,
        *,
        input_keys: str | Sequence[str] | None,
        output_key: str | None,
        stats_key: str | None,
        interrupt_on_no_consensus: bool,
        budget: int,
        check_input: Callable[[Any], Any] | None = None,
        durable_graph: Any = None,
    ) -> None:
        super().__init__(name, self._run, self._arun)
        self.node_name = name
        self.voter = voter
        one = input_keys is None or isinstance(input_keys, str)
        self.input_keys = input_keys if one else list(cast(Sequence[str], input_keys))
        self.output_key = output_key or "answer"
        # Not given: the key depends on the state the node runs in (see `_target`).
        self._default_output = output_key is None
        self.stats_key = stats_key
        self.budget = budget
        # A setup mistake in the input (e.g. a default chat prompt that cannot work)
        # must fail at once, not be retried as if the provider had failed.
        self._check_input = check_input
        # durable=True: the vote runs as the voting sub-graph called from this node;
        # it inherits the parent's checkpointer, so each finished sample is saved.
        self._durable = durable_graph
        self._interrupts = interrupt_on_no_consensus and durable_graph is None
        if self._interrupts:
            # The undecided vote runs as a LangGraph task: when the node re-runs on
            # resume, the task's saved result comes back instead of a second vote.
            self._vote_task: Any = task(name=f"{name}.vote")(cast(Any, self._vote_undecided))
            self._avote_task: Any = task(name=f"{name}.vote")(cast(Any, self._avote_undecided))

    # ------------------------------------------------------------- the vote

    async def _avote(self, step_input: Any, label: str | None = None) -> tuple[StepResult, Any]:
        # Inside the escalation task the run metadata names the task, not the node: the
        # node passes its own name in (for events and sample run names).
        label = label or _node_label(self.node_name)
        # The first raw output per vote key: the winner's own message (tool calls
        # included) is what joins a messages key, not its parsed text.
        outputs: dict[Any, Any] = {}
        # Each draw is a child run `{label}.sample[i]` kept off the `messages` stream:
        # the node's output streams the winner, once. One wrapper per vote (it follows
        # the vote's round), so the node keeps no per-step state; none when no handler
        # would see the runs.
        voter, runs = self.voter, None
        if observed(ensure_config()):
            runs = SampleRuns(self.voter.sampler, label)
            voter = self.voter.with_sampler(runs, escalate=self.voter.escalate)
        policy = voter.policy
        events = VoteEvents(label, policy.k, policy.budget)

        def on_sample(sample: Sample) -> None:
            if runs is not None:
                runs.saw(sample)
            events.on_sample(sample)
            if sample.red_flag is None and sample.key not in outputs:
                outputs[sample.key] = sample.raw.output

        try:
            result = await voter.vote(step_input, on_sample=on_sample)
        except SamplerError as exc:
            events.provider_failed(exc)
            raise
        return result, outputs.get(result.winner_key)

    async def _avote_undecided(self, step_input: Any, label: str) -> dict[str, Any]:
        try:
            result, output = await self._avote(step_input, label)
        except NoConsensusError as exc:
            return undecided(exc)
        # Only a message is kept beside the result: it is what a messages key needs, and
        # checkpointers can store it (an arbitrary raw output might not be).
        message = output if isinstance(output, BaseMessage) else None
        return {"decided": True, "result": result_fields(result), "output": message}

    def _vote_undecided(self, step_input: Any, label: str) -> dict[str, Any]:
        return run_sync(self._avote_undecided(step_input, label))

    def _output(
        self, result: StepResult, output: Any, key: str, to_message: bool
    ) -> dict[str, Any]:
        emit(decided_event(_node_label(self.node_name), result))
        out = {key: as_message(result.winner, output) if to_message else result.winner}
        if self.stats_key is not None:
            out[self.stats_key] = result.to_dict()
        return out

    def _escalate(
        self, step_input: Any, saved: Mapping[str, Any], key: str, to_message: bool
    ) -> dict[str, Any]:
        if saved["decided"]:
            return self._output(step_result(saved["result"]), saved.get("output"), key, to_message)
        result = escalated(self.voter, saved, _node_label(self.node_name), step_input)
        return self._output(result, None, key, to_message)

    def _target(self, state: Any) -> str:
        """The key the winner goes to in this state.

        Without an explicit `output_key`, a messages state (a `messages` key and no
        `answer` key, e.g. `MessagesState`) gets the winner appended to `messages`,
        as a hand-written agent node's reply; any other state gets `answer`.
        """
        if self._default_output and not _has_key(state, "answer") and _has_key(state, "messages"):
            return "messages"
        return self.output_key

    def _input(self, state: Any) -> tuple[Any, str, bool]:
        """The step input, the key the winner goes to, and whether it joins as a message."""
        output_key = self._target(state)
        for what, key in (("output_key", output_key), ("stats_key", self.stats_key)):
            if key is not None and not _has_key(state, key):
                # A dict state shows only the keys that have a value so far.
                shown = "keys with a value now:" if isinstance(state, Mapping) else "fields:"
                default = " (the default)" if what == "output_key" and self._default_output else ""
                # In a graph the node is known by the name it was added under.
                node = _node_label(self.node_name)
                raise ConfigurationError(
                    f"maker_node {node!r}: {what}={key!r}{default} is not a key of the graph "
                    f"state ({shown} {state_keys(state)}); add it to the state schema or "
                    "choose another key"
                )
        step_input = checked_input(pick(state, self.input_keys), self._check_input)
        return step_input, output_key, self._wants_message(state, output_key)

    def _wants_message(self, state: Any, output_key: str) -> bool:
        """Whether the winner joins `output_key` as a message (a messages key)."""
        if output_key == "messages":
            return True
        current = read_key(state, output_key)
        return (
            isinstance(current, list)
            and bool(current)
            and all(isinstance(m, BaseMessage) for m in current)
        )

    def _durable_output(self, out: Mapping[str, Any], key: str, to_message: bool) -> dict[str, Any]:
        answer = out["answer"]
        # The sub-graph keeps the winning sample's own message beside its parsed answer,
        # so a messages key gets that AIMessage (tool calls, id, metadata), as without
        # durable=True, rather than a new message made from the parsed value.
        message = out.get(MESSAGE_KEY)
        result = {key: as_message(answer, message) if to_message else answer}
        if self.stats_key is not None:
            result[self.stats_key] = out[STATS_KEY]
        return result

    def _durable_config(self) -> dict[str, Any] | None:
        """Room for a whole round of samples in a sync run of the sub-graph.

        The samples are the sub-graph's parallel tasks. A sync run executes them on
        LangGraph's executor, `cpu_count + 4` threads unless the run config's
        `max_concurrency` says otherwise: fewer than a round of a large k. So a sync
        run without that setting gets one as large as a round can be (the step's own
        `max_concurrency` caps its rounds, see `VoteNodes`); an async run has no cap.
        """
        if ensure_config().get("max_concurrency") is not None:
            return None
        return {"max_concurrency": self.voter.policy.max_concurrency or self.budget}

    def _run(self, state: Any) -> dict[str, Any]:
        step_input, key, to_message = self._input(state)
        if self._durable is not None:
            out = self._durable.invoke({"step_input": step_input}, self._durable_config())
            return self._durable_output(out, key, to_message)
        if self._interrupts:
            saved = self._vote_task(step_input, _node_label(self.node_name)).result()
            return self._escalate(step_input, saved, key, to_message)
        return self._output(*run_sync(self._avote(step_input)), key, to_message)

    async def _arun(self, state: Any) -> dict[str, Any]:
        step_input, key, to_message = self._input(state)
        if self._durable is not None:
            out = await self._durable.ainvoke({"step_input": step_input})
            return self._durable_output(out, key, to_message)
        if self._interrupts:
            saved = await self._avote_task(step_input, _node_label(self.node_name))
            return self._escalate(step_input, saved, key, to_message)
        return self._output(*await self._avote(step_input), key, to_message)

    def as_middleware(
        self, *, hook: str = "before_agent", state_schema: type[Any] | None = None
    ) -> Any:
        """This voted step as a LangChain agent middleware (for `create_agent`).

        The step runs as the middleware's `hook` node (`"before_agent"`: once per run,
        `"before_model"`: before every model call) inside the agent's graph, reading
        the agent state and writing the winner to `output_key`, which the
        middleware adds to the agent state (pass `state_schema` to choose the type).

        Example:
            >>> from langchain.agents import create_agent  # doctest: +SKIP
            >>> agent = create_agent(model, tools,  # doctest: +SKIP
            ...                      middleware=[node.as_middleware()])
        """
        from ._middleware import maker_middleware

        return maker_middleware(self, hook=hook, state_schema=state_schema)


def _node_label(default: str) -> str:
    """The name the node was added under (`builder.add_node(name, ...)`), for events."""
    try:
        metadata = get_config().get("metadata") or {}
    except RuntimeError:
        return default
    return str(metadata.get("langgraph_node", default))


def _has_key(state: Any, key: str) -> bool:
    """Whether the running graph's state has `key` (a misspelt output key would vanish:
    LangGraph drops unknown keys from an update)."""
    try:
        # LangGraph's CONFIG_KEY_READ reads a channel: KeyError for a key not in the state.
        read = get_config()["configurable"]["__pregel_read"]
    except (RuntimeError, KeyError):
        read = None
    if read is not None:
        try:
            read(key)
        except KeyError:
            return False
        except Exception:  # noqa: BLE001 - another LangGraph layout: cannot tell
            return True
        return True
    # Called outside a graph: a pydantic or dataclass state lists its fields; a dict
    # state only the keys set so far, so it cannot be checked.
    return isinstance(state, Mapping) or key in state_keys(state)


def maker_node(
    step: Any,
    *,
    input_keys: str | Sequence[str] | None = None,
    output_key: str | None = None,
    stats_key: str | None = None,
    durable: bool = False,
    name: str = "maker_step",
    **options: Unpack[StepOptions],
) -> MakerNode:
    """Make a fragile step a k-ahead voted, red-flag guarded, budgeted graph node.

    The node calls `step` with the parent state's `input_keys` (a str: that key's
    value; a list: a dict of those keys; None: the whole state), once per sample,
    decides the step with first-to-ahead-by-k voting, and returns
    `{output_key: winner}` (plus `{stats_key: stats}`). In a messages state (a
    `messages` key and no `answer` key, e.g. `MessagesState`) and without
    `output_key`, the winner is appended to `messages` as an `AIMessage`.

    Args:
        step: what one sample is: a chat model (the default prompt passes the
            input's `messages`, or its only key's value; pass `prompt=` otherwise), a
            list of chat models (rotated per sample), any `Runnable`, a sync or async
            function of the input, or a `Sampler`.
        input_keys: parent-state key(s) given to the step (see above).
        output_key: parent-state key the winning answer is written to (checked: a key
            the graph state does not have is a `ConfigurationError`). Default:
            `"answer"`, or `"messages"` in a state that has `messages` and no `answer`.
        stats_key: parent-state key for the step's statistics (`StepResult.to_dict()`);
            None (the default on every surface): not written.
        durable: run the vote as the voting sub-graph inside this node (a `Send` per
            sample, each saved by the parent's checkpointer as it finishes), so a
            resume after a crash or an outage mid-vote redraws only unfinished
            samples. Costs the sub-graph's orchestration (a few ms per step);
            progress events then come from a sub-graph (`subgraphs=True`).
            `max_concurrency` caps each round of the sub-graph. Not LangGraph's
            `durability=` (when checkpoints are written; see docs/wrapping.md).
        name: the node's name in traces, events and errors when it runs outside a
            graph; in a graph, events, sample runs and errors carry the name the node
            was added under.
        options: the step options (`StepOptions`: `k`, `parser`, `key`, `red_flags`,
            `max_samples`, `on_no_consensus`, `escalate`, `temperature`, `models`,
            `prompt`, `max_tokens`, `structured`, `max_concurrency`, `retry`).

    Returns:
        A `MakerNode` for `builder.add_node(name, node)`.

    Raises:
        ConfigurationError: options that cannot work, at build time.

    Example:
        >>> node = maker_node(lambda s: s["q"].strip().lower(), k=2, input_keys=["q"])
        >>> node.invoke({"q": " Yes "})
        {'answer': 'yes'}
    """
    check_input_keys("maker_node", input_keys)
    voted = VotedStep("maker_node", step, options)
    voter = voted.voter(decides=True)
    durable_graph = None
    if durable:
        durable_graph = voting_builder(
            voted.voter(decides=False),
            on_no_consensus=voted.action,
            escalate=voted.escalate,
            stats_key=STATS_KEY,
            label=name,
            message_key=MESSAGE_KEY,
        ).compile()
    return MakerNode(
        name,
        voter,
        input_keys=input_keys,
        output_key=output_key,
        stats_key=stats_key,
        interrupt_on_no_consensus=voted.interrupts,
        budget=voter.policy.budget,
        check_input=voted.check_input,
        durable_graph=durable_graph,
    )
