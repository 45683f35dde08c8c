"""Spec models of the `models:` section: simulated models, their oracles, provider models.

Re-exported by `maker_graph.config.spec`, their documented home.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import Discriminator, Field, StringConstraints, Tag, field_validator, model_validator

from ._spec_parts import SECRETS, Reference, Scalar, SpecPart, StateKeyName, compile_pattern


class SimulatedErrors(SpecPart):
    """How a simulated model errs (the fields of `maker_graph.testing.ErrorModel`)."""

    error_rate: float = Field(default=0.01, ge=0.0, le=1.0)
    """Chance that a well-formed answer is wrong."""
    rivals: int = Field(default=1, ge=1, le=1000)
    """Distinct wrong answers per step; 1 is the worst case for voting (all errors agree)."""
    hard_fraction: float = Field(default=0.0, ge=0.0, le=1.0)
    """Fraction of steps that are hard: their errors are more frequent and all agree."""
    hard_error_rate: float = Field(default=0.3, ge=0.0, le=1.0)
    """Error rate on hard steps."""
    ramble_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance of an over-long, rambling answer."""
    ramble_tokens: int = Field(default=1200, ge=1, le=1_000_000)
    """Output tokens a rambling answer is long."""
    ramble_error_rate: float = Field(default=0.5, ge=0.0, le=1.0)
    """Chance that a rambling answer is also wrong."""
    malformed_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance of an answer that breaks the expected format."""
    exception_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance that a call fails with a transient provider error (retried, never a vote)."""
    timeout_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance that a call times out (retried)."""
    rate_limit_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    """Chance that a call is throttled (retried after `retry_after`)."""
    retry_after: float = Field(default=0.0, ge=0.0, le=60.0)
    """The retry-after hint of a throttled call, in seconds."""
    latency_median: float = Field(default=0.0, ge=0.0, le=60.0)
    """Median seconds per call (lognormal); 0 answers at once."""
    latency_sigma: float = Field(default=0.5, ge=0.0, le=5.0)
    """Spread of the lognormal latency."""
    seed: int = 0
    """Seed of every random choice: the same seed gives the same run."""

    @model_validator(mode="after")
    def _some_call_succeeds(self) -> SimulatedErrors:
        if self.exception_rate + self.timeout_rate + self.rate_limit_rate >= 1.0:
            raise ValueError(
                "exception_rate + timeout_rate + rate_limit_rate must be < 1: "
                "otherwise no call could ever succeed"
            )
        return self


class OracleRule(SpecPart):
    """If `match` is found in the prompt, the correct answer is `answer`."""

    match: str = Field(min_length=1, max_length=1000)
    """A regular expression searched (case-insensitively) in the last user message."""
    answer: str = Field(max_length=10_000)
    """The correct answer; `\\1` or `\\g<name>` insert the match's groups."""

    @field_validator("match")
    @classmethod
    def _compiles(cls, value: str) -> str:
        compile_pattern(value)
        return value


class RulesOracle(SpecPart):
    """The correct answer from the first matching rule, else `default`."""

    rules: list[OracleRule] = Field(min_length=1, max_length=1000)
    """Rules tried in order."""
    default: str | None = None
    """The answer when no rule matches (none: such a prompt is an error)."""


class FunctionOracle(SpecPart):
    """The correct answer from a registered oracle: `oracle(prompt_text) -> str`."""

    function: Reference
    """A registered oracle's name (kind `oracle`)."""


class ConstantOracle(SpecPart):
    """The same correct answer for every prompt."""

    answer: str = Field(max_length=10_000)
    """The answer."""


def _oracle_tag(value: Any) -> str | None:
    if isinstance(value, dict):
        for tag in ("rules", "function", "answer"):
            if tag in value:
                return tag
        return None
    if isinstance(value, RulesOracle):
        return "rules"
    if isinstance(value, FunctionOracle):
        return "function"
    return "answer" if isinstance(value, ConstantOracle) else None


Oracle = Annotated[
    Annotated[RulesOracle, Tag("rules")]
    | Annotated[FunctionOracle, Tag("function")]
    | Annotated[ConstantOracle, Tag("answer")],
    Discriminator(
        _oracle_tag,
        custom_error_type="oracle_kind",
        custom_error_message="an oracle needs one of the keys rules, function or answer",
    ),
]


class SimulatedModel(SpecPart):
    """A simulated chat model: right by its oracle, wrong as often as `errors` says.

    It is a real LangChain chat model (usage metadata, finish reasons, `max_tokens`),
    so a spec runs offline exactly as it would on a provider.
    """

    model: Literal["simulated"]
    """`simulated`."""
    oracle: Oracle | None = None
    """Where correct answers come from. Needed by maker and prompt nodes; decomposition
    nodes use their task's own ground truth instead."""
    choices: list[str] | None = Field(default=None, min_length=2, max_length=1000)
    """The possible answers (e.g. the labels); a wrong answer is another choice."""
    errors: SimulatedErrors = Field(default_factory=SimulatedErrors)
    """The error model."""


class ProviderModel(SpecPart):
    """A provider's chat model, `PROVIDER:MODEL`, built by LangChain's `init_chat_model`."""

    model: Annotated[
        str, StringConstraints(pattern=r"^[A-Za-z0-9_\-]+:[A-Za-z0-9_.:/@\-]+$", max_length=200)
    ]
    """`PROVIDER:MODEL`, e.g. `openai:gpt-4.1-mini` (needs `pip install 'maker-graph[openai]'`)."""
    base_url: Annotated[str, StringConstraints(pattern=r"^https?://", max_length=500)] | None = None
    """An OpenAI-compatible server's URL, e.g. a local model server."""
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    """The model's default temperature (maker nodes override it per sample)."""
    max_tokens: int | None = Field(default=None, ge=1, le=1_000_000)
    """Cap on output tokens per call."""
    timeout: float | None = Field(default=None, gt=0.0, le=3600.0)
    """Seconds a call may take."""
    requests_per_second: float | None = Field(default=None, gt=0.0, le=10_000.0)
    """A client-side rate limit shared by every call to this model (default: none)."""
    api_key_env: Annotated[str, StringConstraints(pattern=r"^[A-Z_][A-Z0-9_]*$")] | None = None
    """The name of the environment variable holding the API key. Keys are never written
    in a spec; without this, the provider's usual variable (e.g. OPENAI_API_KEY) is used."""
    options: dict[StateKeyName, Scalar] = Field(default_factory=dict, max_length=50)
    """Further keyword arguments for the model's constructor (no secrets)."""

    @field_validator("options")
    @classmethod
    def _no_secret_options(cls, value: dict[str, Scalar]) -> dict[str, Scalar]:
        for name in value:
            if SECRETS.search(name) or name in ("base_url", "model", "temperature", "max_tokens"):
                raise ValueError(
                    f"option {name!r} is not allowed here: "
                    + (
                        "secrets come only from environment variables (set api_key_env)"
                        if SECRETS.search(name)
                        else f"use the model's own {name!r} field"
                    )
                )
        return value


def _model_tag(value: Any) -> str:
    model = value.get("model") if isinstance(value, dict) else getattr(value, "model", None)
    return "simulated" if model == "simulated" else "provider"


ModelSpec = Annotated[
    Annotated[SimulatedModel, Tag("simulated")] | Annotated[ProviderModel, Tag("provider")],
    Discriminator(_model_tag),
]
"""A named model: `simulated`, or a provider's `PROVIDER:MODEL`."""
