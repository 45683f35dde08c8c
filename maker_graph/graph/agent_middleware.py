"""`MakerMiddleware`: vote the model call of a LangChain `create_agent` agent.

An agent's fragile step is the model call that picks a tool and its arguments.
This middleware wraps that call (`wrap_model_call` / `awrap_model_call`): it
calls the handler once per sample, in parallel rounds, lets the engine's
`Voter` decide first-to-ahead-by-k on the sample's action (`tool_call_key`),
and returns only the winning `ModelResponse`. Losing samples never reach the
state or the tools; every sample runs as a child run tagged `nostream`, so the
`messages` stream shows the turn once (the winner, emitted with the node's
output), not once per sample.

The vote streams the documented `maker.*` events (see `events`) on the `custom`
stream, labelled with the agent's model node (`"model"` in `create_agent`).

Example:
    >>> mw = MakerMiddleware(k=3)
    >>> mw.name
    'MakerMiddleware'
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Hashable, Sequence
from dataclasses import replace
from typing import Any

from langchain.agents.middleware import AgentMiddleware, ModelRequest, ModelResponse
from langchain.agents.structured_output import (
    AutoStrategy,
    StructuredOutputError,
    ToolStrategy,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableLambda
from langchain_core.runnables.config import ensure_config

from .._sync import run_sync
from .._worker_threads import SAMPLER_THREADS
from ..actions import tool_call_key, tool_call_problem
from ..errors import ConfigurationError, SamplerError
from ..records import RawSample, Sample, StepResult
from ..red_flags import RedFlag, Verdict
from ..sampling import ProviderRetry, TemperatureSchedule, is_chat_model, raw_from_message
from ..vote import VotePolicy, Voter
from ..voting import canonical_key
from ._options import sample_config
from .events import VoteEvents

__all__ = ["MakerMiddleware"]

_ALIASES = {"best": "plurality", "plurality": "plurality", "raise": "raise", "escalate": "escalate"}
_DECISIONS = ["approve", "edit", "reject", "respond"]
_PAPER = TemperatureSchedule()  # 0 for the first sample, 0.1 after
FINAL_ANSWER = "final_answer"
"""Action name under which an escalation shows a text answer (no tool calls)."""


class _Invalid:
    """A sample whose handler raised a structured-output error: parsed as a red flag."""

    __slots__ = ("error",)

    def __init__(self, error: BaseException) -> None:
        self.error = error


def _message(response: ModelResponse) -> AIMessage | None:
    """The model's own message in a response (the AIMessage; tool results may follow)."""
    for msg in response.result:
        if isinstance(msg, AIMessage):
            return msg
    return None


def _node_name(config: Any, default: str) -> str:
    """The graph node running the model call (`create_agent` names it `"model"`)."""
    return str((config.get("metadata") or {}).get("langgraph_node", default))


def _structured_names(response_format: Any) -> tuple[str, ...]:
    """Names of the tools `create_agent` adds for a tool-strategy `response_format`."""
    if response_format is None:
        return ()
    try:
        if isinstance(response_format, AutoStrategy):
            response_format = ToolStrategy(response_format.schema)
        if isinstance(response_format, ToolStrategy):
            return tuple(spec.name for spec in response_format.schema_specs)
    except Exception:  # noqa: BLE001 - an unusual schema only loses the exemption
        return ()
    return ()


