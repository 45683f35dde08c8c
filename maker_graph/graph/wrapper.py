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
from langgraph.types import interrupt

from .._sync import run_sync
from ..errors import ConfigurationError, NoConsensusError
from ..records import Sample, StepResult
from ..red_flags import RedFlag
from ..sampling import ProviderRetry
from ..vote import EscalationHandler, NoConsensusAction, Parser, Voter
from ..voting import KeyFunction
from ._node import DualNode, emit
from ._options import (
    SampleRuns,
    Temperature,
    as_message,
    build_sampler,
    build_voter,
    chat_input_check,
    check_no_consensus,
    checked_input,
    default_chat_input,
    hashable_key,
    observed,
    pick,
    read_key,
    state_keys,
)
from ._vote_nodes import STEP_METADATA
from .events import decided_event, escalation_request, red_flag_event, sample_event
from .voting_graph import MESSAGE_KEY, STATS_KEY, voting_builder

__all__ = ["MakerNode", "maker_node"]


class MakerNode(DualNode):
    """A voted step as a graph node (see `maker_node`); sync and async.

    Attributes:
        voter: the compiled `Voter` (sampler, parser, key, red flags, policy).
        input_keys: the parent-state keys the step reads (None: the whole state).
        output_key: where the winner is written.
        stats_key: where the step's `StepResult.to_dict()` is written, if anywhere.
    """

    def __init__(
        self,
        name: str,
        voter: Voter,
        *,
        input_keys: Sequence[str] | None,
        output_key: str,
        stats_key: str | None,
        interrupt_on_no_consensus: bool,
        budget: int,
        check_input: Callable[[Any], Any] | None = None,
        durable_graph: Any = None,
    ) -> None:
        super().__init__(name, self._run, self._arun)
        self.node_name = name
        self.voter = voter
        self.input_keys = list(input_keys) if input_keys is not None else None
        self.output_key = output_key
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

        def on_sample(sample: Sample) -> None:
            if runs is not None:
                runs.saw(sample)
            emit(sample_event(label, sample))
            if sample.red_flag is not None:
                # The engine replaces it in its next round while the budget lasts.
                emit(red_flag_event(label, sample, resampled=None))
            elif sample.key not in outputs:
                outputs[sample.key] = sample.raw.output

        result = await voter.vote(step_input, on_sample=on_sample)
        return result, outputs.get(result.winner_key)

    async def _avote_undecided(self, step_input: Any, label: str) -> dict[str, Any]:
        try:
            result, output = await self._avote(step_input, label)
        except NoConsensusError as exc:
            return {
                "decided": False,
                "tally": list(exc.tally.items()),
                "drawn": exc.samples_drawn,
                "red_flags": exc.red_flags,
            }
        # Only a message is kept beside the result: it is what a messages key needs, and
        # checkpointers can store it (an arbitrary raw output might not be).
        message = output if isinstance(output, BaseMessage) else None
        return {"decided": True, "result": _result_fields(result), "output": message}

    def _vote_undecided(self, step_input: Any, label: str) -> dict[str, Any]:
        return run_sync(self._avote_undecided(step_input, label))

    def _output(self, result: StepResult, output: Any, to_message: bool) -> dict[str, Any]:
        emit(decided_event(_node_label(self.node_name), result))
        out = {self.output_key: as_message(result.winner, output) if to_message else result.winner}
        if self.stats_key is not None:
            out[self.stats_key] = result.to_dict()
        return out

    def _escalate(
        self, step_input: Any, saved: Mapping[str, Any], to_message: bool
    ) -> dict[str, Any]:
        if saved["decided"]:
            return self._output(StepResult(**saved["result"]), saved.get("output"), to_message)
        result = StepResult(
            winner=None,
            winner_key=None,
            tally=dict((hashable_key(k), n) for k, n in saved["tally"]),
            decided_by="escalation",
            k=self.voter.policy.k,
            samples_drawn=saved["drawn"],
            valid_votes=sum(n for _, n in saved["tally"]),
            red_flags=dict(saved["red_flags"]),
        )
        request = escalation_request(_node_label(self.node_name), step_input, result, self.budget)
        result.winner = interrupt(request)
        return self._output(result, None, to_message)

    def _input(self, state: Any) -> Any:
        if not isinstance(state, Mapping):
            # A pydantic or dataclass state lists its fields, so a misspelt output
            # key is caught here instead of vanishing from the update. (A dict
            # state only shows the keys set so far, so it cannot be checked.)
            keys = state_keys(state)
            for what, key in (("output_key", self.output_key), ("stats_key", self.stats_key)):
                if key is not None and key not in keys:
                    raise ConfigurationError(
                        f"maker_node {self.node_name!r}: {what}={key!r} is not a field of "
                        f"the graph state {keys}; add it to the state schema or choose "
                        "another key"
                    )
        return checked_input(pick(state, self.input_keys), self._check_input)

    def _wants_message(self, state: Any) -> bool:
        """Whether the winner joins `output_key` as a message (a messages key)."""
        if self.output_key == "messages":
            return True
        current = read_key(state, self.output_key)
        return (
            isinstance(current, list)
            and bool(current)
            and all(isinstance(m, BaseMessage) for m in current)
        )

    def _durable_output(self, out: Mapping[str, Any], to_message: bool) -> dict[str, Any]:
        answer = out["answer"]
        # The sub-graph keeps the winning sample's own message beside its parsed answer,
        # so a messages key gets that AIMessage (tool calls, id, metadata), as without
        # durable=True, rather than a new message made from the parsed value.
        message = out.get(MESSAGE_KEY)
        result = {self.output_key: as_message(answer, message) if to_message else answer}
        if self.stats_key is not None:
            result[self.stats_key] = out[STATS_KEY]
        return result

    def _durable_config(self) -> dict[str, Any]:
        # The sub-graph's sample runs are named after the node as it was added
        # (`{node}.sample[i]`), like the samples of a node without durable=True.
        return {"metadata": {STEP_METADATA: _node_label(self.node_name)}}

    def _run(self, state: Any) -> dict[str, Any]:
        step_input = self._input(state)
        to_message = self._wants_message(state)
        if self._durable is not None:
            out = self._durable.invoke({"step_input": step_input}, self._durable_config())
            return self._durable_output(out, to_message)
        if self._interrupts:
            saved = self._vote_task(step_input, _node_label(self.node_name)).result()
            return self._escalate(step_input, saved, to_message)
        return self._output(*run_sync(self._avote(step_input)), to_message)

    async def _arun(self, state: Any) -> dict[str, Any]:
        step_input = self._input(state)
        to_message = self._wants_message(state)
        if self._durable is not None:
            out = await self._durable.ainvoke({"step_input": step_input}, self._durable_config())
            return self._durable_output(out, to_message)
        if self._interrupts:
            saved = await self._avote_task(step_input, _node_label(self.node_name))
            return self._escalate(step_input, saved, to_message)
        return self._output(*await self._avote(step_input), to_message)

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


