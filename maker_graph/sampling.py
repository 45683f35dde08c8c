"""Samplers: where one raw answer for one step comes from.

A `Sampler` is "given the step's input and the sample index, produce one raw
answer" (`RawSample`). Adapters cover a LangChain chat model (with a prompt
builder, a temperature schedule and optional model rotation), any `Runnable`,
and a plain sync or async function. Provider failures are retried here with
backoff (`draw`) and never reach the vote as answers.

Example:
    >>> from maker_graph.sampling import as_sampler
    >>> sampler = as_sampler(lambda question: "42")
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Hashable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ._chat_replies import (
    DEFAULT_SAMPLES_PER_REQUEST,
    accepts_n,
    message_text,
    raw_from_any,
    raw_from_message,
    split_usage,
    to_messages,
)
from ._provider_retry import (
    MAX_RETRY_AFTER as MAX_RETRY_AFTER,  # re-exported: defined here before the split
)
from ._provider_retry import (
    ProviderRetry,
    classify_failure,
    retry_after,
    with_retries,
)
from ._util import is_async_callable
from ._variation import REHEAT_TEMPERATURES, VARIATION, use_variation, variation_levels
from ._worker_threads import SAMPLER_THREADS
from .errors import ConfigurationError
from .records import RawSample

__all__ = [
    "ChatModelSampler",
    "ForwardsBatching",
    "FunctionSampler",
    "PromptBuilder",
    "ProviderRetry",
    "RunnableSampler",
    "Sampler",
    "TemperatureSchedule",
    "as_sampler",
    "classify_failure",
    "DEFAULT_SAMPLES_PER_REQUEST",
    "REHEAT_TEMPERATURES",
    "draw",
    "draw_many",
    "is_chat_model",
    "message_text",
    "raw_from_message",
    "retry_after",
    "use_variation",
    "variation_levels",
]


@runtime_checkable
class Sampler(Protocol):
    """Produces one raw answer for a step input; `index` is the sample's index in its step.

    Implementations must be safe to call concurrently and should be deterministic
    in `(step_input, index)` where they can (the simulated models are).
    """

    async def sample(self, step_input: Any, index: int) -> RawSample: ...


class ForwardsBatching:
    """Mixin for a sampler that wraps another one (its `inner`): offers the inner
    sampler's several-samples-per-request hooks as its own, so that wrapping never
    turns batching (`n`, see `ChatModelSampler.sample_many`) off.

    The wrapper still defines its own `sample_many` (what it does around the batch).
    """

    __slots__ = ()
    inner: Any

    @property
    def batch_limit(self) -> int:
        limit = getattr(self.inner, "batch_limit", 1)
        return limit if isinstance(limit, int) else 1

    def batch_key(self, index: int) -> Hashable | None:
        key = getattr(self.inner, "batch_key", None)
        return None if key is None else key(index)  # type: ignore[no-any-return]


@dataclass(frozen=True, kw_only=True)
class TemperatureSchedule:
    """Temperature per sample index: greedy first, then a little diversity.

    The first sample of a step is the model's best guess; later samples need some
    randomness or they repeat the first one's mistakes exactly.
    """

    first: float | None = 0.0
    """Temperature of sample 0 (None: leave the model's own setting)."""
    rest: float | None = 0.1
    """Temperature of every later sample (None: leave the model's own setting)."""

    def __call__(self, index: int) -> float | None:
        return self.first if index == 0 else self.rest


def __getattr__(name: str) -> Any:
    # The old name, kept for code written against it; it read as LangGraph's node retry.
    if name == "RetryPolicy":
        import warnings

        warnings.warn(
            "maker_graph RetryPolicy is now ProviderRetry (LangGraph's RetryPolicy retries "
            "whole nodes; this one retries a sample's provider calls)",
            DeprecationWarning,
            stacklevel=2,
        )
        return ProviderRetry
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


async def draw(
    sampler: Sampler,
    step_input: Any,
    index: int,
    *,
    retry: ProviderRetry,
    failures: MutableMapping[str, int],
    semaphore: asyncio.Semaphore | None = None,
) -> RawSample:
    """Draw one sample, retrying provider failures; each failure is counted in `failures`.

    Raises:
        SamplerError: every attempt failed.
    """
    raw: RawSample = await with_retries(
        lambda: sampler.sample(step_input, index),
        f"sample {index}",
        retry=retry,
        failures=failures,
        semaphore=semaphore,
    )
    return raw


async def draw_many(
    sampler: Any,
    step_input: Any,
    indices: Sequence[int],
    *,
    retry: ProviderRetry,
    failures: MutableMapping[str, int],
    semaphore: asyncio.Semaphore | None = None,
) -> list[RawSample]:
    """Draw the samples `indices` in one provider request (`sampler.sample_many`), with retries.

    The request is one call: it holds one concurrency slot, one timeout and one
    retry budget. It may return fewer samples than asked (a server that ignores `n`);
    the caller draws the rest the ordinary way.

    Raises:
        SamplerError: every attempt failed.
    """
    label = f"samples {indices[0]}..{indices[-1]}"
    raws: list[RawSample] = await with_retries(
        lambda: sampler.sample_many(step_input, list(indices)),
        label,
        retry=retry,
        failures=failures,
        semaphore=semaphore,
    )
    return raws[: len(indices)]


# --------------------------------------------------------------------------- adapters


def _accepts_index(fn: Callable[..., Any]) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 2 or any(p.kind == p.VAR_POSITIONAL for p in params)


class FunctionSampler:
    """Adapts `fn(step_input)` or `fn(step_input, index)`, sync or async.

    A sync function runs in a worker thread so it never blocks the event loop
    (pass `in_thread=False` for cheap pure functions). A cancelled call (a provider
    timeout, a discarded speculative step, Ctrl-C) is abandoned, not waited for: its
    thread is a daemon that neither the end of the run's loop nor the interpreter's
    exit joins (see `_worker_threads`); what it returns later is dropped.
    """

    def __init__(self, fn: Callable[..., Any], *, in_thread: bool = True) -> None:
        self.fn = fn
        self.with_index = _accepts_index(fn)
        self.is_async = is_async_callable(fn)
        self.in_thread = in_thread

    async def sample(self, step_input: Any, index: int) -> RawSample:
        args = (step_input, index) if self.with_index else (step_input,)
        if self.is_async:
            value = await self.fn(*args)
        elif self.in_thread:
            value = await SAMPLER_THREADS.call(self.fn, *args)
        else:
            value = self.fn(*args)
        if inspect.isawaitable(value):
            value = await value
        return raw_from_any(value)


class RunnableSampler:
    """Adapts any LangChain `Runnable`: `ainvoke(step_input)` per sample."""

    def __init__(self, runnable: Any, *, config: Mapping[str, Any] | None = None) -> None:
        self.runnable = runnable
        self.config = dict(config or {})

    async def sample(self, step_input: Any, index: int) -> RawSample:
        config = _sample_config(self.config, index)
        return raw_from_any(await self.runnable.ainvoke(step_input, config=config))


PromptBuilder = Callable[[Any], Any]
"""Builds a chat model's input (messages, a string, or a PromptValue) from the step input.

A builder with a parameter named `index` is also given the sample's index in its step
(`builder(step_input, index=i)`), so it can word sample i differently."""


def _takes_index(builder: Any) -> bool:
    """True when `builder` (not a Runnable) declares a parameter named `index`."""
    if hasattr(builder, "ainvoke"):
        return False
    try:
        param = inspect.signature(builder).parameters.get("index")
    except (TypeError, ValueError):
        return False
    return param is not None and param.kind in (param.POSITIONAL_OR_KEYWORD, param.KEYWORD_ONLY)


def _prompt_list(prompt: Any) -> list[Any]:
    """The prompt builders of a sampler: one, or a list of paraphrases (sample i: i mod n)."""
    if isinstance(prompt, str):
        # A template string would reach the model call as "not callable" on every sample,
        # retried until the step gave up; its placeholders cannot be checked here.
        raise ConfigurationError(
            f"prompt= is a str ({prompt[:40]!r}); pass a function of the step input, e.g. "
            "prompt=lambda state: template.format(**state), or a ChatPromptTemplate "
            "(ChatPromptTemplate.from_template(template))"
        )
    if not isinstance(prompt, (list, tuple)):
        if prompt is not None and not (callable(prompt) or hasattr(prompt, "ainvoke")):
            raise ConfigurationError(
                f"prompt= is a {type(prompt).__name__}; pass a function of the step input "
                "or a ChatPromptTemplate (any Runnable)"
            )
        return [prompt]
    if not prompt:
        raise ConfigurationError("prompt=[...] (paraphrases) needs at least one prompt")
    for i, builder in enumerate(prompt):
        if builder is None or not (callable(builder) or hasattr(builder, "ainvoke")):
            raise ConfigurationError(
                f"prompt=[...]: entry {i} is a {type(builder).__name__}; each paraphrase is a "
                "function of the step input or a ChatPromptTemplate (any Runnable)"
            )
    return list(prompt)


class ChatModelSampler:
    """Samples a LangChain chat model (or a rotation of several) with a temperature schedule.

    Args:
        models: one `BaseChatModel` or several; sample `i` uses `models[i % len(models)]`,
            so different models answer the same step and their errors decorrelate.
        prompt: builds the model input from the step input: a function, a
            `ChatPromptTemplate` (any Runnable, invoked with the step input), or None to
            pass the step input through unchanged. A function with a parameter named
            `index` also receives the sample index. A list of them is prompt rotation
            (paraphrases): sample `i` uses `prompt[i % len(prompt)]`, so a model stuck on
            one wording of a step is asked another; a stuck step's redraw (see
            `use_variation`) moves on to the next wording as it does to the next model.
            Samples of different wordings never share one `n` request.
        temperature: the schedule per sample index (default: 0 first, then 0.1).
        max_tokens: caps each answer's output tokens, so a runaway sample costs little.
        structured: a schema for `with_structured_output`; the sample's output is then
            the parsed object (and its text its JSON).
        samples_per_request: most samples drawn in one provider request, where the model
            accepts OpenAI's `n` (`ChatOpenAI` and its subclasses, not streaming, not
            structured): the samples of a round that share a temperature and a model
            are one request, so the prompt is billed once. None: up to
            `DEFAULT_SAMPLES_PER_REQUEST`; 1: one request per sample.

    Example:
        >>> from maker_graph.testing import SimulatedChatModel
        >>> sampler = ChatModelSampler(SimulatedChatModel(oracle=lambda msgs: "yes"))
    """

    def __init__(
        self,
        models: Any | Sequence[Any],
        prompt: PromptBuilder | Callable[..., Any] | Sequence[Any] | Any | None = None,
        *,
        temperature: TemperatureSchedule | Callable[[int], float | None] | None = None,
        max_tokens: int | None = None,
        structured: Any = None,
        samples_per_request: int | None = None,
    ) -> None:
        self.models = list(models) if isinstance(models, (list, tuple)) else [models]
        if not self.models:
            raise ConfigurationError("ChatModelSampler needs at least one model")
        if samples_per_request is not None and (
            not isinstance(samples_per_request, int) or samples_per_request < 1
        ):
            raise ConfigurationError(
                f"samples_per_request must be an integer >= 1, got {samples_per_request!r}"
            )
        wanted = samples_per_request or DEFAULT_SAMPLES_PER_REQUEST
        # Per model slot: (the model that takes `n`, the kwargs bound around it), or None.
        self._n_models = [
            None if structured is not None or wanted == 1 else accepts_n(m) for m in self.models
        ]
        self.batch_limit = wanted if any(m is not None for m in self._n_models) else 1
        """Most samples one request may carry (1: this sampler never batches)."""
        self.prompt = prompt
        self._prompts = _prompt_list(prompt)
        # Per prompt slot: whether the builder wants the sample index (then no two
        # samples are known to share an input, and none are batched).
        self._prompt_indexed = [_takes_index(p) for p in self._prompts]
        self.temperature = temperature if temperature is not None else TemperatureSchedule()
        self.max_tokens = max_tokens
        self.structured = structured
        # Bound runnables per (model, temperature), built once: binding per call is costly.
        self._bound: dict[tuple[int, float | None], Any] = {}

    variation_levels = len(REHEAT_TEMPERATURES)
    """Levels of variation a stuck step may ask for (see `use_variation`)."""

    def _slot_temperature(self, index: int) -> tuple[int, float | None]:
        """The model slot and temperature of sample `index` at the current variation."""
        level = VARIATION.get()
        temp = self.temperature(index)
        if level <= 0:
            return index % len(self.models), temp
        # Varied: hotter than the schedule, and the next model of a rotation.
        floor = REHEAT_TEMPERATURES[min(level, len(REHEAT_TEMPERATURES)) - 1]
        return (index + level) % len(self.models), max(temp or 0.0, floor)

    def _prompt_slot(self, index: int) -> int:
        """Which prompt (paraphrase) sample `index` uses at the current variation."""
        level = max(VARIATION.get(), 0)
        return (index + level) % len(self._prompts)

    def _runnable(self, index: int) -> tuple[Any, float | None]:
        slot, temp = self._slot_temperature(index)
        cache_key = (slot, temp)
        bound = self._bound.get(cache_key)
        if bound is None:
            model = self.models[slot]
            kwargs: dict[str, Any] = {}
            if temp is not None:
                kwargs["temperature"] = temp
            if self.max_tokens is not None:
                kwargs["max_tokens"] = self.max_tokens
            bound = model.bind(**kwargs) if kwargs else model  # type: ignore[union-attr]
            if self.structured is not None:
                bound = _structured(model, self.structured, kwargs)
            self._bound[cache_key] = bound
        return bound, temp

    async def _input(self, step_input: Any, index: int) -> Any:
        slot = self._prompt_slot(index)
        builder = self._prompts[slot]
        if builder is None:
            return step_input
        if hasattr(builder, "ainvoke"):
            return await builder.ainvoke(step_input)
        value = (
            builder(step_input, index=index) if self._prompt_indexed[slot] else builder(step_input)
        )
        return await value if inspect.isawaitable(value) else value

    async def sample(self, step_input: Any, index: int) -> RawSample:
        runnable, temp = self._runnable(index)
        model_input = await self._input(step_input, index)
        out = await runnable.ainvoke(model_input, config=_sample_config({}, index))
        if self.structured is not None:
            raw = (
                raw_from_message(out["raw"], temp)
                if out.get("raw") is not None
                else RawSample(None)
            )
            parsed = out.get("parsed")
            if out.get("parsing_error") is not None or parsed is None:
                raw.output = _StructuredFailure(out.get("parsing_error"), raw.text)
            else:
                raw.output = parsed
            return raw
        return raw_from_message(out, temp)

    # ------------------------------------------------------------------ n per request

    def batch_key(self, index: int) -> Hashable | None:
        """Samples with equal keys may share one request (same model, temperature and
        prompt); None when sample `index` cannot be batched."""
        if self.batch_limit == 1:
            return None
        slot, temp = self._slot_temperature(index)
        if self._n_models[slot] is None:
            return None
        prompt_slot = self._prompt_slot(index)
        if self._prompt_indexed[prompt_slot]:
            return None  # its input depends on the index: one request per sample
        return (slot, temp, prompt_slot)

    async def sample_many(self, step_input: Any, indices: Sequence[int]) -> list[RawSample]:
        """Samples `indices` (one `batch_key`) from one request with `n=len(indices)`.

        Returns as many samples as the server sent choices (never more than asked,
        maybe fewer). The request's usage is split so that the samples add up to
        what was billed: its prompt tokens go to the first sample (the others were
        billed no prompt), its completion tokens are shared in proportion to each
        choice's own token count (exact when the server counts as tiktoken does).
        """
        first = indices[0]
        slot, temp = self._slot_temperature(first)
        accepted = self._n_models[slot]
        if accepted is None or len(indices) == 1 or self._prompt_indexed[self._prompt_slot(first)]:
            return [await self.sample(step_input, i) for i in indices]
        model, bound_kwargs = accepted
        kwargs: dict[str, Any] = dict(bound_kwargs)
        if temp is not None:
            kwargs["temperature"] = temp
        if self.max_tokens is not None:
            kwargs["max_tokens"] = self.max_tokens
        messages = to_messages(await self._input(step_input, first))
        from langchain_core.runnables.config import ensure_config

        config = ensure_config(_sample_config({}, first))  # type: ignore[arg-type]  # inherits the caller's callbacks
        config["metadata"]["maker_sample_indices"] = list(indices)
        result = await model.agenerate(
            [messages],
            callbacks=config.get("callbacks"),
            tags=config.get("tags"),
            metadata=config.get("metadata"),
            n=len(indices),
            stream=False,  # n > 1 is refused by streaming, and usage comes whole
            **kwargs,
        )
        generations = result.generations[0][: len(indices)]
        llm_output = result.llm_output or {}
        return split_usage([g.message for g in generations], temp, llm_output.get("model_name"))


@dataclass(frozen=True)
class _StructuredFailure:
    """A structured-output answer that did not validate; the default parser flags it."""

    error: Any
    text: str = field(default="")


def _structured(model: Any, schema: Any, kwargs: Mapping[str, Any]) -> Any:
    target = model.bind(**kwargs) if kwargs else model
    try:
        return target.with_structured_output(schema, include_raw=True)
    except (AttributeError, NotImplementedError):
        return model.with_structured_output(schema, include_raw=True)


def _sample_config(base: Mapping[str, Any], index: int) -> dict[str, Any]:
    # The sample index travels in run metadata: simulated models key their
    # randomness on it, and traces show which sample of a step a call was.
    config = dict(base)
    config["metadata"] = {**dict(base.get("metadata", {})), "maker_sample_index": index}
    return config


def as_sampler(step: Any, **chat_options: Any) -> Sampler:
    """Turn a chat model, Runnable, function or Sampler into a `Sampler`.

    `chat_options` go to `ChatModelSampler` when `step` is a chat model.
    """
    if isinstance(step, Sampler) and not is_chat_model(step):
        return step
    if is_chat_model(step) or (
        isinstance(step, (list, tuple)) and step and all(is_chat_model(m) for m in step)
    ):
        return ChatModelSampler(step, **chat_options)
    if chat_options:
        raise ConfigurationError(
            f"options {sorted(chat_options)} only apply to chat models, not {type(step).__name__}"
        )
    if hasattr(step, "ainvoke"):
        return RunnableSampler(step)
    if callable(step):
        return FunctionSampler(step)
    raise ConfigurationError(
        f"cannot sample from {type(step).__name__}: pass a chat model, a Runnable, "
        "a function of the step input, or a Sampler"
    )


def is_chat_model(obj: Any) -> bool:
    """True for a chat model in any form: a `BaseChatModel`, one bound by `bind_tools`,
    `bind` or `with_config`, or an `init_chat_model` model; every surface asks this."""
    try:
        from langchain_core.language_models import BaseChatModel
        from langchain_core.runnables import RunnableBinding
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        return False
    # `bind_tools(...)`, `bind(...)` and `with_config(...)` wrap the model in bindings.
    while isinstance(obj, RunnableBinding):
        obj = obj.bound
    # `init_chat_model` without a fixed model returns a configurable wrapper.
    return isinstance(obj, BaseChatModel) or type(obj).__name__ == "_ConfigurableModel"
