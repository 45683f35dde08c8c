"""`create_voting_graph`: one voted step as a LangGraph sub-graph you can see.

```
START ─▶ dispatch ══Send × k══▶ sample ──vote──▶ tally ──decided──▶ END
                                 ▲    │            │  ╲
                        red_flag └────┘  next_round ╲  no_consensus ─▶ escalate ─▶ END
                                 ▲                 │
                                 └═══Send × needed═┘
```

- `dispatch` resets the step's tally (an `Overwrite`, so votes never leak from one
  step into the next) and fans out one `Send` per sample, k in the first round.
- Each `sample` branch draws one sample, retrying provider failures inside the
  branch (a raising branch would cancel its siblings), then parses, keys and
  red-flags it with the engine's own `Voter.check`.
- The **red-flag guard edge** (`red_flag_condition`) sends a flagged sample straight
  back to `sample` under a fresh sample index, as long as the step's budget allows;
  only valid votes go on to `tally`.
- Votes join through a **k-ahead reducer** (`k_ahead_reducer`), which records the
  first answer to get k votes ahead.
- `tally` waits while samples are in flight, then ends with the winner, fans out
  only `samples_needed()` more samples, or — budget spent — raises
  `NoConsensusError`, takes the plurality, or routes to `escalate`, which asks a
  human through `interrupt()` (resume with `Command(resume=answer)`) or calls an
  escalation handler.

Progress goes to the `custom` stream (`stream_mode="custom"`, with
`subgraphs=True` from a parent graph): see `maker_graph.graph.events`.

The same nodes are grafted into a user's own graph by
`maker_graph.graph.add_maker_step`.

Example:
    >>> from maker_graph.graph import create_voting_graph
    >>> graph = create_voting_graph(lambda q: "4", k=2).compile()
    >>> graph.invoke({"step_input": "2+2?"})["answer"]
    '4'
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal, TypedDict, cast

from langgraph.graph import END, START, StateGraph
from langgraph.types import Overwrite, Send, interrupt

from ..errors import ConfigurationError, NoConsensusError, SamplerError
from ..records import Sample, StepResult
from ..red_flags import RedFlag
from ..sampling import RetryPolicy, draw
from ..vote import EscalationHandler, NoConsensusAction, Parser, Voter
from ..voting import KeyFunction, first_to_ahead_by_k, samples_needed
from ._node import ROUTE, DualNode, emit, router, run_sync
from ._options import Temperature, build_sampler, build_voter, check_no_consensus
from .events import (
    decided_event,
    escalation_request,
    provider_failure_event,
    red_flag_event,
    round_event,
    sample_event,
)

__all__ = [
    "STATS_KEY",
    "VOTES_KEY",
    "NodeNames",
    "VoteNodes",
    "create_voting_graph",
    "dispatch_condition",
    "k_ahead_reducer",
    "new_tally",
    "red_flag_condition",
    "tally_condition",
    "voting_builder",
]

VOTES_KEY = "maker_votes"
"""Default state key of the step's tally (joined by the k-ahead reducer)."""
STATS_KEY = "maker_stats"
"""Default state key of the decided step's statistics (`StepResult.to_dict()`)."""


# --------------------------------------------------------------------------- the tally


def _freeze(value: Any) -> Hashable:
    # Checkpointers store tuples as lists; freezing keeps vote keys comparable and
    # hashable after a round trip through any of them.
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((str(k), _freeze(v)) for k, v in value.items()))
    return cast(Hashable, value)


def new_tally(step_input: Any = None) -> dict[str, Any]:
    """An empty tally for one step: plain data, so any checkpointer can store it.

    Fields: `input` (the step input), `keys`/`counts`/`values` (vote keys in order of
    first appearance, their votes, and the first answer seen per key), `winner` (index
    of the first key to get k ahead, or None), `decided_by`, `drawn` (samples drawn,
    red-flagged included), `valid`, `flags` (red flags by reason), `failures` (failed
    provider calls by kind), `in_flight`, `next_index`, `round`, `tokens_in`,
    `tokens_out`, `started` (wall-clock time of dispatch).
    """
    return {
        "input": step_input,
        "keys": [],
        "counts": [],
        "values": [],
        "winner": None,
        "decided_by": None,
        "drawn": 0,
        "valid": 0,
        "flags": {},
        "failures": {},
        "in_flight": 0,
        "next_index": 0,
        "round": 0,
        "tokens_in": 0,
        "tokens_out": 0,
        "started": time.time(),
    }


