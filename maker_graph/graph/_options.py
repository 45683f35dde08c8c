"""Turning the graph surfaces' keyword options into a `Voter` (private).

`create_voting_graph`, `maker_node`, `add_maker_step` and the decomposition
graph all take the same step description: a chat model (with a prompt, a
temperature schedule, a rotation of further models, a token cap or a
structured-output schema), any `Runnable`, a function, or a `Sampler`.

`StepOptions` is that description's keyword options, one name and one default
each, shared by every surface; `VotedStep` checks them once and builds the
sampler and the voter. (A vote's checkpointed data and its escalation to a human
are in `_escalation`.)

It also holds what every surface does around one sample: `sample_config` (the
child run a sample is, tagged so the `messages` stream skips it) and
`SampleRuns` (a sampler whose every draw is such a run).
"""

from __future__ import annotations

import dataclasses
import json
import warnings
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypedDict, TypeVar, get_type_hints

from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig, RunnableLambda
from langchain_core.runnables.config import ensure_config, merge_configs
from langgraph.config import get_config
from langgraph.constants import TAG_NOSTREAM

from ..errors import ConfigurationError
from ..records import RawSample, Sample
from ..red_flags import RedFlag
from ..sampling import (
    ForwardsBatching,
    ProviderRetry,
    Sampler,
    TemperatureSchedule,
    as_sampler,
    is_chat_model,
)
from ..vote import EscalationHandler, NoConsensusAction, Parser, VotePolicy, Voter
from ..voting import KeyFunction

__all__ = [
    "SAMPLE_TAGS",
    "SampleRuns",
    "StepOptions",
    "Temperature",
    "VotedStep",
    "deprecated_alias",
    "parent_node",
    "as_message",
    "build_sampler",
    "build_voter",
    "chat_input_check",
    "check_input_keys",
    "check_no_consensus",
    "checked_input",
    "default_chat_input",
    "is_chat_model",
    "is_chat_model_step",
    "is_messages_key",
    "pick",
    "observed",
    "read_key",
    "sample_config",
    "state_keys",
]

T = TypeVar("T")

Temperature = TemperatureSchedule | Callable[[int], float | None] | float | None
"""A temperature schedule, a function of the sample index, or one temperature for all."""


def _schedule(temperature: Temperature) -> TemperatureSchedule | Callable[[int], float | None]:
    if temperature is None:
        return TemperatureSchedule()
    if isinstance(temperature, (int, float)):
        return TemperatureSchedule(first=float(temperature), rest=float(temperature))
    return temperature


def build_sampler(
    step: Any,
    *,
    prompt: Any = None,
    models: Sequence[Any] = (),
    temperature: Temperature = None,
    max_tokens: int | None = None,
    structured: Any = None,
    default_prompt: Callable[[Any], Any] | None = None,
) -> Sampler:
    """The sampler for a step description; chat options only apply to chat models."""
    chat = is_chat_model_step(step)
    if models and not chat:
        raise ConfigurationError(
            f"models=... rotates chat models, but the step is a {type(step).__name__}; "
            "pass a chat model as the step, or drop models="
        )
    if not chat:
        given = {
            name: value
            for name, value in (
                ("prompt", prompt),
                ("temperature", temperature),
                ("max_tokens", max_tokens),
                ("structured", structured),
            )
            if value is not None
        }
        if given:
            raise ConfigurationError(
                f"options {sorted(given)} only apply when the step is a chat model, "
                f"not a {type(step).__name__}"
            )
        return as_sampler(step)
    rotation = list(step) if isinstance(step, (list, tuple)) else [step]
    for extra in models:
        if not is_chat_model(extra):
            raise ConfigurationError(
                f"models=... must be chat models; got a {type(extra).__name__}"
            )
        rotation.append(extra)
    return as_sampler(
        rotation if len(rotation) > 1 else rotation[0],
        prompt=prompt if prompt is not None else default_prompt,
        temperature=_schedule(temperature),
        max_tokens=max_tokens,
        structured=structured,
    )


