"""Real chat models from a `PROVIDER:MODEL` string, with rate and concurrency limits.

`resolve_chat_model("openai:gpt-4.1-mini", ProviderOptions(...))` builds the
model through LangChain's `init_chat_model` (the `langchain` package, extra
`maker-graph[providers]`; each provider's own package, such as
`langchain-openai`, is a further extra). Credentials come only from the
provider's usual environment variable (`OPENAI_API_KEY`, `ANTHROPIC_API_KEY`,
...) or from a variable the user names with `api_key_env`; they are never
accepted as literal values, so they cannot end up in shell history, specs or
run logs.

The strings `simulated` and `simulated-chat` name the built-in simulated models.
They are parsed here (`parse_model_spec`) but built by the task that knows the
right answers (see `maker_graph.tasks`); `simulated:0.01` sets the error rate and
`simulated:error_rate=0.01,ramble_rate=0.002` any `ErrorModel` field.

Python users can skip all of this and pass any `BaseChatModel` instance.

Example:
    >>> spec = parse_model_spec("openai:gpt-4.1-mini")
    >>> spec.provider, spec.model
    ('openai', 'gpt-4.1-mini')
    >>> parse_model_spec("simulated:0.02").error_overrides
    {'error_rate': 0.02}
"""

from __future__ import annotations

import asyncio
import dataclasses
import importlib.util
import ipaddress
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from .errors import ConfigurationError
from .records import RawSample
from .sampling import ForwardsBatching, Sampler

__all__ = [
    "API_KEY_ENV",
    "SIMULATED_MODELS",
    "ConcurrencyLimitedSampler",
    "ModelSpec",
    "ProviderOptions",
    "limit_concurrency",
    "make_rate_limiter",
    "parse_model_spec",
    "resolve_chat_model",
    "simulated_error_model",
]

SIMULATED_MODELS = ("simulated", "simulated-chat")
"""Model names that select the built-in simulated models instead of a provider."""

API_KEY_ENV: dict[str, str] = {
    "openai": "OPENAI_API_KEY",
    "azure_openai": "AZURE_OPENAI_API_KEY",
    "anthropic": "ANTHROPIC_API_KEY",
    "google_genai": "GOOGLE_API_KEY",
    "groq": "GROQ_API_KEY",
    "mistralai": "MISTRAL_API_KEY",
    "together": "TOGETHER_API_KEY",
    "fireworks": "FIREWORKS_API_KEY",
    "deepseek": "DEEPSEEK_API_KEY",
    "xai": "XAI_API_KEY",
    "openrouter": "OPENROUTER_API_KEY",
    "cohere": "COHERE_API_KEY",
    "perplexity": "PPLX_API_KEY",
}
"""The environment variable each provider's client reads its key from."""

# Provider -> the pip package that holds its chat model class. Only the common ones:
# the install hint for any other provider comes from LangChain's own error message.
_PROVIDER_PACKAGES: dict[str, str] = {
    "openai": "langchain-openai",
    "azure_openai": "langchain-openai",
    "anthropic": "langchain-anthropic",
    "google_genai": "langchain-google-genai",
    "google_vertexai": "langchain-google-vertexai",
    "groq": "langchain-groq",
    "mistralai": "langchain-mistralai",
    "together": "langchain-together",
    "fireworks": "langchain-fireworks",
    "deepseek": "langchain-deepseek",
    "xai": "langchain-xai",
    "ollama": "langchain-ollama",
    "openrouter": "langchain-openrouter",
    "cohere": "langchain-cohere",
    "bedrock": "langchain-aws",
    "bedrock_converse": "langchain-aws",
    "huggingface": "langchain-huggingface",
}

# Providers whose client speaks the OpenAI wire protocol and knows `stream_usage`.
_OPENAI_COMPATIBLE = frozenset({"openai", "azure_openai", "deepseek", "xai", "openrouter"})