class MakerMiddleware(AgentMiddleware):  # type: ignore[type-arg]
    """Decide each model call of an agent by first-to-ahead-by-k voting.

    Args:
        k: margin: an action wins once it has k more votes than any other.
        max_samples: samples one model call may draw, red-flagged ones included
            (None: 10 * k + 20).
        on_no_consensus: when the budget is spent: `"raise"` (`NoConsensusError`),
            `"best"` (the plurality answer; `"plurality"` is the same), or
            `"escalate"`: pause the graph with `interrupt` in the shape of
            LangChain's `HumanInTheLoopMiddleware` (the leading action as
            `action_requests`, the tally under `"maker"`), resumed with
            `{"decisions": [...]}`. Needs a checkpointer.
        red_flags: extra checks; each gets a `Sample` whose `value` is the sample's
            `ModelResponse` and whose `raw` carries the message's text, tokens and
            finish reason (so `max_output_tokens`, `truncated`, `matches` work).
        key: the vote key of a sample's subject, the AIMessage (or the structured
            response when the agent has `response_format` and the sample produced one).
            Default: `tool_call_key` (canonical key for structured responses).
        models: a rotation of chat models: sample i uses `models[i % len(models)]`
            in place of the agent's model (None: the agent's model for every sample).
        temperature: temperature per sample index, set through the request's model
            settings (default: 0 for the first sample, 0.1 after, as in the paper;
            None leaves the model's own setting, for models that reject it).
        max_concurrency: model calls in flight at once per model turn (None: a whole
            round at once).
        retry: retries of provider failures (never votes).
        check_tools: red-flag calls of unknown tools, arguments failing the tool's
            schema and calls the provider could not parse (default on).
        name: the middleware's name (also the prefix of the sample runs' names).
    """

    def __init__(
        self,
        k: int = 3,
        *,
        max_samples: int | None = None,
        on_no_consensus: str = "raise",
        red_flags: Sequence[RedFlag] = (),
        key: Callable[[Any], Hashable] | None = None,
        models: Sequence[Any] | None = None,
        temperature: TemperatureSchedule | Callable[[int], float | None] | None = _PAPER,
        max_concurrency: int | None = None,
        retry: ProviderRetry | None = None,
        check_tools: bool = True,
        name: str | None = None,
    ) -> None:
        super().__init__()
        action = _ALIASES.get(on_no_consensus)
        if action is None:
            raise ConfigurationError(
                "on_no_consensus must be 'raise', 'best' (or 'plurality') or 'escalate', "
                f"got {on_no_consensus!r}"
            )
        self.policy = VotePolicy(
            k=k,
            max_samples=max_samples,
            on_no_consensus=action,  # type: ignore[arg-type]
            max_concurrency=max_concurrency,
            retry=retry or ProviderRetry(),
        )
        self.models = list(models) if models else None
        for m in self.models or []:
            if not is_chat_model(m):
                raise ConfigurationError(f"models= takes chat models, got {type(m).__name__}")
        self.red_flags = tuple(red_flags)
        self.key = key
        self.temperature = temperature
        self.check_tools = check_tools
        self._name = name or type(self).__name__

    @property
    def name(self) -> str:
        return self._name

    # ------------------------------------------------------------------ one sample

    def _request(self, request: ModelRequest, index: int) -> tuple[ModelRequest, float | None]:
        overrides: dict[str, Any] = {}
        if self.models:
            overrides["model"] = self.models[index % len(self.models)]
        temp = self.temperature(index) if self.temperature is not None else None
        if temp is not None:
            overrides["model_settings"] = {**request.model_settings, "temperature": temp}
        return (request.override(**overrides) if overrides else request), temp

    def _config(self, parent: Any, index: int) -> Any:
        # Each sample is its own child run, tagged so LangGraph's `messages` stream skips
        # it: only the winner is streamed, once, when the model node returns it.
        return sample_config(parent, step=self._name, index=index)

    @staticmethod
    def _raw(response: Any, temp: float | None) -> RawSample:
        if isinstance(response, AIMessage):
            response = ModelResponse(result=[response])
        message = _message(response)
        raw = raw_from_message(message, temp) if message is not None else RawSample(None)
        raw.output = response
        return raw

    # ------------------------------------------------------------------ voting

    def _voter(self, request: ModelRequest, sampler: Any) -> Voter:
        structured = request.response_format is not None
        user_key = self.key

        def subject(response: ModelResponse) -> Any:
            if structured and response.structured_response is not None:
                return response.structured_response
            return _message(response)

        def key(response: ModelResponse) -> Hashable:
            value = subject(response)
            if user_key is not None:
                return user_key(value)
            if isinstance(value, BaseMessage):
                return tool_call_key(value)
            return "structured:" + str(canonical_key(value))

        def parse(output: Any) -> ModelResponse:
            if isinstance(output, _Invalid):
                raise ValueError(f"structured output did not validate: {output.error}")
            if not isinstance(output, ModelResponse) or _message(output) is None:
                raise ValueError(f"the model call returned no AIMessage: {output!r}")
            return output

        tools = list(request.tools or [])
        extra = _structured_names(request.response_format)

        def tool_check(sample: Sample) -> Verdict | None:
            response: ModelResponse = sample.value
            message = _message(response)
            if structured and response.structured_response is None and len(response.result) > 1:
                # create_agent answered an invalid structured call with an error ToolMessage.
                return Verdict.flag("invalid_structured_response", str(response.result[-1].content))
            problem = tool_call_problem(message, tools, also_allowed=extra)
            return Verdict.flag(*problem) if problem else None

        flags: list[RedFlag] = [tool_check] if self.check_tools else []
        flags.extend(self.red_flags)
        return Voter(
            sampler,
            parser=parse,
            key=key,
            red_flags=flags,
            policy=self.policy,
            escalate=self._escalate if self.policy.on_no_consensus == "escalate" else None,
        )

    def _finish(self, result: StepResult, events: VoteEvents) -> ModelResponse:
        winner = result.winner
        if isinstance(winner, AIMessage):
            winner = ModelResponse(result=[winner])
        message = _message(winner)
        # The event shows what was voted on (the structured response, else the model's
        # message), in JSON; a ModelResponse itself would only show as its repr.
        structured = getattr(winner, "structured_response", None)
        events.decided(replace(result, winner=structured if structured is not None else message))
        if message is not None:
            message.response_metadata = {**message.response_metadata, "maker": summary(result)}
        return winner  # type: ignore[no-any-return]

    # ------------------------------------------------------------------ hooks

    def wrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], ModelResponse],
    ) -> ModelResponse:
        parent = ensure_config()
        mw = self
        events = self._events(parent)

        class _SyncSamples:
            async def sample(self, step_input: Any, index: int) -> RawSample:
                sample_request, temp = mw._request(request, index)
                run = RunnableLambda(handler, name=f"{mw._name}.sample")
                try:
                    # A worker thread per sample, in a copy of the context (the graph's
                    # config, runtime and callbacks reach the handler). Not the loop's
                    # default executor: its cpu_count + 4 threads capped a round's
                    # parallel samples (6 on 2 cores), and a hung call held a thread.
                    out = await SAMPLER_THREADS.call(
                        run.invoke, sample_request, mw._config(parent, index)
                    )
                except StructuredOutputError as exc:
                    return RawSample(_Invalid(exc), str(exc))
                except Exception:
                    events.attempt_failed(index)
                    raise
                return mw._raw(out, temp)

        voter = self._voter(request, _SyncSamples())
        return self._finish(run_sync(self._vote(voter, request, events)), events)

    async def awrap_model_call(
        self,
        request: ModelRequest,
        handler: Callable[[ModelRequest], Awaitable[ModelResponse]],
    ) -> ModelResponse:
        parent = ensure_config()
        mw = self
        events = self._events(parent)

        async def call(req: ModelRequest) -> Any:
            return await handler(req)

        class _AsyncSamples:
            async def sample(self, step_input: Any, index: int) -> RawSample:
                sample_request, temp = mw._request(request, index)
                run = RunnableLambda(call, name=f"{mw._name}.sample")
                try:
                    out = await run.ainvoke(sample_request, mw._config(parent, index))
                except StructuredOutputError as exc:
                    return RawSample(_Invalid(exc), str(exc))
                except Exception:
                    events.attempt_failed(index)
                    raise
                return mw._raw(out, temp)

        voter = self._voter(request, _AsyncSamples())
        return self._finish(await self._vote(voter, request, events), events)

    def _events(self, parent: Any) -> VoteEvents:
        policy = self.policy
        return VoteEvents(
            _node_name(parent, self._name), policy.k, policy.budget, policy.retry.max_attempts
        )

    async def _vote(self, voter: Voter, request: ModelRequest, events: VoteEvents) -> StepResult:
        try:
            return await voter.vote(request, step=self._name, on_sample=events.on_sample)
        except SamplerError as exc:
            events.provider_failed(exc)
            raise

    # ------------------------------------------------------------------ escalation

    def _escalate(self, result: StepResult) -> ModelResponse:
        from langgraph.types import interrupt

        leader = _leader(result)
        request = escalation_request(result, leader)
        answer = interrupt(request)
        while True:
            try:
                return apply_decisions(answer, leader)
            except ConfigurationError as exc:
                # Raising would leave the thread replaying this answer on every resume:
                # ask again, saying why (as the other surfaces do for a refused answer).
                maker = {**request["maker"], "refused": str(answer), "question": str(exc)}
                answer = interrupt({**request, "maker": maker})