def check_no_consensus(on_no_consensus: str, escalate: Any = None) -> NoConsensusAction:
    """Validate `on_no_consensus` (and that an escalation handler is not silently unused)."""
    if on_no_consensus not in ("raise", "plurality", "escalate"):
        raise ConfigurationError(
            f"on_no_consensus must be 'raise', 'plurality' or 'escalate', got {on_no_consensus!r}"
        )
    if escalate is not None and on_no_consensus != "escalate":
        raise ConfigurationError(
            f"escalate=... is only called with on_no_consensus='escalate', "
            f"not {on_no_consensus!r}; set on_no_consensus='escalate' or drop escalate="
        )
    return on_no_consensus  # type: ignore[return-value]


def build_voter(
    sampler: Sampler,
    *,
    k: int,
    parser: Parser | None,
    key: KeyFunction | None,
    red_flags: Sequence[RedFlag],
    max_samples: int | None,
    on_no_consensus: NoConsensusAction,
    escalate: EscalationHandler | None,
    max_concurrency: int | None = None,
    retry: ProviderRetry | None = None,
    keep_samples: bool = False,
) -> Voter:
    """A `Voter` with the surfaces' options; validates them at build time."""
    policy = VotePolicy(
        k=k,
        max_samples=max_samples,
        on_no_consensus=on_no_consensus,
        max_concurrency=max_concurrency,
        retry=retry if retry is not None else ProviderRetry(),
        keep_samples=keep_samples,
    )
    return Voter(
        sampler, parser=parser, key=key, red_flags=red_flags, policy=policy, escalate=escalate
    )


class StepOptions(TypedDict, total=False):
    """The options of a voted step, shared by `maker_node`, `add_maker_step`,
    `create_voting_graph` and `maker_task` (same names, meanings and defaults).

    Attributes:
        k: the margin: an answer wins once it has k more votes than any other (3).
        parser: raw output (an `AIMessage` for chat models, whatever a Runnable or
            function returns) -> answer; raise to red-flag the sample. Default: a
            message's text stripped, anything else as is.
        key: answer -> vote key; answers with equal keys are the same vote.
        red_flags: checks that discard samples before they vote.
        max_samples: samples the step may draw, red-flagged included (10 * k + 20).
        on_no_consensus: budget spent: `"raise"` (`NoConsensusError` with the tally),
            `"plurality"`, or `"escalate"`: the `escalate` handler answers, or without
            one the step calls `interrupt()` with the tally; resume with
            `Command(resume=answer)`, an answer the step's parser accepts (checked).
        escalate: escalation handler, `StepResult` -> answer (sync or async).
        temperature: chat models: a `TemperatureSchedule`, a function of the sample
            index, or one temperature (default 0 for the first sample, then 0.1).
        models: more chat models to rotate with the step, to decorrelate errors.
        prompt: chat models: builds the model input from the step input (a function
            or a `ChatPromptTemplate`); without it a chat model gets the input's
            `messages`, or its only value.
        max_tokens: chat models: caps each sample's output tokens.
        structured: chat models: a schema for `with_structured_output`; the parser
            then receives the parsed object.
        max_concurrency: provider calls in flight at once for one vote.
        retry: how provider failures are retried (never counted as votes).
    """

    k: int
    parser: Parser | None
    key: KeyFunction | None
    red_flags: Sequence[RedFlag]
    max_samples: int | None
    on_no_consensus: NoConsensusAction
    escalate: EscalationHandler | None
    temperature: Temperature
    models: Sequence[Any]
    prompt: Any
    max_tokens: int | None
    structured: Any
    max_concurrency: int | None
    retry: ProviderRetry | None


