"""`create_decomposition_graph`: the maximal-decomposition loop of a `Task` as a LangGraph graph.

Two shapes, one contract (an uncompiled `StateGraph` whose state is where the
run stands, O(1) in the number of steps):

- `chunk > 1` (the default, 10,000 steps): `START → chunk ⟲ → END`. Each
  superstep runs `chunk` voted steps through `run_task`, the engine's fast
  loop, and writes the new position to the graph state, so orchestration costs
  one superstep per chunk: a rounding error on long runs. With `run_log=` the
  steps are also committed to the run log, and the run resumes from either the
  log or a LangGraph checkpointer.
- `chunk = 1`: `START → dispatch ⇉ sample ⇄ red_flag → tally → advance ⟲ → END`:
  every step goes through the voting sub-graph's nodes, so each sample is a
  visible `Send` branch and each step streams its voting events. For small,
  watchable runs.

Progress goes to the `custom` stream: `maker.chunk` after each chunk,
`maker.progress` while a chunk runs, and the voting events at `chunk=1`.

`maker_graph.graph.hybrid.decomposition_node` puts a whole decomposed run
inside one node of a larger graph.

Example:
    >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
    >>> task = HanoiTask(4)
    >>> graph = create_decomposition_graph(task, simulated_sampler(task)).compile()
    >>> out = graph.invoke({})
    >>> out["step"], out["done"], out["state"]
    (15, True, [[], [], [4, 3, 2, 1]])
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Hashable, Iterator, Mapping, Sequence
from typing import Any, Literal

from langgraph.graph import END, START, StateGraph
from langgraph.types import interrupt

# typing_extensions, not typing: LangGraph's server reads key docs and schemas from it on
# Python < 3.12.
from typing_extensions import TypedDict

from .._sync import run_sync
from .._util import compact_json, identity
from ..errors import ConfigurationError
from ..records import StepResult
from ..red_flags import RedFlag
from ..run import ProgressEvent, run_task
from ..runlog import Checkpoint, RunLog, RunMeta, StepRecord, open_run_log
from ..sampling import ChatModelSampler
from ..tasks.base import StepAnswer, Task
from ..vote import EscalationHandler, VotePolicy
from ..voting import KeyFunction, canonical_key
from ._node import DualNode, emit, router
from ._options import build_voter, check_no_consensus, is_chat_model_step
from ._schema import typed_dict, votes_channel
from ._vote_nodes import NodeNames, VoteNodes
from .events import chunk_event, escalation_request, jsonable, progress_event

__all__ = [
    "DEFAULT_CHUNK",
    "DecompositionState",
    "continue_condition",
    "create_decomposition_graph",
]

DEFAULT_CHUNK = 10_000
"""Steps per superstep by default: ~1 s of simulated steps, one ~0.5 ms superstep."""


class DecompositionState(TypedDict, total=False):
    """Where a decomposed run stands; JSON data, O(1) in the number of steps.

    Attributes:
        step: the index of the next step (= steps done).
        state: the task state after the last step (the task's `dump_state` form).
        previous: the last action (JSON data; None before the first step).
        done: True once the task reports itself complete.
        totals: running totals of the run (samples, tokens, red flags, ...).
        stopped: why the loop ended: `"done"`, or `"incomplete"` when the task's
            known step count (`task.total_steps`) was reached and the task is not
            done (a wrong step was voted in); absent while the run goes on.
    """

    step: int
    state: Any
    previous: Any
    done: bool
    totals: dict[str, Any]
    stopped: str


class _TaskIO:
    """The task's JSON forms of states and actions (as `run_task` stores them)."""

    def __init__(self, task: Task) -> None:
        self.task = task
        # `run_task`'s own defaults, so chunk=1 and chunk>1 store the same JSON.
        self.dump_state: Callable[[Any], Any] = getattr(task, "dump_state", identity)
        self.load_state: Callable[[Any], Any] = getattr(task, "load_state", identity)
        self._dump_action: Callable[[Any], str] = getattr(task, "dump_action", compact_json)
        self.load_action: Callable[[Any], Any] = getattr(task, "load_action", identity)

    def dump_action(self, action: Any) -> Any:
        return None if action is None else json.loads(self._dump_action(action))

    def position(self, values: Mapping[str, Any]) -> tuple[Any, Any, int]:
        """(task state, previous action, step) of a graph state (fresh run if empty)."""
        if "state" not in values:
            return self.task.initial_state(), None, 0
        return (
            self.load_state(values["state"]),
            self.load_action(values.get("previous")),
            int(values.get("step", 0)),
        )


# --------------------------------------------------------------------------- chunked


class _MemoryLog(RunLog):
    """A run log that keeps only the latest checkpoint, seeded from the graph state.

    It lets `run_task` continue from wherever the graph state says, with no file:
    the LangGraph checkpointer is then the only durable copy.
    """

    def __init__(self, task: Task, seed: Checkpoint | None) -> None:
        self.location = "graph state"
        self._meta = RunMeta(
            run_id="graph", task=task.name, params=getattr(task, "params", {}), created=time.time()
        )
        self._checkpoint = seed

    def start(
        self,
        task: str,
        params: Mapping[str, Any],
        *,
        run_id: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> RunMeta:
        return self._meta

    def append(self, records: Sequence[StepRecord], checkpoint: Checkpoint) -> None:
        self._checkpoint = checkpoint

    def meta(self) -> RunMeta | None:
        return self._meta

    def checkpoint(self) -> Checkpoint | None:
        return self._checkpoint

    def steps(self, start: int = 0, stop: int | None = None) -> Iterator[StepRecord]:
        return iter(())

    def verify(self) -> int:
        return 0

    def drop(self) -> None:
        self._checkpoint = None

    def close(self) -> None:
        return None


def _checkpoint_of(values: Mapping[str, Any]) -> Checkpoint | None:
    if "state" not in values:
        return None
    return Checkpoint(
        next_step=int(values.get("step", 0)),
        state=values["state"],
        previous_action=values.get("previous"),
        totals=values.get("totals") or {},
        done=bool(values.get("done")),
    )


def _values_of(checkpoint: Checkpoint) -> dict[str, Any]:
    return {
        "step": checkpoint.next_step,
        "state": checkpoint.state,
        "previous": checkpoint.previous_action,
        "totals": dict(checkpoint.totals),
        "done": checkpoint.done,
    }


class _ChunkNode:
    def __init__(
        self,
        task: Task,
        sampler: Any,
        policy: VotePolicy,
        *,
        chunk: int,
        run_log: RunLog | str | None,
        label: str,
        options: dict[str, Any],
    ) -> None:
        self.task = task
        self.sampler = sampler
        self.policy = policy
        self.chunk = chunk
        self.run_log = run_log
        self.label = label
        self.options = options
        self.total_steps: int | None = getattr(task, "total_steps", None)

    def _progress(self, event: ProgressEvent) -> None:
        emit(
            progress_event(
                self.label,
                event.steps,
                event.total_steps,
                event.samples,
                event.red_flagged,
                event.elapsed,
            )
        )

    async def arun(self, values: Mapping[str, Any]) -> dict[str, Any]:
        if self.run_log is not None:
            log: RunLog | str = self.run_log
        else:
            log = _MemoryLog(self.task, _checkpoint_of(values))
        owned = None
        if isinstance(log, str):
            owned = log = open_run_log(log)
        try:
            report = await run_task(
                self.task,
                self.sampler,
                self.policy,
                run_log=log,
                max_steps=self.chunk,
                # Commit (and report progress) as `run_task` does on its own: every
                # 2,000 steps or half a second; a memory log's commit is a swap.
                chunk_size=min(self.chunk, 2000),
                commit_interval=0.5,
                on_progress=self._progress,
                **self.options,
            )
            checkpoint = log.checkpoint()
        finally:
            if owned is not None:
                owned.close()
        if checkpoint is None:  # a task that was done before its first step
            state = self.task.initial_state()
            checkpoint = Checkpoint(
                next_step=0,
                state=getattr(self.task, "dump_state", identity)(state),
                previous_action=None,
                totals={},
                done=self.task.is_done(state),
            )
        emit(
            chunk_event(
                self.label,
                checkpoint.next_step,
                report.session_steps,
                checkpoint.done,
                report.samples,
            )
        )
        values = _values_of(checkpoint)
        if checkpoint.done:
            values["stopped"] = "done"
        elif report.session_steps == 0:
            # `run_task` stops at the task's known step count; a run that gets
            # there unfinished can make no more progress, so the loop must end.
            values["stopped"] = "incomplete"
        return values

    def run(self, values: Mapping[str, Any]) -> dict[str, Any]:
        return run_sync(self.arun(values))


def _interrupt_escalation(io: _TaskIO, label: str) -> EscalationHandler:
    """Escalation inside a chunk: ask through `interrupt()`; the answer is the step's.

    On resume the chunk node runs again: with a run log it continues after the last
    committed step (all steps before the undecided one are committed when the
    interrupt stops the chunk); without one it redoes the chunk up to that step.
    """

    def handler(result: StepResult) -> StepAnswer:
        request = escalation_request(label, result.step, result, result.samples_drawn)
        answer = interrupt(request)
        if isinstance(answer, StepAnswer):
            return answer
        if isinstance(answer, Mapping) and "next_state" in answer:
            return StepAnswer(
                io.load_action(answer.get("action")), io.load_state(answer["next_state"])
            )
        raise ConfigurationError(
            "resume an escalated decomposition step with a StepAnswer or "
            f"{{'action': ..., 'next_state': ...}}, got {answer!r}"
        )

    return handler


def continue_condition(state: Mapping[str, Any]) -> Literal["next", "done"]:
    """Router of the decomposition loop: another chunk (or step), or the end."""
    return "done" if state.get("done") or state.get("stopped") else "next"


# --------------------------------------------------------------------------- one step


class _StepNodes:
    """chunk=1: the voting nodes plus `advance`, which moves the run one step on."""

    def __init__(
        self, task: Task, io: _TaskIO, stats_key: str, answer_key_: str, label: str
    ) -> None:
        self.task = task
        self.io = io
        self.label = label
        self.stats_key = stats_key
        self.answer_key = answer_key_

    def read_input(self, values: Mapping[str, Any]) -> Any:
        # Plain data in the Sends and the tally; `make_input` rebuilds the step input.
        state, previous, step = self.io.position(values)
        return {
            "state": self.io.dump_state(state),
            "previous": self.io.dump_action(previous),
            "step": step,
        }

    def make_input(self, data: Mapping[str, Any]) -> Any:
        return self.task.step_input(
            self.io.load_state(data["state"]), self.io.load_action(data["previous"]), data["step"]
        )

    def plain(self, answer: Any) -> dict[str, Any]:
        if isinstance(answer, Mapping) and "next_state" in answer:
            return dict(answer)
        if not isinstance(answer, StepAnswer):
            raise ConfigurationError(
                f"a decomposition step's answer must be a StepAnswer, got {answer!r}"
            )
        return {
            "action": self.io.dump_action(answer.action),
            "next_state": self.io.dump_state(answer.next_state),
        }

    def answer_of(self, plain: Mapping[str, Any]) -> StepAnswer:
        return StepAnswer(
            self.io.load_action(plain["action"]), self.io.load_state(plain["next_state"])
        )

    def advance(self, values: Mapping[str, Any]) -> dict[str, Any]:
        _, _, step = self.io.position(values)
        plain = self.plain(values[self.answer_key])
        state = self.io.load_state(plain["next_state"])
        stats = values.get(self.stats_key) or {}
        totals = dict(values.get("totals") or {})
        # The same totals as `run_task` keeps (non-vote decisions only in decided_by).
        for field, source in (
            ("samples", "samples_drawn"),
            ("valid", "valid_votes"),
            ("input_tokens", "input_tokens"),
            ("output_tokens", "output_tokens"),
        ):
            totals[field] = totals.get(field, 0) + int(stats.get(source, 0))
        how = stats.get("decided_by", "vote")
        decided = dict(totals.get("decided_by", {}))
        if how != "vote":
            decided[how] = decided.get(how, 0) + 1
        totals["decided_by"] = decided
        flags = dict(totals.get("red_flags", {}))
        for reason, n in (stats.get("red_flags") or {}).items():
            flags[reason] = flags.get(reason, 0) + n
        totals["red_flags"] = flags
        done = self.task.is_done(state)
        emit(chunk_event(self.label, step + 1, 1, done, int(stats.get("samples_drawn", 0))))
        out = {
            "step": step + 1,
            "state": plain["next_state"],
            "previous": plain["action"],
            "done": done,
            "totals": totals,
        }
        total = getattr(self.task, "total_steps", None)
        if done:
            out["stopped"] = "done"
        elif total is not None and step + 1 >= total:
            out["stopped"] = "incomplete"
        return out


# --------------------------------------------------------------------------- factory


def _sampler_for(task: Task, sampler: Any) -> Any:
    # A bare chat model samples the task's prompt, as `run_task` does.
    if is_chat_model_step(sampler):
        return ChatModelSampler(sampler, prompt=task.prompt)
    return sampler


def create_decomposition_graph(
    task: Task,
    sampler: Any,
    *,
    k: int = 3,
    policy: VotePolicy | None = None,
    parser: Callable[[Any], Any] | None = None,
    key: KeyFunction | None = None,
    red_flags: Sequence[RedFlag] = (),
    escalate: EscalationHandler | None = None,
    chunk: int = DEFAULT_CHUNK,
    run_log: RunLog | str | None = None,
    max_total_samples: int | None = None,
    max_total_tokens: int | None = None,
    concurrency: int | None = None,
    speculate: int | None = None,
    name: str = "decompose",
) -> StateGraph[Any, Any, Any, Any]:
    """Build the maximal-decomposition loop over `task` as an uncompiled `StateGraph`.

    Invoke the compiled graph with `{}` to start (or with a `DecompositionState` to
    continue from there); it returns the `DecompositionState` at the end. With a
    checkpointer, an interrupted run continues with `graph.invoke(None, config)`.

    Args:
        task: the decomposed `Task`.
        sampler: a `Sampler`, chat model (prompted with `task.prompt`), Runnable or
            function of the task's step input.
        k: the voting margin (ignored when `policy` is given).
        policy: the per-step `VotePolicy` (k, max samples per step, no-consensus
            action, concurrency, retries).
        parser: raw output -> `StepAnswer` (default `task.parse`).
        key: `StepAnswer` -> vote key (default: the answer itself, i.e. action and
            next state).
        red_flags: checks that discard samples.
        escalate: the escalation handler when the policy says `"escalate"`; at
            `chunk=1` without one, escalation is an `interrupt()`.
        chunk: voted steps per superstep. 1 routes every step through the voting
            sub-graph (visible, slow: ~2 ms of orchestration per step).
        run_log: a run directory, URL or `RunLog` to commit every step to
            (`chunk > 1` only); the run then also resumes from the log.
        max_total_samples: run budget of samples (`BudgetExhaustedError` when spent).
        max_total_tokens: run budget of tokens.
        concurrency: provider calls in flight at once (`chunk > 1`).
        speculate: steps run ahead of the oldest undecided one (`chunk > 1`; see
            `run_task`): None turns it on when samples take time, 0 off. The steps
            committed are the same either way; nothing speculative crosses a chunk.
        name: the `node` of every event the graph streams (at chunk=1 the voting
            events and `maker.chunk` too, whatever the graph's own node names).

    Raises:
        ConfigurationError: chunk < 1, or a run log or `speculate > 0` with chunk=1.

    Example:
        >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
        >>> task = HanoiTask(2)
        >>> g = create_decomposition_graph(task, simulated_sampler(task), chunk=1).compile()
        >>> g.invoke({})["step"]
        3
    """
    if not isinstance(chunk, int) or chunk < 1:
        raise ConfigurationError(f"chunk must be an integer >= 1, got {chunk!r}")
    policy = policy or VotePolicy(k=k)
    check_no_consensus(policy.on_no_consensus, escalate)
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(DecompositionState)
    if chunk > 1:
        if policy.on_no_consensus == "escalate" and escalate is None:
            escalate = _interrupt_escalation(_TaskIO(task), name)
        options: dict[str, Any] = {
            "parser": parser,
            "key": key,
            "red_flags": red_flags,
            "escalate": escalate,
            "max_total_samples": max_total_samples,
            "max_total_tokens": max_total_tokens,
            "concurrency": concurrency,
            "speculate": speculate,
        }
        node = _ChunkNode(
            task, sampler, policy, chunk=chunk, run_log=run_log, label=name, options=options
        )
        builder.add_node("chunk", DualNode("chunk", node.run, node.arun))
        builder.add_edge(START, "chunk")
        builder.add_conditional_edges(
            "chunk", router(continue_condition), {"next": "chunk", "done": END}
        )
        return builder
    if run_log is not None:
        raise ConfigurationError(
            "chunk=1 puts each step through the voting sub-graph and resumes from the "
            "LangGraph checkpointer only; use chunk > 1 to commit steps to a run log"
        )
    if speculate:
        raise ConfigurationError(
            "chunk=1 decides each step in its own superstep, so no step can start early; "
            "use chunk > 1 to speculate"
        )
    if max_total_samples is not None or max_total_tokens is not None:
        raise ConfigurationError(
            "run budgets (max_total_samples, max_total_tokens) apply to chunk > 1; "
            "at chunk=1 bound each step with policy=VotePolicy(max_samples=...)"
        )
    return _one_step_graph(
        builder,
        task,
        sampler,
        policy,
        parser=parser,
        key=key,
        red_flags=red_flags,
        escalate=escalate,
        label=name,
    )


def _one_step_graph(
    builder: StateGraph[Any, Any, Any, Any],
    task: Task,
    sampler: Any,
    policy: VotePolicy,
    *,
    parser: Callable[[Any], Any] | None,
    key: KeyFunction | None,
    red_flags: Sequence[RedFlag],
    escalate: EscalationHandler | None,
    label: str,
) -> StateGraph[Any, Any, Any, Any]:
    io = _TaskIO(task)
    answer_slot, stats_slot, votes_slot = "maker_answer", "maker_stats", "maker_votes"
    steps = _StepNodes(task, io, stats_slot, answer_slot, label)
    parse = parser or task.parse

    def plain_parser(output: Any) -> dict[str, Any]:
        return steps.plain(parse(output))

    def plain_key(plain: Any) -> Hashable:
        # Keys are checkpointed in the tally: keep them JSON text, never task objects.
        if key is None:
            return canonical_key(plain)
        return json.dumps(jsonable(key(steps.answer_of(plain))), sort_keys=True)

    voter = build_voter(
        _sampler_for(task, sampler),
        k=policy.k,
        parser=plain_parser,
        key=plain_key,
        red_flags=red_flags,
        max_samples=policy.max_samples,
        on_no_consensus="raise",
        escalate=None,
        retry=policy.retry,
    )
    # The voting keys join the loop's state; they are overwritten every step.
    extra = typed_dict(
        "DecompositionStepState",
        {answer_slot: Any, stats_slot: dict[str, Any], votes_slot: votes_channel(policy.k)},
    )
    nodes = VoteNodes(
        voter,
        names=NodeNames(),
        votes_key=votes_slot,
        output_key=answer_slot,
        stats_key=stats_slot,
        read_input=steps.read_input,
        make_input=steps.make_input,
        on_no_consensus=policy.on_no_consensus,
        escalate=escalate,
        label=label,
    )
    nodes.attach(builder, then="advance", votes_schema=extra)

    async def aadvance(values: Mapping[str, Any]) -> dict[str, Any]:
        return steps.advance(values)

    builder.add_node(
        "advance",
        DualNode("advance", steps.advance, aadvance),
        input_schema=typed_dict(
            "AdvanceInput",
            {**DecompositionState.__annotations__, answer_slot: Any, stats_slot: dict[str, Any]},
        ),
    )

    def begin_condition(values: Mapping[str, Any]) -> Literal["next", "done"]:
        state, _, _ = io.position(values)
        return "done" if values.get("done") or task.is_done(state) else "next"

    builder.add_conditional_edges(START, router(begin_condition), {"next": "dispatch", "done": END})
    builder.add_conditional_edges(
        "advance", router(continue_condition), {"next": "dispatch", "done": END}
    )
    return builder
