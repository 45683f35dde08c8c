"""The bodies of the voting nodes (private): dispatch, sample, tally, escalate, and their wiring.

Shared by `create_voting_graph`, `add_maker_step`, `maker_node(durable=True)`
and the one-step decomposition graph; see `maker_graph.graph.voting_graph` for
the shape and the rules.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Hashable, Mapping
from dataclasses import dataclass
from typing import Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables.config import ensure_config
from langgraph.graph import END, StateGraph
from langgraph.types import Command, Overwrite, Send

from .._sync import run_sync
from ..errors import ConfigurationError, NoConsensusError, SamplerError
from ..records import Sample, StepResult
from ..sampling import draw
from ..vote import EscalationHandler, NoConsensusAction, Voter
from ..voting import samples_needed
from ._escalation import human_answer
from ._node import ROUTE, DualNode, emit
from ._options import SampleRuns, as_message, observed, parent_node
from .events import (
    decided_event,
    escalation_request,
    provider_failure_event,
    red_flag_event,
    round_event,
    sample_event,
)
from .routers import dispatch_condition, red_flag_condition, tally_condition
from .tally import new_tally

__all__ = ["NodeNames", "VoteNodes"]


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
        to_message: bool = False,
        message_key: str | None = None,
        label_from_parent: bool = False,
    ) -> None:
        self.voter = voter
        self.k = voter.policy.k
        self.budget = voter.policy.budget
        # `max_concurrency` caps a round: its slots are the only samples in flight (a
        # red-flagged slot's resample follows it), so the cap holds however LangGraph
        # schedules the branches; the next round recounts what is still needed.
        self.round_cap = min(self.budget, voter.policy.max_concurrency or self.budget)
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
        self._label = label or names.dispatch
        # A voting sub-graph names its step after the parent node it runs as (its own
        # nodes are only `dispatch`, `sample`, ...); `label` when it runs on its own.
        self._label_from_parent = label_from_parent
        # The output key is a messages list: the winner joins it as its own message.
        self.to_message = to_message
        # Where the winning sample's own message goes beside the parsed answer (for a
        # caller that decides at run time whether it needs the message: maker_node).
        self.message_key = message_key
        self._keep_messages = to_message or message_key is not None

    @property
    def label(self) -> str:
        """The step's name in events and sample runs."""
        return parent_node(self._label) if self._label_from_parent else self._label

    # ---------------------------------------------------------------- dispatch

    def dispatch(self, state: Mapping[str, Any]) -> dict[str, Any]:
        step_input = self.read_input(state)
        n = min(self.k, self.round_cap)
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
                {
                    "input": step_input,
                    "index": base + j,
                    "stride": n,
                    "limit": limit,
                    "round": rnd,
                    "retry": False,
                },
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
        # Each draw is a child run `{step}.sample[i]` kept off the `messages` stream
        # (the node that writes the winner streams it, once), when a handler sees runs.
        sampler: Any = voter.sampler
        config = ensure_config()
        if observed(config):
            sampler = SampleRuns(sampler, self.label, round=payload["round"])
        try:
            raw = await draw(
                sampler, step_input, index, retry=voter.policy.retry, failures=failures
            )
        except ConfigurationError:
            # A setup mistake (a refused key, a 401) fails the same way every time:
            # it must not be sent again through the guard edge.
            raise
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
            if self._keep_messages and isinstance(raw.output, BaseMessage):
                update["message"] = raw.output
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
        # sample. A configuration error (a refused key, a wrong model name) is not
        # retried: another try cannot fix it, and the user should hear of it at once.
        if isinstance(exc, ConfigurationError):
            raise exc
        if payload.get("retry"):
            if isinstance(exc, SamplerError):
                raise exc
            raise SamplerError(f"sample {payload['index']} failed: {exc!r}", failures, exc) from exc
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
            n = min(need, left, self.round_cap)
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
            provider_failures=t["failures"],
            input_tokens=t["tokens_in"],
            output_tokens=t["tokens_out"],
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
        messages = t.get("messages") or []
        message = messages[index] if index < len(messages) else None
        return self._finish(self.result(t, winner, t["keys"][index], how), how, message)

    def _finish(self, result: StepResult, how: str, message: Any = None) -> dict[str, Any]:
        emit(decided_event(self.label, result))
        out: dict[str, Any] = {
            self.votes_key: {"op": "decided", "decided_by": how},
            ROUTE: "decided",
        }
        if self.write_output is not None:
            out.update(self.write_output(result.winner))
        elif self.output_key is not None and self.to_message:
            out[self.output_key] = as_message(result.winner, message)
        elif self.output_key is not None:
            out[self.output_key] = result.winner
        if self.message_key is not None:
            out[self.message_key] = message if isinstance(message, BaseMessage) else None
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
        except Exception:  # noqa: BLE001 - an unkeyable handler answer is still the answer
            result.winner_key = None
        return self._finish(result, "escalation")

    async def _ask(self, t: Mapping[str, Any], result: StepResult) -> dict[str, Any]:
        # A resume value is parsed and keyed like a sample (red flags judge model replies).
        request = escalation_request(self.label, t["input"], result, self.budget)
        result.winner, result.winner_key = await human_answer(
            request, self.voter, result.tally, self.label
        )
        return self._finish(result, "escalation")

    def escalate_node(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t, result = self._undecided(state)
        if self.escalate is None:
            return run_sync(self._ask(t, result))
        answer = self.escalate(result)
        if hasattr(answer, "__await__"):
            answer = run_sync(answer)
        return self._escalated(result, answer)

    async def aescalate_node(self, state: Mapping[str, Any]) -> dict[str, Any]:
        t, result = self._undecided(state)
        if self.escalate is None:
            return await self._ask(t, result)
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
        """Add the voting nodes to `builder` (entry: `names.dispatch`).

        Each node routes itself with a `Command` whose destinations are declared,
        so the step works in any state schema: a hidden route key in the update
        would only reach a conditional edge through a dict state.
        """
        names = self.names
        to_dispatch = _commanding(dispatch_condition, {})
        to_sample = _commanding(red_flag_condition, {"vote": names.tally, "red_flag": names.sample})
        ends: dict[Hashable, str] = {"next_round": names.sample, "decided": then}
        if self.on_no_consensus == "escalate":
            ends["no_consensus"] = names.escalate
        to_tally = _commanding(tally_condition, ends)

        def dispatch(state: Any) -> Command[Any]:
            return to_dispatch(self.dispatch(state))

        async def adispatch(state: Any) -> Command[Any]:
            return to_dispatch(self.dispatch(state))

        def sample(payload: Mapping[str, Any]) -> Command[Any]:
            return to_sample(self.sample(payload))

        async def asample(payload: Mapping[str, Any]) -> Command[Any]:
            return to_sample(await self.asample(payload))

        def tally(state: Mapping[str, Any]) -> Command[Any]:
            return to_tally(self.tally(state))

        async def atally(state: Mapping[str, Any]) -> Command[Any]:
            return to_tally(self.tally(state))

        schema_kw: dict[str, Any] = {}
        if votes_schema is not None:
            schema_kw["input_schema"] = votes_schema
        builder.add_node(
            names.dispatch,
            DualNode(names.dispatch, dispatch, adispatch),
            destinations=(names.sample,),
        )
        builder.add_node(
            names.sample,
            DualNode(names.sample, sample, asample),
            destinations={names.sample: "red_flag", names.tally: "vote"},
            **schema_kw,
        )
        builder.add_node(
            names.tally,
            DualNode(names.tally, tally, atally),
            destinations={node: str(label) for label, node in ends.items()},
            **schema_kw,
        )
        if self.on_no_consensus == "escalate":
            builder.add_node(
                names.escalate,
                DualNode(names.escalate, self.escalate_node, self.aescalate_node),
                **schema_kw,
            )
            builder.add_edge(names.escalate, then)


def _commanding(
    condition: Callable[[Any], Any], ends: Mapping[Hashable, str]
) -> Callable[[Mapping[str, Any]], Command[Any]]:
    """Turn a node's output (its update plus its `ROUTE` decision) into a `Command`.

    The named router still makes the routing decision from the node's output;
    `ends` maps its labels to node names.
    """

    def goto(route: Any) -> Any:
        return ends.get(route, route) if isinstance(route, str) else route

    def to_command(out: Mapping[str, Any]) -> Command[Any]:
        route = condition(out)
        update = {k: v for k, v in out.items() if k != ROUTE}
        targets = [goto(r) for r in route] if isinstance(route, list) else goto(route)
        return Command(update=update, goto=targets)

    return to_command