_DEFAULTS: dict[str, Any] = {
    "k": 3,
    "parser": None,
    "key": None,
    "red_flags": (),
    "max_samples": None,
    "on_no_consensus": "raise",
    "escalate": None,
    "temperature": None,
    "models": (),
    "prompt": None,
    "max_tokens": None,
    "structured": None,
    "max_concurrency": None,
    "retry": None,
}


class VotedStep:
    """A step description with its `StepOptions`, checked once, built into a sampler.

    `voter(decides=...)` makes the `Voter`: one that applies `on_no_consensus` itself
    (surfaces that vote in one engine call), or one that only raises, for the graph
    nodes whose tally applies it.
    """

    def __init__(self, surface: str, step: Any, options: Mapping[str, Any]) -> None:
        unknown = sorted(set(options) - set(_DEFAULTS))
        if unknown:
            raise TypeError(
                f"{surface}() got unexpected keyword argument(s) {unknown}; "
                f"its step options are {sorted(_DEFAULTS)}"
            )
        o = {**_DEFAULTS, **options}
        self.options = o
        self.action = check_no_consensus(o["on_no_consensus"], o["escalate"])
        self.escalate: EscalationHandler | None = o["escalate"]
        # Escalation without a handler is an `interrupt()` the surface makes itself.
        self.interrupts = self.action == "escalate" and self.escalate is None
        self.k: int = o["k"]
        self.sampler = build_sampler(
            step,
            prompt=o["prompt"],
            models=o["models"],
            temperature=o["temperature"],
            max_tokens=o["max_tokens"],
            structured=o["structured"],
            default_prompt=default_chat_input,
        )
        self.check_input = chat_input_check(step, o["prompt"])

    def voter(self, *, decides: bool, retry: ProviderRetry | None = None) -> Voter:
        o = self.options
        engine = decides and not self.interrupts
        return build_voter(
            self.sampler,
            k=o["k"],
            parser=o["parser"],
            key=o["key"],
            red_flags=o["red_flags"],
            max_samples=o["max_samples"],
            on_no_consensus=self.action if engine else "raise",
            escalate=self.escalate if engine else None,
            max_concurrency=o["max_concurrency"],
            retry=retry if retry is not None else o["retry"],
        )