def _merge_counts(into: dict[str, int], more: Mapping[str, int]) -> dict[str, int]:
    if not more:
        return into
    out = dict(into)
    for name, n in more.items():
        out[name] = out.get(name, 0) + n
    return out


def k_ahead_reducer(k: int) -> Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]:
    """The reducer that joins one step's votes and records the first answer k ahead.

    Parallel `sample` branches each write one update; LangGraph applies them in
    `Send` order, so the result does not depend on which branch finished first.
    Updates are `{"op": "sample", ...}` (one checked sample) and `{"op": "round",
    ...}` / `{"op": "decided", ...}` (from the tally node). A new step replaces the
    whole tally with `Overwrite(new_tally(...))`.

    Example:
        >>> join = k_ahead_reducer(2)
        >>> t = new_tally("q")
        >>> for key in ["a", "b", "a", "a"]:
        ...     t = join(t, {"op": "sample", "key": key, "value": key, "drawn": 1})
        >>> t["keys"][t["winner"]], t["counts"]
        ('a', [3, 1])
    """
    if not isinstance(k, int) or k < 1:
        raise ConfigurationError(f"k must be an integer >= 1, got {k!r}")

    def join_votes(current: dict[str, Any], update: dict[str, Any]) -> dict[str, Any]:
        tally = dict(current) if current else new_tally()
        op = update.get("op")
        if op == "sample":
            tally["in_flight"] = tally["in_flight"] - 1 + update.get("continues", 0)
            tally["drawn"] += update.get("drawn", 0)
            tally["next_index"] = max(tally["next_index"], update.get("next_index", 0))
            tally["tokens_in"] += update.get("tokens_in", 0)
            tally["tokens_out"] += update.get("tokens_out", 0)
            tally["failures"] = _merge_counts(tally["failures"], update.get("failures", {}))
            flag = update.get("flag")
            if flag is not None:
                tally["flags"] = _merge_counts(tally["flags"], {flag: 1})
            elif update.get("drawn"):
                tally["valid"] += 1
                key = _freeze(update.get("key"))
                keys = [_freeze(k_) for k_ in tally["keys"]]
                counts = list(tally["counts"])
                if key in keys:
                    counts[keys.index(key)] += 1
                    tally["keys"] = keys
                else:
                    tally["keys"] = [*keys, key]
                    counts.append(1)
                    tally["values"] = [*tally["values"], update.get("value")]
                tally["counts"] = counts
                if tally["winner"] is None:
                    lead = first_to_ahead_by_k(dict(enumerate(counts)), k)
                    if lead is not None:
                        tally["winner"] = lead
        elif op == "round":
            tally["in_flight"] += update["n"]
            tally["round"] = update["round"]
            tally["next_index"] = max(tally["next_index"], update["next_index"])
        elif op == "decided":
            tally["decided_by"] = update["decided_by"]
        else:
            raise ValueError(f"unknown tally update {update!r}")
        return tally

    join_votes.__qualname__ = join_votes.__name__ = f"k_ahead_reducer_k{k}"
    return join_votes


# --------------------------------------------------------------------------- routers


def dispatch_condition(state: Mapping[str, Any]) -> list[Send]:
    """Router after `dispatch`: the first round's `Send`s, one per sample."""
    return cast(list[Send], state.get(ROUTE) or [])


def red_flag_condition(state: Mapping[str, Any]) -> Literal["vote", "red_flag"] | Send:
    """The red-flag guard edge after `sample`.

    A red-flagged sample (or a provider failure worth one more try) goes straight
    back to `sample` as a `Send` with a fresh sample index, while the step's budget
    allows; every other sample goes on to the tally as a vote (`"vote"`). The
    decision is made in the `sample` node, which knows the budget; this router
    only follows it, so the guard is a visible, named edge in the drawn graph.
    """
    route = state.get(ROUTE)
    if isinstance(route, Send):
        return route
    return "vote"


def tally_condition(
    state: Mapping[str, Any],
) -> Literal["decided", "no_consensus"] | list[Send]:
    """Router after `tally`: end, fan out the next round, escalate, or wait (no route)."""
    route = state.get(ROUTE)
    if route in ("decided", "no_consensus"):
        return cast(Literal["decided", "no_consensus"], route)
    return cast(list[Send], route or [])