# --------------------------------------------------------------------------- helpers


def summary(result: StepResult) -> dict[str, Any]:
    """The tally a voted turn carries in `response_metadata["maker"]` (JSON-friendly)."""
    return {
        "k": result.k,
        "decided_by": result.decided_by,
        "winner_key": None if result.winner_key is None else str(result.winner_key),
        "tally": {str(key): n for key, n in result.tally.items()},
        "samples_drawn": result.samples_drawn,
        "valid_votes": result.valid_votes,
        "red_flags": dict(result.red_flags),
        "rounds": result.rounds,
        "input_tokens": result.input_tokens,
        "output_tokens": result.output_tokens,
    }


def _leader(result: StepResult) -> ModelResponse | None:
    if not result.tally:
        return None
    best = max(result.tally, key=result.tally.__getitem__)
    for sample in result.samples:
        if sample.red_flag is None and sample.key == best:
            return sample.value  # type: ignore[no-any-return]
    return None


def _actions(message: AIMessage | None) -> list[dict[str, Any]]:
    if message is None:
        return []
    if message.tool_calls:
        return [{"name": c["name"], "args": dict(c["args"])} for c in message.tool_calls]
    return [{"name": FINAL_ANSWER, "args": {"content": message.text}}]


def escalation_request(result: StepResult, leader: ModelResponse | None) -> dict[str, Any]:
    """The interrupt value of an undecided turn: a `HITLRequest` plus the tally.

    `action_requests` are the leading answer's tool calls (a text answer shows as one
    `final_answer` action); `"maker"` holds the tally and every candidate.
    """
    candidates = []
    seen: set[Hashable] = set()
    for sample in result.samples:
        if sample.red_flag is not None or sample.key in seen:
            continue
        seen.add(sample.key)
        candidates.append(
            {"votes": result.tally.get(sample.key, 0), "actions": _actions(_message(sample.value))}
        )
    candidates.sort(key=lambda c: -int(c["votes"]))  # type: ignore[call-overload]
    actions = _actions(_message(leader)) if leader is not None else []
    requests = [
        {
            **a,
            "description": (
                f"No action led by {result.k} votes after {result.samples_drawn} samples; "
                "this one has the most."
            ),
        }
        for a in actions
    ]
    return {
        "action_requests": requests,
        "review_configs": [
            {"action_name": a["name"], "allowed_decisions": list(_DECISIONS)} for a in actions
        ],
        "maker": {**summary(result), "candidates": candidates},
    }