def _result_fields(result: StepResult) -> dict[str, Any]:
    # Plain data for the task's checkpointed result; samples are not kept.
    return {
        "winner": result.winner,
        "winner_key": result.winner_key,
        "tally": result.tally,
        "decided_by": result.decided_by,
        "k": result.k,
        "samples_drawn": result.samples_drawn,
        "valid_votes": result.valid_votes,
        "red_flags": result.red_flags,
        "rounds": result.rounds,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
        "provider_failures": result.provider_failures,
        "wall_seconds": result.wall_seconds,
    }


def maker_node(
    step: Any,
    *,
    k: int = 3,
    parser: Parser | None = None,
    key: KeyFunction | None = None,
    red_flags: Sequence[RedFlag] = (),
    input_keys: Sequence[str] | None = None,
    output_key: str = "answer",
    max_samples: int | None = None,
    on_no_consensus: NoConsensusAction = "raise",
    escalate: EscalationHandler | None = None,
    temperature: Temperature = None,
    models: Sequence[Any] = (),
    prompt: Any = None,
    max_tokens: int | None = None,
    structured: Any = None,
    max_concurrency: int | None = None,
    retry: ProviderRetry | None = None,
    stats_key: str | None = None,
    durable: bool = False,
    name: str = "maker_step",
) -> MakerNode:
    """Make a fragile step a k-ahead voted, red-flag guarded, budgeted graph node.

    The node calls `step` with a dict of the parent state's `input_keys` (the whole
    state when None), once per sample, decides the step with first-to-ahead-by-k
    voting, and returns `{output_key: winner}` (plus `{stats_key: stats}`).

    Args:
        step: what one sample is: a chat model (the default prompt passes the
            input's `messages`, or its only key's value; pass `prompt=` otherwise), a
            list of chat models (rotated per sample), any `Runnable`, a sync or async
            function of the input dict, or a `Sampler`.
        k: the margin: an answer wins once it has k more votes than any other.
        parser: the step's raw output (an `AIMessage` for chat models, whatever a
            Runnable or function returns) -> the answer; raise to red-flag the
            sample. Default: the message text stripped, or the output as is.
        key: answer -> vote key; answers with equal keys are the same vote.
        red_flags: checks that discard samples before they vote.
        input_keys: parent-state keys given to the step (None: the whole state).
        output_key: parent-state key the winning answer is written to.
        max_samples: samples the step may draw, red-flagged included (default 10k+20).
        on_no_consensus: budget spent: `"raise"` (`NoConsensusError`), `"plurality"`,
            or `"escalate"`: the `escalate` handler answers, or without one the node
            calls `interrupt()` with the tally (resume with `Command(resume=answer)`;
            the vote is not redrawn on resume).
        escalate: escalation handler, `StepResult` -> answer (sync or async).
        temperature: chat models: a `TemperatureSchedule`, a function of the sample
            index, or one temperature (default 0 for the first sample, then 0.1).
        models: more chat models to rotate with `step`, to decorrelate errors.
        prompt: chat models: builds the model input from the input dict (a function
            or a `ChatPromptTemplate`).
        max_tokens: chat models: caps each sample's output tokens.
        structured: chat models: a schema for `with_structured_output`; the parser
            then receives the parsed object.
        max_concurrency: provider calls in flight at once for this node.
        retry: how provider failures are retried (never counted as votes).
        stats_key: parent-state key for the step's statistics (`StepResult.to_dict()`).
        durable: run the vote as the voting sub-graph inside this node (a `Send` per
            sample, each saved by the parent's checkpointer as it finishes), so a
            resume after a crash or an outage mid-vote redraws only unfinished
            samples. Costs the sub-graph's orchestration (a few ms per step);
            progress events then come from a sub-graph (`subgraphs=True`).
            `max_concurrency` does not apply (use the run config's).
        name: the node's name (used in events and traces).

    Returns:
        A `MakerNode` for `builder.add_node(name, node)`.

    Raises:
        ConfigurationError: options that cannot work, at build time.

    Example:
        >>> node = maker_node(lambda s: s["q"].strip().lower(), k=2, input_keys=["q"])
        >>> node.invoke({"q": " Yes "})
        {'answer': 'yes'}
    """
    action = check_no_consensus(on_no_consensus, escalate)
    if input_keys is not None and (isinstance(input_keys, str) or not input_keys):
        raise ConfigurationError(
            f"input_keys must be a non-empty list of state keys or None, got {input_keys!r}"
        )
    sampler = build_sampler(
        step,
        prompt=prompt,
        models=models,
        temperature=temperature,
        max_tokens=max_tokens,
        structured=structured,
        default_prompt=default_chat_input,
    )
    check_input = chat_input_check(step, prompt)
    interrupts = action == "escalate" and escalate is None
    voter = build_voter(
        sampler,
        k=k,
        parser=parser,
        key=key,
        red_flags=red_flags,
        max_samples=max_samples,
        on_no_consensus="raise" if interrupts else action,
        escalate=escalate,
        max_concurrency=max_concurrency,
        retry=retry,
    )
    durable_graph = None
    if durable:
        graph_voter = build_voter(
            sampler,
            k=k,
            parser=parser,
            key=key,
            red_flags=red_flags,
            max_samples=max_samples,
            on_no_consensus="raise",
            escalate=None,
            retry=retry,
        )
        durable_graph = voting_builder(
            graph_voter,
            on_no_consensus=action,
            escalate=escalate,
            label=name,
            message_key=MESSAGE_KEY,
        ).compile()
    return MakerNode(
        name,
        voter,
        input_keys=input_keys,
        output_key=output_key,
        stats_key=stats_key,
        interrupt_on_no_consensus=interrupts,
        budget=voter.policy.budget,
        check_input=check_input,
        durable_graph=durable_graph,
    )