def deprecated_alias(surface: str, old: str, old_value: Any, new: str, new_value: Any) -> Any:
    """The value of option `new`, given under its deprecated name `old` or its own."""
    if old_value is None:
        return new_value
    if new_value is not None:
        raise ConfigurationError(f"{surface}: pass {new}= only ({old}= is its deprecated name)")
    warnings.warn(
        f"{surface}({old}=...) is deprecated; use {new}=... (same meaning)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old_value


def parent_node(default: str) -> str:
    """The parent graph's node a sub-graph runs as, or `default` outside a parent.

    A node of a sub-graph sees its own name as `langgraph_node`; the parent's node is
    the last part of the checkpoint namespace (`classify:<task id>`).
    """
    try:
        namespace = (get_config().get("metadata") or {}).get("checkpoint_ns")
    except RuntimeError:
        return default
    if not namespace:
        return default
    return str(namespace).split("|")[-1].split(":")[0] or default


_MISSING: Any = object()


def state_keys(state: Any) -> list[str]:
    """The keys of a graph state of any schema LangGraph accepts.

    A TypedDict state arrives as a dict; a pydantic or dataclass state as an
    instance whose fields are attributes, which a Mapping check would miss.
    """
    if isinstance(state, Mapping):
        return sorted(str(k) for k in state)
    if dataclasses.is_dataclass(state):
        return [f.name for f in dataclasses.fields(state)]
    model_fields = getattr(type(state), "model_fields", None)
    if isinstance(model_fields, dict):
        return list(model_fields)
    return sorted(k for k in getattr(state, "__dict__", {}) if not k.startswith("_"))


def read_key(state: Any, key: str, default: Any = None) -> Any:
    """`state[key]` for a dict state, `state.key` for a pydantic or dataclass one."""
    if isinstance(state, Mapping):
        return state.get(key, default)
    return getattr(state, key, default)


def check_input_keys(surface: str, input_keys: Any) -> None:
    """`input_keys` is one key (a str), a non-empty list of keys, or None."""
    if input_keys is None or (isinstance(input_keys, str) and input_keys):
        return
    if isinstance(input_keys, str) or not input_keys:
        raise ConfigurationError(
            f"{surface}: input_keys must be a state key, a non-empty list of state keys "
            f"or None, got {input_keys!r}"
        )


def pick(state: Any, keys: str | Sequence[str] | None) -> Any:
    """The step input read from a parent state: one key's value, a dict of the named
    keys, or (None) the whole state as a dict."""
    if keys is None:
        return {k: read_key(state, k) for k in state_keys(state)}
    one = isinstance(keys, str)
    names: list[str] = [keys] if isinstance(keys, str) else list(keys)
    values = {k: read_key(state, k, _MISSING) for k in names}
    missing = [k for k, v in values.items() if v is _MISSING]
    if missing:
        raise ConfigurationError(
            f"input_keys {missing} are not in the graph state (it has {state_keys(state)}); "
            "fix input_keys or give those keys a value before this node runs"
        )
    return values[names[0]] if one else values


def as_message(winner: Any, output: Any) -> BaseMessage:
    """The winner as the message that joins a messages key.

    The winning sample's own `AIMessage` when there is one (tool calls, ids and
    metadata intact); otherwise the answer as an `AIMessage`, never the
    `HumanMessage` that `add_messages` would make of a bare string.
    """
    if isinstance(winner, BaseMessage):
        return winner
    if isinstance(output, AIMessage):
        return output
    if isinstance(winner, str):
        return AIMessage(content=winner)
    return AIMessage(content=json.dumps(winner, default=str, sort_keys=True))


def is_messages_key(schema: Any, key: str) -> bool:
    """Whether `key` of a state schema is a messages list (the `add_messages` reducer)."""
    if key == "messages":
        return True
    try:
        hint = get_type_hints(schema, include_extras=True).get(key)
    except Exception:  # noqa: BLE001 - a schema we cannot introspect is not a messages one
        return False
    from langgraph.graph.message import add_messages

    return any(meta is add_messages for meta in getattr(hint, "__metadata__", ()))


def default_chat_input(step_input: Any) -> Any:
    """Default model input when a chat model is the step and no prompt is given."""
    if isinstance(step_input, Mapping):
        if "messages" in step_input:
            return step_input["messages"]
        if len(step_input) == 1:
            return next(iter(step_input.values()))
        raise ConfigurationError(
            f"the step is a chat model and its input has several keys {sorted(step_input)}; "
            "pass prompt=... (a function or ChatPromptTemplate of that dict), or "
            "input_keys=[one key]"
        )
    return step_input


def is_chat_model_step(step: Any) -> bool:
    """True for a chat model or a list of them (the steps `prompt=` applies to)."""
    if isinstance(step, (list, tuple)):
        return bool(step) and all(is_chat_model(m) for m in step)
    return is_chat_model(step)


def chat_input_check(step: Any, prompt: Any) -> Callable[[Any], Any] | None:
    """The check a step input must pass before sampling, if any.

    A chat-model step without a prompt gets `default_chat_input`, which cannot
    work on every input; checking it up front makes such a setup mistake fail at
    once instead of being retried as if the provider had failed.
    """
    return default_chat_input if is_chat_model_step(step) and prompt is None else None


def checked_input(step_input: Any, check: Callable[[Any], Any] | None) -> Any:
    """`step_input`, after `check` (if given) has accepted it."""
    if check is not None:
        check(step_input)
    return step_input


# --------------------------------------------------------------------------- sample runs

SAMPLE_TAGS: tuple[str, ...] = (TAG_NOSTREAM, "langsmith:nostream", "maker:sample")
"""Tags of a sample's child run. `nostream` keeps it, and the chat-model runs under it
(which inherit it), off LangGraph's `messages` stream; only the winner, returned by
the node, is streamed."""


def observed(config: RunnableConfig) -> bool:
    """Whether any callback handler (a tracer, the `messages` stream) sees runs under `config`.

    Nobody sees a child run otherwise, and a surface skips it: it costs about 0.3 ms
    per sample, a fifth of a fast voted step. (LangSmith tracing switched on by the
    environment adds its tracer to the run's handlers, so it counts.)

    Example:
        >>> observed({}), observed({"callbacks": []})
        (False, False)
    """
    callbacks = config.get("callbacks")
    if callbacks is None:
        return False
    if isinstance(callbacks, list):
        return bool(callbacks)
    return bool(
        getattr(callbacks, "handlers", None) or getattr(callbacks, "inheritable_handlers", None)
    )


def sample_config(
    parent: RunnableConfig | None,
    *,
    step: str,
    index: int,
    round: int | None = None,
    indices: Sequence[int] | None = None,
) -> RunnableConfig:
    """The config of sample `index`'s child run: `{step}.sample[{index}]`, tagged `SAMPLE_TAGS`.

    Metadata: `maker_step`, `maker_sample_index`, `maker_round` (when known) and, for
    one request that draws several samples, `maker_sample_indices`; child runs
    inherit it, so a model sees its sample index. `parent` supplies everything else
    (callbacks, configurable: the graph's runtime, store and stream writer).

    Example:
        >>> sample_config({}, step="classify", index=2, round=1)["run_name"]
        'classify.sample[2]'
    """
    metadata: dict[str, Any] = {"maker_sample_index": index, "maker_step": step}
    name = f"{step}.sample[{index}]"
    if round is not None:
        metadata["maker_round"] = round
    if indices is not None and len(indices) > 1:
        metadata["maker_sample_indices"] = list(indices)
        name = f"{step}.sample[{indices[0]}..{indices[-1]}]"
    return merge_configs(
        parent, {"run_name": name, "tags": list(SAMPLE_TAGS), "metadata": metadata}
    )


async def _in_run(call: Callable[[], Awaitable[T]], step_input: Any, config: RunnableConfig) -> T:
    async def body(_: Any) -> T:
        return await call()

    # The lambda's run sets the child config as the current one, so whatever the
    # sampler calls (a chat model, a Runnable, a function in a worker thread) runs
    # under it: a child of the sample run, with the graph's runtime and store.
    out: T = await RunnableLambda(body).ainvoke(step_input, config)
    return out


class SampleRuns(ForwardsBatching):
    """A sampler whose every draw is its own child run of the current run (`sample_config`).

    Build one per vote: `round` is the round the next draw belongs to. A surface
    that knows it (a voting sub-graph's sample branch) passes it; `maker_node` calls
    `saw(sample)` for each checked sample, and since the engine checks a whole round
    before drawing the next, the next draw is one round later. Samples drawn ahead
    in one request of `n` carry the round of that request.
    """

    __slots__ = ("inner", "round", "step")

    def __init__(self, inner: Any, step: str, *, round: int = 1) -> None:
        self.inner = inner
        self.step = step
        self.round = round

    def saw(self, sample: Sample) -> None:
        """Record a checked sample: later draws belong to the round after it."""
        self.round = max(self.round, sample.round + 1)

    async def sample(self, step_input: Any, index: int) -> RawSample:
        config = sample_config(ensure_config(), step=self.step, index=index, round=self.round)
        raw: RawSample = await _in_run(
            lambda: self.inner.sample(step_input, index), step_input, config
        )
        return raw

    async def sample_many(self, step_input: Any, indices: Sequence[int]) -> list[RawSample]:
        config = sample_config(
            ensure_config(), step=self.step, index=indices[0], round=self.round, indices=indices
        )
        raws: list[RawSample] = await _in_run(
            lambda: self.inner.sample_many(step_input, list(indices)), step_input, config
        )
        return raws