def apply_decisions(answer: Any, leader: ModelResponse | None) -> ModelResponse:
    """The turn a reviewer's `{"decisions": [...]}` makes of the leading answer.

    `approve` keeps an action, `edit` replaces it with `edited_action`, `reject` drops
    it; `respond` (or rejecting everything) ends the turn with the reviewer's text.
    """
    decisions = answer.get("decisions") if isinstance(answer, dict) else None
    if not isinstance(decisions, list) or not decisions:
        raise ConfigurationError(
            f"resume an escalated vote with {{'decisions': [...]}}, got {answer!r}"
        )
    message = _message(leader) if leader is not None else None
    if decisions[0].get("type") == "respond" or message is None:
        text = decisions[0].get("message") or "No answer reached agreement."
        return ModelResponse(result=[AIMessage(content=text)])
    if not message.tool_calls:
        decision = decisions[0]
        if decision.get("type") == "edit":
            text = decision["edited_action"]["args"].get("content", "")
            return ModelResponse(result=[AIMessage(content=text)])
        if decision.get("type") == "reject":
            return ModelResponse(result=[AIMessage(content=decision.get("message", ""))])
        return leader  # type: ignore[return-value]
    if len(decisions) != len(message.tool_calls):
        raise ConfigurationError(
            f"{len(message.tool_calls)} action(s) to review but {len(decisions)} decision(s)"
        )
    calls, reasons = [], []
    for call, decision in zip(message.tool_calls, decisions, strict=True):
        kind = decision.get("type")
        if kind == "approve":
            calls.append(call)
        elif kind == "edit":
            edited = decision["edited_action"]
            calls.append({**call, "name": edited["name"], "args": dict(edited["args"])})
        elif kind == "reject":
            reasons.append(decision.get("message") or f"{call['name']} rejected by a reviewer")
        else:
            raise ConfigurationError(f"unknown decision {kind!r}; use one of {_DECISIONS}")
    if not calls:
        return ModelResponse(result=[AIMessage(content="; ".join(reasons))])
    all_approved = len(calls) == len(message.tool_calls) and not any(
        d.get("type") == "edit" for d in decisions
    )
    if all_approved:
        return leader  # type: ignore[return-value]
    edited_msg = message.model_copy(update={"tool_calls": calls})
    return ModelResponse(result=[edited_msg])