# --------------------------------------------------------------------------- the nodes


@dataclass(frozen=True)
class NodeNames:
    """Names of the voting nodes (prefixed when grafted into a user's graph)."""

    dispatch: str = "dispatch"
    sample: str = "sample"
    tally: str = "tally"
    escalate: str = "escalate"


class VoteNodes:
    """The bodies of the voting nodes, shared by `create_voting_graph` and `add_maker_step`.

    Holds configuration only (the compiled `Voter`); every per-step value lives in
    the graph state, so one instance serves any number of concurrent threads.
    """

    def __init__(
        self,
        voter: Voter,
        *,
        names: NodeNames,
        votes_key: str,
        output_key: str | None,
        stats_key: str | None,
        read_input: Callable[[Mapping[str, Any]], Any],
        on_no_consensus: NoConsensusAction,
        escalate: EscalationHandler | None,
        write_output: Callable[[Any], dict[str, Any]] | None = None,
        make_input: Callable[[Any], Any] | None = None,
        label: str | None = None,
    ) -> None:
        self.voter = voter
        self.k = voter.policy.k
        self.budget = voter.policy.budget
        self.names = names
        self.votes_key = votes_key
        self.output_key = output_key
        self.stats_key = stats_key
        self.read_input = read_input
        self.on_no_consensus = on_no_consensus
        self.escalate = escalate
        self.write_output = write_output
        # `read_input` may return plain data (it is checkpointed in every Send and in
        # the tally); `make_input` turns it into what the sampler gets.
        self.make_input = make_input
        self.label = label or names.dispatch

    # ---------------------------------------------------------------- dispatch

    def dispatch(self, state: Mapping[str, Any]) -> dict[str, Any]:
        step_input = self.read_input(state)
        n = min(self.k, self.budget)
        tally = new_tally(step_input)
        tally.update(in_flight=n, round=1, next_index=n)
        sends = self._sends(step_input, base=0, n=n, limit=self.budget, rnd=1)
        emit(round_event(self.label, 1, n, [], 0))
        return {self.votes_key: Overwrite(tally), ROUTE: sends}

    def _sends(self, step_input: Any, *, base: int, n: int, limit: int, rnd: int) -> list[Send]:
        # Slot j of a round draws indices base+j, base+j+n, base+j+2n, ... below
        # `limit`: no two samples share an index, and a round can never draw more
        # than the budget left when it started, however its red flags fall.
        return [
            Send(
                self.names.sample,
                {"input": step_input, "index": base + j, "stride": n, "limit": limit,
                 "round": rnd, "retry": False},
            )
            for j in range(n)
        ]

    # ---------------------------------------------------------------- sample

    async def asample(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        voter = self.voter
        index = payload["index"]
        failures: dict[str, int] = {}
        step_input = payload["input"]
        if self.make_input is not None:
            step_input = self.make_input(step_input)
        try:
            raw = await draw(voter.sampler, step_input, index,
                             retry=voter.policy.retry, failures=failures)
        except Exception as exc:  # noqa: BLE001 - returned as data; see _failed
            return self._failed(payload, exc, failures)
        sample = await voter.check(raw, index, payload["round"])
        return self._checked(payload, sample, failures)

    def sample(self, payload: Mapping[str, Any]) -> dict[str, Any]:
        return run_sync(self.asample(payload))

    def _checked(
        self, payload: Mapping[str, Any], sample: Sample, failures: dict[str, int]
    ) -> dict[str, Any]:
        raw = sample.raw
        update: dict[str, Any] = {
            "op": "sample",
            "drawn": 1,
            "tokens_in": raw.input_tokens or 0,
            "tokens_out": raw.output_tokens or 0,
            "failures": failures,
            "next_index": sample.index + 1,
        }
        emit(sample_event(self.label, sample))
        route: Send | None = None
        if sample.red_flag is None:
            update["key"] = sample.key
            update["value"] = sample.value
        else:
            update["flag"] = sample.red_flag
            nxt = sample.index + payload["stride"]
            if nxt < payload["limit"]:
                route = Send(self.names.sample, {**payload, "index": nxt, "retry": False})
                update["continues"] = 1
                update["next_index"] = nxt + 1
            emit(red_flag_event(self.label, sample, resampled=route is not None))
        return {self.votes_key: update, ROUTE: route}

    def _failed(
        self, payload: Mapping[str, Any], exc: Exception, failures: dict[str, int]
    ) -> dict[str, Any]:
        # Every retry of this sample failed. Raising now would cancel the sibling
        # branches mid-call, so the failure goes back through the guard edge for
        # one more try of the same index, in a superstep of its own; only if that
        # fails too does the branch raise. By then the siblings have finished and
        # their votes are saved, so a resume from a checkpointer redraws only this
        # sample.
        if payload.get("retry"):
            if isinstance(exc, SamplerError):
                raise exc
            raise SamplerError(
                f"sample {payload['index']} failed: {exc!r}", failures, exc
            ) from exc
        emit(provider_failure_event(self.label, payload["index"], exc, failures))
        update = {
            "op": "sample",
            "drawn": 0,
            "failures": failures,
            "continues": 1,
            "next_index": payload["index"] + 1,
        }
        route = Send(self.names.sample, {**payload, "retry": True})
        return {self.votes_key: update, ROUTE: route}

    # ---------------------------------------------------------------- tally

    def tally(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t = state.get(self.votes_key) or new_tally()
        if t["in_flight"] > 0:
            return {ROUTE: []}  # a resample is still out; it comes back here
        if t["decided_by"] is not None:
            return {ROUTE: "decided"}
        if t["winner"] is not None:
            return self._decide(t, t["winner"], "vote")
        counts = dict(enumerate(t["counts"]))
        need = samples_needed(counts, self.k)
        left = self.budget - t["drawn"]
        if left > 0:
            n = min(need, left)
            rnd = t["round"] + 1
            base = t["next_index"]
            emit(round_event(self.label, rnd, n, self._tally_pairs(t), t["drawn"]))
            return {
                self.votes_key: {"op": "round", "n": n, "round": rnd, "next_index": base + n},
                ROUTE: self._sends(t["input"], base=base, n=n, limit=base + left, rnd=rnd),
            }
        if self.on_no_consensus == "plurality" and t["counts"]:
            best = max(range(len(t["counts"])), key=t["counts"].__getitem__)
            return self._decide(t, best, "plurality")
        if self.on_no_consensus == "escalate":
            return {ROUTE: "no_consensus"}
        raise NoConsensusError(
            dict(zip(t["keys"], t["counts"], strict=True)),
            t["drawn"],
            self.budget,
            red_flags=t["flags"],
            k=self.k,
        )

    def _tally_pairs(self, t: Mapping[str, Any]) -> list[tuple[Any, int]]:
        return list(zip(t["keys"], t["counts"], strict=True))

    def result(self, t: Mapping[str, Any], winner: Any, winner_key: Any, how: str) -> StepResult:
        """The tally as the engine's `StepResult` (for stats, events and handlers)."""
        return StepResult(
            winner=winner,
            winner_key=winner_key,
            tally=dict(zip(t["keys"], t["counts"], strict=True)),
            decided_by=how,  # type: ignore[arg-type]
            k=self.k,
            samples_drawn=t["drawn"],
            valid_votes=t["valid"],
            red_flags=dict(t["flags"]),
            rounds=t["round"],
            input_tokens=t["tokens_in"],
            output_tokens=t["tokens_out"],
            provider_failures=dict(t["failures"]),
            wall_seconds=max(0.0, time.time() - t["started"]),
        )

    def _decide(self, t: Mapping[str, Any], index: int, how: str) -> dict[str, Any]:
        winner = t["values"][index]
        return self._finish(self.result(t, winner, t["keys"][index], how), how)

    def _finish(self, result: StepResult, how: str) -> dict[str, Any]:
        emit(decided_event(self.label, result))
        out: dict[str, Any] = {self.votes_key: {"op": "decided", "decided_by": how},
                               ROUTE: "decided"}
        if self.write_output is not None:
            out.update(self.write_output(result.winner))
        elif self.output_key is not None:
            out[self.output_key] = result.winner
        if self.stats_key is not None:
            out[self.stats_key] = result.to_dict()
        return out

    # ---------------------------------------------------------------- escalate

    def _undecided(self, state: Mapping[str, Any]) -> tuple[Mapping[str, Any], StepResult]:
        t = state.get(self.votes_key) or new_tally()
        return t, self.result(t, None, None, "escalation")

    def _escalated(self, result: StepResult, answer: Any) -> dict[str, Any]:
        result.winner = answer
        try:
            result.winner_key = self.voter.key(answer)
        except Exception:  # noqa: BLE001 - an unkeyable human answer is still the answer
            result.winner_key = None
        return self._finish(result, "escalation")

    def escalate_node(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t, result = self._undecided(state)
        if self.escalate is None:
            answer = interrupt(escalation_request(self.label, t["input"], result, self.budget))
        else:
            answer = self.escalate(result)
            if hasattr(answer, "__await__"):
                answer = run_sync(answer)
        return self._escalated(result, answer)

    async def aescalate_node(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t, result = self._undecided(state)
        if self.escalate is None:
            answer = interrupt(escalation_request(self.label, t["input"], result, self.budget))
        else:
            answer = self.escalate(result)
            if hasattr(answer, "__await__"):
                answer = await answer
        return self._escalated(result, answer)

    # ---------------------------------------------------------------- wiring

    def attach(
        self,
        builder: StateGraph[Any, Any, Any, Any],
        *,
        then: str = END,
        votes_schema: type[Any] | None = None,
    ) -> None:
        """Add the voting nodes and their edges to `builder` (entry: `names.dispatch`)."""
        names = self.names

        async def atally(state: Mapping[str, Any]) -> dict[str, Any]:
            return self.tally(state)

        async def adispatch(state: Mapping[str, Any]) -> dict[str, Any]:
            return self.dispatch(state)

        schema_kw: dict[str, Any] = {}
        if votes_schema is not None:
            schema_kw["input_schema"] = votes_schema
        builder.add_node(names.dispatch, DualNode(names.dispatch, self.dispatch, adispatch))
        builder.add_node(names.sample, DualNode(names.sample, self.sample, self.asample),
                         **schema_kw)
        builder.add_node(names.tally, DualNode(names.tally, self.tally, atally), **schema_kw)
        builder.add_conditional_edges(names.dispatch, router(dispatch_condition),
                                      [names.sample])
        builder.add_conditional_edges(
            names.sample, router(red_flag_condition),
            {"vote": names.tally, "red_flag": names.sample},
        )
        ends: dict[Hashable, str] = {"next_round": names.sample, "decided": then}
        if self.on_no_consensus == "escalate":
            ends["no_consensus"] = names.escalate
            builder.add_node(
                names.escalate,
                DualNode(names.escalate, self.escalate_node, self.aescalate_node),
                **schema_kw,
            )
            builder.add_edge(names.escalate, then)
        builder.add_conditional_edges(names.tally, router(tally_condition), ends)


# --------------------------------------------------------------------------- factory


def _typed_dict(name: str, fields: dict[str, Any]) -> type[Any]:
    # Key names are the caller's choice, so the schema is built at run time.
    return cast(type[Any], cast(Any, TypedDict)(name, fields, total=False))


def create_voting_graph(
    step: Any,
    *,
    k: int = 3,
    parser: Parser | None = None,
    key: KeyFunction | None = None,
    red_flags: Sequence[RedFlag] = (),
    max_samples: int | None = None,
    on_no_consensus: NoConsensusAction = "raise",
    escalate: EscalationHandler | None = None,
    prompt: Any = None,
    models: Sequence[Any] = (),
    temperature: Temperature = None,
    max_tokens: int | None = None,
    structured: Any = None,
    retry: RetryPolicy | None = None,
    input_key: str = "step_input",
    output_key: str = "answer",
    stats_key: str | None = STATS_KEY,
    votes_key: str = VOTES_KEY,
) -> StateGraph[Any, Any, Any, Any]:
    """Build one voted step as an uncompiled LangGraph `StateGraph`.

    The graph reads the step input from `input_key`, draws samples in parallel
    `Send` branches, resamples red-flagged ones through the `red_flag_condition`
    guard edge, joins votes with a k-ahead reducer and writes the winner to
    `output_key` (and the step's statistics to `stats_key`). Compile it yourself,
    with or without a checkpointer; add it to a parent graph as a node (keys with
    equal names are shared), once per step: each run starts from a fresh tally.

    Args:
        step: a chat model (or a list of them, rotated per sample), any `Runnable`,
            a sync or async function of the step input, or a `Sampler`.
        k: the margin: an answer wins once it has k more votes than any other.
        parser: raw output (an `AIMessage` for chat models) -> answer; raising
            red-flags the sample. Default: the message text, or the output as is.
        key: answer -> vote key (default: `canonical_key`).
        red_flags: checks that discard samples (see `maker_graph.red_flags`).
        max_samples: samples the step may draw, red-flagged ones included
            (default 10 * k + 20).
        on_no_consensus: budget spent: `"raise"` (`NoConsensusError` with the tally),
            `"plurality"`, or `"escalate"` (an `escalate` node).
        escalate: the escalation handler (`StepResult` -> answer, sync or async; e.g.
            a stronger model). Without one, escalation calls `interrupt()` with the
            tally and candidates; resume with `Command(resume=answer)`.
        prompt: for chat models: builds the model input from the step input.
        models: more chat models to rotate with `step` (decorrelates errors).
        temperature: a `TemperatureSchedule`, a function of the sample index, or
            one temperature (default: 0 for the first sample, 0.1 after).
        max_tokens: caps each chat sample's output tokens.
        structured: a schema for `with_structured_output`.
        retry: how provider failures are retried inside a sample branch.
        input_key: state key of the step input.
        output_key: state key the winner is written to.
        stats_key: state key for the step's statistics (None: not written).
        votes_key: state key of the tally.

    Returns:
        The uncompiled `StateGraph`; its input schema is `{input_key}` and its
        output schema `{output_key, stats_key}`.

    Raises:
        ConfigurationError: options that cannot work (k < 1, max_samples < k, an
            unknown on_no_consensus, chat options on a non-chat step, clashing keys).

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> graph = create_voting_graph(lambda q: q.upper(), k=2, input_key="q",
        ...                             output_key="a").compile(checkpointer=InMemorySaver())
        >>> graph.invoke({"q": "yes"}, {"configurable": {"thread_id": "1"}})["a"]
        'YES'
    """
    action = check_no_consensus(on_no_consensus, escalate)
    keys = [input_key, output_key, votes_key] + ([stats_key] if stats_key else [])
    if len(set(keys)) != len(keys):
        raise ConfigurationError(
            f"input_key, output_key, votes_key and stats_key must differ, got {keys}"
        )
    sampler = build_sampler(step, prompt=prompt, models=models, temperature=temperature,
                            max_tokens=max_tokens, structured=structured)
    voter = build_voter(sampler, k=k, parser=parser, key=key, red_flags=red_flags,
                        max_samples=max_samples, on_no_consensus="raise", escalate=None,
                        retry=retry)
    return voting_builder(voter, on_no_consensus=action, escalate=escalate,
                          input_key=input_key, output_key=output_key, stats_key=stats_key,
                          votes_key=votes_key)


def voting_builder(
    voter: Voter,
    *,
    on_no_consensus: NoConsensusAction,
    escalate: EscalationHandler | None,
    input_key: str = "step_input",
    output_key: str = "answer",
    stats_key: str | None = STATS_KEY,
    votes_key: str = VOTES_KEY,
    label: str = "voting_graph",
) -> StateGraph[Any, Any, Any, Any]:
    """The voting sub-graph around an already built `Voter` (see `create_voting_graph`)."""
    reducer = k_ahead_reducer(voter.policy.k)
    fields: dict[str, Any] = {
        input_key: Any,
        output_key: Any,
        votes_key: Annotated[dict[str, Any], reducer],
    }
    if stats_key:
        fields[stats_key] = dict[str, Any]
    state = _typed_dict("VotingState", fields)
    input_schema = _typed_dict("VotingInput", {input_key: Any})
    output_schema = _typed_dict(
        "VotingOutput", {output_key: Any, **({stats_key: dict[str, Any]} if stats_key else {})}
    )
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        state, input_schema=input_schema, output_schema=output_schema
    )

    def read_input(values: Mapping[str, Any]) -> Any:
        if input_key not in values:
            raise ConfigurationError(
                f"the voting graph needs the step input under {input_key!r}; "
                f"the state has {sorted(values)}"
            )
        return values[input_key]

    nodes = VoteNodes(
        voter,
        names=NodeNames(),
        votes_key=votes_key,
        output_key=output_key,
        stats_key=stats_key,
        read_input=read_input,
        on_no_consensus=on_no_consensus,
        escalate=escalate,
        label=label,
    )
    builder.add_edge(START, "dispatch")
    nodes.attach(builder)
    return builder