@dataclass(frozen=True, kw_only=True)
class ProviderOptions:
    """How to build and pace a provider's chat model.

    Example:
        >>> ProviderOptions(base_url="http://127.0.0.1:8080/v1", requests_per_second=5).max_retries
        0
    """

    base_url: str | None = None
    """Endpoint of an OpenAI-compatible (or other) server, e.g. a local llama.cpp server."""
    temperature: float | None = None
    """Default temperature of the model (a sampler's schedule may override it per call)."""
    max_tokens: int | None = None
    """Default cap on output tokens per call; a runaway answer then costs little. With a
    custom `base_url` on an OpenAI-compatible provider it is also sent as the legacy
    `max_tokens` field, for servers (llama.cpp) that do not read `max_completion_tokens`."""
    requests_per_second: float | None = None
    """Client-side rate limit shared by every call of this model (None: no limit)."""
    max_concurrency: int | None = None
    """Calls in flight at once (None: as many as the voter asks for)."""
    max_retries: int = 0
    """Retries inside the provider's HTTP client (429s and 5xx). Off by default:
    maker_graph's own `ProviderRetry` is the one retry layer and counts every failure;
    each client retry multiplies the HTTP calls per sample by `1 + max_retries`."""
    timeout: float | None = None
    """Seconds one HTTP request may take (None: the client's default)."""
    samples_per_request: int | None = None
    """Most samples drawn in one request where the model accepts OpenAI's `n` (the prompt
    billed once per request; None: up to 8, 1: one request per sample)."""
    api_key_env: str | None = None
    """Name of an environment variable to read the API key from, when it is not the
    provider's usual one (e.g. `TOGETHER_KEY_FOR_TESTS`)."""
    stream_usage: bool | None = None
    """Ask for token usage when streaming (None: on for OpenAI-compatible providers with
    a custom `base_url`, which otherwise stream without usage)."""
    extra: Mapping[str, Any] = field(default_factory=dict)
    """Further keyword arguments for the provider's chat model class."""

    def __post_init__(self) -> None:
        if self.requests_per_second is not None and not self.requests_per_second > 0:
            raise ConfigurationError(
                f"requests_per_second must be > 0, got {self.requests_per_second!r}"
            )
        if self.max_concurrency is not None and self.max_concurrency < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {self.max_concurrency!r}")
        if self.max_tokens is not None and self.max_tokens < 1:
            raise ConfigurationError(f"max_tokens must be >= 1, got {self.max_tokens!r}")
        if self.temperature is not None and not 0.0 <= self.temperature <= 2.0:
            raise ConfigurationError(f"temperature must be within [0, 2], got {self.temperature!r}")
        if self.samples_per_request is not None and self.samples_per_request < 1:
            raise ConfigurationError(
                f"samples_per_request must be >= 1, got {self.samples_per_request!r}"
            )
        if self.max_retries < 0:
            raise ConfigurationError(f"max_retries must be >= 0, got {self.max_retries!r}")
        if self.timeout is not None and not self.timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {self.timeout!r}")
        if self.base_url is not None:
            parsed = urlparse(self.base_url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ConfigurationError(
                    f"base_url must be an http(s) URL such as http://127.0.0.1:8080/v1, "
                    f"got {self.base_url!r}"
                )


@dataclass(frozen=True, kw_only=True)
class ModelSpec:
    """A parsed `--model` value.

    Example:
        >>> parse_model_spec("ollama:qwen2.5:0.5b").model
        'qwen2.5:0.5b'
    """

    text: str
    """The string as given."""
    provider: str | None
    """LangChain provider key (`openai`, `anthropic`, ...), `simulated`, `simulated-chat`,
    or None when LangChain should infer it from the model name."""
    model: str
    """The provider's model name (empty for the simulated models)."""
    error_overrides: dict[str, Any] = field(default_factory=dict)
    """`ErrorModel` fields set in a simulated model's spec."""
    alias: str | None = None
    """A short name given as `NAME=SPEC` (e.g. `mini=openai:gpt-4.1-mini`)."""

    @property
    def simulated(self) -> bool:
        """True for `simulated` and `simulated-chat`."""
        return self.provider in SIMULATED_MODELS

    @property
    def label(self) -> str:
        """A short name for tables and plots: the alias, else the spec as given."""
        return self.alias or self.text


def parse_model_spec(text: str) -> ModelSpec:
    """Split `PROVIDER:MODEL` (or a bare model name, or a simulated model's spec).

    Raises:
        ConfigurationError: an empty spec or bad simulated-model options.

    Example:
        >>> parse_model_spec("gpt-4.1-mini").provider is None
        True
        >>> parse_model_spec("simulated-chat:error_rate=0.1,rivals=2").error_overrides
        {'error_rate': 0.1, 'rivals': 2}
        >>> parse_model_spec("mini=openai:gpt-4.1-mini").label
        'mini'
    """
    spec = text.strip()
    alias = None
    m = _ALIAS.match(spec)
    if m is not None:
        alias, spec = m.group(1), m.group(2).strip()
    if not spec:
        raise ConfigurationError(
            "empty model spec: use simulated, simulated-chat or PROVIDER:MODEL"
        )
    head, sep, rest = spec.partition(":")
    if head in SIMULATED_MODELS:
        return ModelSpec(
            text=spec, provider=head, model="", error_overrides=_error_options(rest), alias=alias
        )
    if sep and head and rest:
        return ModelSpec(text=spec, provider=head, model=rest, alias=alias)
    if sep:
        raise ConfigurationError(f"bad model spec {text!r}: expected PROVIDER:MODEL")
    return ModelSpec(text=spec, provider=None, model=spec, alias=alias)


# `NAME=SPEC`: a name of letters, digits, dots, dashes and underscores before the first
# "=" and before any ":" (so "simulated:error_rate=0.1" is not mistaken for an alias).
_ALIAS = re.compile(r"^([A-Za-z0-9_.\-]+)=([^=].*)$")


def _error_options(text: str) -> dict[str, Any]:
    from .testing.errors_model import ErrorModel

    if not text:
        return {}
    fields = {f.name: f.type for f in dataclasses.fields(ErrorModel)}
    if "=" not in text:
        return {"error_rate": _number(text, "error_rate")}
    out: dict[str, Any] = {}
    for part in text.split(","):
        name, eq, value = part.partition("=")
        name = name.strip()
        if not eq or name not in fields:
            raise ConfigurationError(
                f"bad simulated-model option {part!r}: use NAME=VALUE with NAME one of "
                f"{', '.join(fields)}"
            )
        number = _number(value, name)
        out[name] = int(number) if name in ("rivals", "ramble_tokens", "seed") else number
    return out


def _number(text: str, name: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise ConfigurationError(f"{name} must be a number, got {text!r}") from None


def simulated_error_model(spec: ModelSpec, base: Any = None) -> Any:
    """The `ErrorModel` of a simulated spec: `base` (or the default) with the spec's overrides.

    Raises:
        ConfigurationError: an override is out of range.

    Example:
        >>> simulated_error_model(parse_model_spec("simulated:0.05")).error_rate
        0.05
    """
    from .testing.errors_model import ErrorModel

    model = base if base is not None else ErrorModel()
    try:
        return dataclasses.replace(model, **spec.error_overrides)
    except ValueError as exc:
        raise ConfigurationError(f"model {spec.text!r}: {exc}") from None


# --------------------------------------------------------------------------- real models


def make_rate_limiter(requests_per_second: float) -> Any:
    """An `InMemoryRateLimiter` allowing `requests_per_second`, with a burst of about 1 s.

    The bucket holds at most one second's worth of requests, so a first round of k
    samples goes out together and a long run still keeps to the average rate.

    Example:
        >>> limiter = make_rate_limiter(10)
    """
    from langchain_core.rate_limiters import InMemoryRateLimiter

    if not requests_per_second > 0:
        raise ConfigurationError(f"requests_per_second must be > 0, got {requests_per_second!r}")
    return InMemoryRateLimiter(
        requests_per_second=requests_per_second,
        # Check often enough that a fast limit is not throttled by the polling itself.
        check_every_n_seconds=min(0.1, 0.5 / requests_per_second),
        max_bucket_size=max(1.0, requests_per_second),
    )


def _is_loopback_url(url: str) -> bool:
    host = urlparse(url).hostname or ""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _install_hint(provider: str | None) -> str:
    package = _PROVIDER_PACKAGES.get(provider or "")
    if package is None:
        return "install the provider's LangChain integration package"
    extra = " (or `pip install 'maker-graph[openai]'`)" if package == "langchain-openai" else ""
    return f"`pip install {package}`{extra}"


def resolve_chat_model(spec: str | ModelSpec, options: ProviderOptions | None = None) -> Any:
    """Build a provider's chat model from `PROVIDER:MODEL` through `init_chat_model`.

    The model gets the options' temperature, output cap, client retries, timeout,
    base URL and rate limiter. Keys are read from the environment only.

    Args:
        spec: `PROVIDER:MODEL` (e.g. `openai:gpt-4.1-mini`), a bare model name LangChain
            can place, or a parsed `ModelSpec`.
        options: how to build and pace it.

    Returns:
        A LangChain `BaseChatModel`.

    Raises:
        ConfigurationError: the spec names a simulated model, `langchain` or the provider
            package is missing (the message says what to install), the provider is
            unknown, or its credentials are not in the environment.

    Example:
        >>> local = ProviderOptions(base_url="http://127.0.0.1:8080/v1", max_tokens=750)
        >>> model = resolve_chat_model("openai:qwen2.5-0.5b-instruct", local)
        >>> model.max_tokens, model.stream_usage
        (750, True)
    """
    parsed = spec if isinstance(spec, ModelSpec) else parse_model_spec(spec)
    if parsed.simulated:
        raise ConfigurationError(
            f"{parsed.text!r} is a simulated model: the task builds it (it needs the answers)"
        )
    opts = options or ProviderOptions()
    if importlib.util.find_spec("langchain") is None:
        raise ConfigurationError(
            f"model {parsed.text!r} needs the `langchain` package: "
            "`pip install 'maker-graph[providers]'` (plus the provider's package, e.g. "
            "`pip install 'maker-graph[openai]'`)"
        )
    from langchain.chat_models import init_chat_model

    provider = parsed.provider
    kwargs: dict[str, Any] = {"max_retries": opts.max_retries}
    if opts.temperature is not None:
        kwargs["temperature"] = opts.temperature
    if opts.max_tokens is not None:
        kwargs["max_tokens"] = opts.max_tokens
    if opts.timeout is not None:
        kwargs["timeout"] = opts.timeout
    if opts.requests_per_second is not None:
        kwargs["rate_limiter"] = make_rate_limiter(opts.requests_per_second)
    if opts.base_url is not None:
        kwargs["base_url"] = opts.base_url
    key_env = opts.api_key_env or API_KEY_ENV.get(provider or "")
    if opts.api_key_env is not None:
        value = os.environ.get(opts.api_key_env)
        if not value:
            raise ConfigurationError(
                f"api_key_env names ${opts.api_key_env}, but it is not set in the environment"
            )
        kwargs["api_key"] = value
    elif (
        opts.base_url is not None
        and _is_loopback_url(opts.base_url)
        and key_env
        and not os.environ.get(key_env)
    ):
        # A local server (llama.cpp, vLLM, a test stub) ignores the key, but the client
        # refuses to start without one; a placeholder is no credential.
        kwargs["api_key"] = "not-needed-for-local-server"
    stream_usage = opts.stream_usage
    if stream_usage is None and opts.base_url is not None and provider in _OPENAI_COMPATIBLE:
        stream_usage = True  # a custom base URL streams without usage unless asked
    if stream_usage is not None and (provider in _OPENAI_COMPATIBLE or provider is None):
        kwargs["stream_usage"] = stream_usage
    kwargs.update(opts.extra)
    if opts.max_tokens is not None and opts.base_url is not None and provider in _OPENAI_COMPATIBLE:
        # ChatOpenAI sends the cap as `max_completion_tokens`; servers that only know
        # `max_tokens` (llama-cpp-python) would ignore it, so send both.
        extra_body = dict(kwargs.get("extra_body") or {})
        extra_body.setdefault("max_tokens", opts.max_tokens)
        kwargs["extra_body"] = extra_body

    try:
        if provider is None:
            return init_chat_model(parsed.model, **kwargs)
        return init_chat_model(parsed.model, model_provider=provider, **kwargs)
    except ImportError as exc:
        raise ConfigurationError(
            f"model {parsed.text!r} needs the provider package: {_install_hint(provider)} ({exc})"
        ) from None
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0]
        raise ConfigurationError(
            f"cannot build model {parsed.text!r}: {first} Use PROVIDER:MODEL, e.g. "
            "openai:gpt-4.1-mini, anthropic:claude-haiku-4-5, ollama:qwen2.5:0.5b"
        ) from None
    except Exception as exc:
        # Clients check for their key when built (e.g. openai.OpenAIError); name the variable.
        if "api_key" in str(exc).lower() or "credential" in str(exc).lower():
            where = f"${key_env}" if key_env else "the provider's API key variable"
            raise ConfigurationError(
                f"model {parsed.text!r} needs an API key: set {where} in the environment"
            ) from None
        raise ConfigurationError(f"cannot build model {parsed.text!r}: {exc}") from exc


# --------------------------------------------------------------------------- concurrency


class ConcurrencyLimitedSampler(ForwardsBatching):
    """A sampler with at most `limit` calls in flight, whoever calls it.

    The semaphore is made per event loop (an `asyncio.Semaphore` belongs to the loop
    that first waits on it), so one wrapped sampler works across `asyncio.run` calls.

    Example:
        >>> from maker_graph.sampling import as_sampler
        >>> sampler = limit_concurrency(as_sampler(lambda q: "4"), 8)
    """

    inner: Sampler

    def __init__(self, inner: Sampler, limit: int) -> None:
        if limit < 1:
            raise ConfigurationError(f"max_concurrency must be >= 1, got {limit}")
        self.inner = inner
        self.limit = limit
        self._semaphores: dict[int, asyncio.Semaphore] = {}

    def _semaphore(self) -> asyncio.Semaphore:
        loop_id = id(asyncio.get_running_loop())
        sem = self._semaphores.get(loop_id)
        if sem is None:
            sem = self._semaphores[loop_id] = asyncio.Semaphore(self.limit)
        return sem

    async def sample(self, step_input: Any, index: int) -> RawSample:
        async with self._semaphore():
            return await self.inner.sample(step_input, index)

    # One request for several samples (`n`) holds one slot: the limit is on calls.
    async def sample_many(self, step_input: Any, indices: list[int]) -> list[RawSample]:
        async with self._semaphore():
            raws: list[RawSample] = await self.inner.sample_many(  # type: ignore[attr-defined]
                step_input, indices
            )
            return raws


def limit_concurrency(sampler: Sampler, limit: int | None) -> Sampler:
    """`sampler` with at most `limit` calls in flight (unchanged when `limit` is None).

    Example:
        >>> from maker_graph.sampling import as_sampler
        >>> s = as_sampler(lambda q: "4")
        >>> limit_concurrency(s, None) is s
        True
    """
    return sampler if limit is None else ConcurrencyLimitedSampler(sampler, limit)
