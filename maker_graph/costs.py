"""What a run costs: token counts per sample, prices per model, spend so far and projected.

Prices are quoted per million tokens, input and output apart, as providers list
them. `PriceTable` maps model names to `Price`s; it ships a few list prices
(`DEFAULT_PRICES`, which go out of date: check your provider) and users extend
it from a dict, a JSON/YAML file or the `--price-in/--price-out` flags.

With the optional `prices` extra (`pip install 'maker-graph[prices]'`, the
maintained `genai-prices` catalogue, read offline from its bundled snapshot) a
model the table does not know is priced from the catalogue; the table's own
entries, built-in or yours, always win, so overrides and offline runs behave
the same with or without it.

Token counts come from the provider's `usage_metadata`; when a sample has none
(some local servers, plain-function samplers), `TokenCountingSampler` counts the
prompt and the answer with tiktoken instead (`maker_graph.tokens`, offline).

`CostMeter` adds up a run step by step and projects the total: spend so far
divided by the steps done, times the task's steps.

Example:
    >>> from maker_graph.costs import Price, PriceTable
    >>> table = PriceTable({"my-model": Price(input=0.4, output=1.6)})
    >>> round(table.lookup("my-model").cost(300, 200), 6)
    0.00044
    >>> table.lookup("openai:gpt-4.1-mini-2025-04-14") == table.lookup("gpt-4.1-mini")
    True
"""

from __future__ import annotations

import functools
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ._token_counting import TokenCountingSampler, count_prompt_tokens
from .errors import ConfigurationError
from .records import RawSample, StepResult

__all__ = [
    "DEFAULT_PRICES",
    "CostMeter",
    "Price",
    "PriceTable",
    "Spend",
    "TokenCountingSampler",
    "catalogue_price",
    "token_cost",
    "count_prompt_tokens",
    "sample_cost",
    "step_cost",
]


@dataclass(frozen=True, kw_only=True)
class Price:
    """A model's price in dollars per million tokens.

    Example:
        >>> Price(input=0.1, output=0.4).cost(1_000_000, 500_000)
        0.3
        >>> Price(input=0.4, output=1.6, cached_input=0.1).cost(1_000_000, 0, 1_000_000)
        0.1
    """

    input: float
    """Dollars per million input (prompt) tokens."""
    output: float
    """Dollars per million output (completion) tokens."""
    cached_input: float | None = None
    """Dollars per million input tokens read from the provider's prompt cache (None:
    the same as `input`, which never underestimates)."""

    def __post_init__(self) -> None:
        for name, value in (
            ("input", self.input),
            ("output", self.output),
            ("cached input", self.cached_input),
        ):
            if value is not None and not (0.0 <= value < math.inf):
                raise ConfigurationError(
                    f"price per million {name} tokens must be a finite number >= 0, got {value!r}"
                )

    def cost(
        self, input_tokens: float, output_tokens: float, cached_input_tokens: float = 0
    ) -> float:
        """Dollars for the given token counts; `cached_input_tokens` are part of `input_tokens`."""
        return token_cost(
            input_tokens,
            output_tokens,
            cached_input_tokens,
            (self.input, self.output, self.cached_input),
        )

    def to_dict(self) -> dict[str, float]:
        out = {"input": self.input, "output": self.output}
        if self.cached_input is not None:
            out["cached_input"] = self.cached_input
        return out


def token_cost(
    input_tokens: float,
    output_tokens: float,
    cached_input_tokens: float,
    prices: tuple[float, float, float | None],
) -> float:
    """Dollars for token counts at `(input, output, cached input)` prices per million.

    `cached_input_tokens` are the part of `input_tokens` the provider read from its
    prompt cache; a cached price of None bills them as ordinary input.

    Example:
        >>> token_cost(1_000_000, 1_000_000, 500_000, (0.4, 1.6, 0.1))
        1.85
    """
    price_in, price_out, price_cached = prices
    cached = cached_input_tokens if price_cached is not None else 0
    return (
        (input_tokens - cached) * price_in
        + cached * (price_cached or 0.0)
        + output_tokens * price_out
    ) / 1e6


DEFAULT_PRICES: Mapping[str, Price] = {
    # OpenAI list prices (standard tier), USD per million tokens, late 2025; cached
    # input is what a prompt-cache hit (`cache_read`) costs.
    "gpt-4.1": Price(input=2.0, output=8.0, cached_input=0.5),
    "gpt-4.1-mini": Price(input=0.4, output=1.6, cached_input=0.1),
    "gpt-4.1-nano": Price(input=0.1, output=0.4, cached_input=0.025),
    "gpt-4o": Price(input=2.5, output=10.0, cached_input=1.25),
    "gpt-4o-mini": Price(input=0.15, output=0.6, cached_input=0.075),
    "gpt-5": Price(input=1.25, output=10.0, cached_input=0.125),
    "gpt-5-mini": Price(input=0.25, output=2.0, cached_input=0.025),
    "gpt-5-nano": Price(input=0.05, output=0.4, cached_input=0.005),
    "o3-mini": Price(input=1.1, output=4.4, cached_input=0.55),
    "o4-mini": Price(input=1.1, output=4.4, cached_input=0.275),
    # Anthropic (a cache read costs a tenth of input; writes are not modelled).
    "claude-haiku-4-5": Price(input=1.0, output=5.0, cached_input=0.1),
    "claude-sonnet-4-5": Price(input=3.0, output=15.0, cached_input=0.3),
    "claude-3-5-haiku": Price(input=0.8, output=4.0, cached_input=0.08),
    # Google (context-cache prices not listed here: cached input bills as input).
    "gemini-2.5-flash": Price(input=0.3, output=2.5),
    "gemini-2.5-flash-lite": Price(input=0.1, output=0.4),
    # The simulated models and local servers cost nothing but electricity.
    "simulated": Price(input=0.0, output=0.0),
    "simulated-chat": Price(input=0.0, output=0.0),
}
"""List prices of a few common models. They change: check the provider and override."""


def _key(model: str) -> str:
    return model.strip().lower()


def _normalise(model: str) -> str:
    name = _key(model)
    head, sep, rest = name.partition(":")
    # "openai:gpt-4.1-mini" -> "gpt-4.1-mini"; but keep "simulated:0.01" -> "simulated".
    if sep and head in ("simulated", "simulated-chat"):
        return head
    if sep and rest:
        name = rest
    return name.rsplit("/", 1)[-1]  # "openai/gpt-4.1-mini" (OpenRouter style)


class PriceTable:
    """Prices by model name, looked up leniently.

    A lookup tries the exact name, then the name without its `provider:` or
    `vendor/` prefix, then the longest table entry the name starts with, so
    dated snapshots (`gpt-4.1-mini-2025-04-14`) find their family's price.

    Args:
        prices: entries to add (a `Price`, a `(input, output)` pair, or a
            `{"input": x, "output": y}` dict per model); they override the defaults.
        defaults: start from `DEFAULT_PRICES` (True) or from an empty table.
        catalogue: price models the table does not know from `genai-prices`
            when it is installed; defaults to `defaults` (an empty table stays
            empty). Without the package this is a no-op.

    Example:
        >>> PriceTable({"local-qwen": (0, 0)}).lookup("openai:local-qwen").output
        0.0
        >>> PriceTable(defaults=False).lookup("gpt-4.1-mini") is None
        True
    """

    def __init__(
        self,
        prices: Mapping[str, Any] | None = None,
        *,
        defaults: bool = True,
        catalogue: bool | None = None,
    ) -> None:
        self._prices: dict[str, Price] = {}
        self._catalogue = defaults if catalogue is None else catalogue
        if defaults:
            self._prices.update({_normalise(k): v for k, v in DEFAULT_PRICES.items()})
        self._add(prices or {})

    def _add(self, prices: Mapping[str, Any]) -> None:
        # Entries are stored as written (so "simulated:0.01" can have its own price) and,
        # when that differs, under the normalised name too (so "openai:x" prices "x").
        for model, value in prices.items():
            price = _as_price(model, value)
            self._prices[_key(model)] = price
            normalised = _normalise(model)
            if normalised not in ("simulated", "simulated-chat"):
                self._prices.setdefault(normalised, price)

    @classmethod
    def from_file(cls, path: str | Path, *, defaults: bool = True) -> PriceTable:
        """Load `{model: {"input": x, "output": y}}` (or `[x, y]`) from a JSON or YAML file.

        Raises:
            ConfigurationError: the file is missing, unreadable or malformed.
        """
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise ConfigurationError(f"cannot read price file {p}: {exc.strerror}") from None
        try:
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
        except Exception as exc:  # noqa: BLE001 - any parse failure is the file's fault
            raise ConfigurationError(f"price file {p} is not valid: {exc}") from None
        if not isinstance(data, Mapping):
            raise ConfigurationError(
                f"price file {p} must map model names to {{input: X, output: Y}} per million tokens"
            )
        return cls(data, defaults=defaults)

    def with_prices(self, prices: Mapping[str, Any]) -> PriceTable:
        """A new table with `prices` added (this one is unchanged)."""
        table = PriceTable(defaults=False, catalogue=self._catalogue)
        table._prices = {**self._prices}
        table._add(prices)
        return table

    def lookup(self, model: str | None) -> Price | None:
        """The price of `model`, or None when the table does not know it."""
        if not model:
            return None
        price = self._prices.get(_key(model))
        if price is not None:
            return price
        name = _normalise(model)
        price = self._prices.get(name)
        if price is not None:
            return price
        best = max((k for k in self._prices if name.startswith(k + "-")), key=len, default=None)
        if best is not None:
            return self._prices[best]
        return catalogue_price(model) if self._catalogue else None

    def require(self, model: str) -> Price:
        """The price of `model`.

        Raises:
            ConfigurationError: unknown model; the message says how to give its price.
        """
        price = self.lookup(model)
        if price is None:
            raise ConfigurationError(
                f"no price known for model {model!r}: pass --price-in and --price-out "
                "(dollars per million tokens) or a --prices file"
            )
        return price

    def __contains__(self, model: object) -> bool:
        return isinstance(model, str) and self.lookup(model) is not None

    def items(self) -> Iterable[tuple[str, Price]]:
        return sorted(self._prices.items())


@functools.lru_cache(maxsize=256)
def catalogue_price(model: str) -> Price | None:
    """The list price of `model` in the `genai-prices` catalogue, or None.

    None when the package is not installed or does not know the model. The
    catalogue is read from the snapshot bundled with the package (no network).
    Prices are taken at a 1,000-token request and scaled to a million, so a
    model whose price rises past a long-context threshold is quoted at its
    ordinary tier, which is what a voted step's short prompts pay.

    Example:
        >>> catalogue_price("no-such-model-anywhere") is None
        True
    """
    try:
        from genai_prices import Usage, calc_price
    except ImportError:
        return None
    name = model.strip()
    head, sep, rest = name.partition(":")
    # "openai:gpt-4.1-mini" names its provider; try it with that hint first.
    attempts = [(rest, head), (rest, None)] if sep and rest else [(name, None)]
    for ref, hint in attempts:
        try:
            prompt = calc_price(Usage(input_tokens=1000, output_tokens=0), ref, provider_id=hint)
            answer = calc_price(Usage(input_tokens=0, output_tokens=1000), ref, provider_id=hint)
            # The catalogue counts cache reads inside input_tokens, as LangChain does.
            cached = calc_price(
                Usage(input_tokens=1000, cache_read_tokens=1000, output_tokens=0),
                ref,
                provider_id=hint,
            )
        except (LookupError, ValueError):
            continue
        return Price(
            input=float(prompt.total_price) * 1000,
            output=float(answer.total_price) * 1000,
            cached_input=float(cached.total_price) * 1000,
        )
    return None


def _as_price(model: str, value: Any) -> Price:
    try:
        if isinstance(value, Price):
            return value
        if isinstance(value, Mapping):
            cached = value.get("cached_input")
            return Price(
                input=float(value["input"]),
                output=float(value["output"]),
                cached_input=float(cached) if cached is not None else None,
            )
        if isinstance(value, (list, tuple)) and len(value) == 2:
            return Price(input=float(value[0]), output=float(value[1]))
    except (KeyError, TypeError, ValueError):
        pass
    raise ConfigurationError(
        f"price of {model!r} must be {{input: X, output: Y}} or [X, Y] in dollars per "
        f"million tokens, got {value!r}"
    )


# --------------------------------------------------------------------------- cost


def sample_cost(raw: RawSample, price: Price | None) -> float | None:
    """Dollars for one sample (None when the price is unknown); missing counts count 0.

    Example:
        >>> raw = RawSample("x", input_tokens=1000, output_tokens=100)
        >>> sample_cost(raw, Price(input=1, output=2))
        0.0012
    """
    if price is None:
        return None
    return price.cost(raw.input_tokens or 0, raw.output_tokens or 0, raw.cached_input_tokens or 0)


def step_cost(
    result: StepResult, prices: PriceTable | Price | None, model: str | None = None
) -> float | None:
    """Dollars for one voted step, or None when a price is unknown.

    With a `PriceTable` and kept samples, each sample is priced by the model that
    answered it (several models may share a step); otherwise the step's token
    totals are priced as `model`.

    Example:
        >>> from maker_graph.records import StepResult
        >>> r = StepResult(winner="a", winner_key="a", tally={"a": 3}, decided_by="vote", k=3,
        ...                samples_drawn=3, valid_votes=3, input_tokens=900, output_tokens=60)
        >>> round(step_cost(r, Price(input=0.4, output=1.6)), 6)
        0.000456
    """
    if prices is None:
        return None
    if isinstance(prices, Price):
        return prices.cost(result.input_tokens, result.output_tokens, result.cached_input_tokens)
    if result.samples and any(s.raw.model for s in result.samples):
        total = 0.0
        for s in result.samples:
            price = prices.lookup(s.raw.model or model)
            if price is None:
                return None
            total += sample_cost(s.raw, price) or 0.0
        return total
    price = prices.lookup(model)
    if price is None:
        return None
    return price.cost(result.input_tokens, result.output_tokens, result.cached_input_tokens)


@dataclass(frozen=True, kw_only=True)
class Spend:
    """A snapshot of a run's spending.

    Example:
        >>> Spend(steps_done=10, total_steps=100, samples=31, input_tokens=9000,
        ...       output_tokens=600, cost=0.01).projected_cost
        0.1
    """

    steps_done: int
    """Steps decided so far."""
    total_steps: int | None
    """Steps in the whole task, when known."""
    samples: int
    """Samples drawn so far, red-flagged ones included."""
    input_tokens: int
    """Prompt tokens so far."""
    output_tokens: int
    """Completion tokens so far."""
    cost: float | None
    """Dollars so far (None: a price is unknown)."""

    @property
    def cost_per_step(self) -> float | None:
        if self.cost is None or self.steps_done == 0:
            return None
        return self.cost / self.steps_done

    @property
    def projected_cost(self) -> float | None:
        """Dollars for the whole task at the average cost per step so far."""
        per_step = self.cost_per_step
        if per_step is None or self.total_steps is None:
            return None
        return per_step * max(self.total_steps, self.steps_done)

    def to_dict(self) -> dict[str, Any]:
        return {
            "steps_done": self.steps_done,
            "total_steps": self.total_steps,
            "samples": self.samples,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "cost": self.cost,
            "projected_cost": self.projected_cost,
        }


class CostMeter:
    """Adds up a run's tokens and dollars as steps are decided.

    Owned by one run (it is an accumulator, like a tally); `spend()` returns an
    immutable snapshot for reports and progress bars.

    Args:
        prices: a `PriceTable` (each sample priced by its model), one `Price` for
            everything, or None (tokens only).
        model: the model name to price samples that do not say which model they are.
        total_steps: the task's length, for the projection.
        start: a snapshot to continue from (a resumed run).

    Example:
        >>> from maker_graph.records import StepResult
        >>> meter = CostMeter(Price(input=0.4, output=1.6), total_steps=4)
        >>> r = StepResult(winner="a", winner_key="a", tally={"a": 3}, decided_by="vote", k=3,
        ...                samples_drawn=3, valid_votes=3, input_tokens=900, output_tokens=60)
        >>> meter.add(r)
        >>> round(meter.spend().projected_cost, 6)
        0.001824
    """

    def __init__(
        self,
        prices: PriceTable | Price | None = None,
        *,
        model: str | None = None,
        total_steps: int | None = None,
        start: Spend | None = None,
    ) -> None:
        self.prices = prices
        self.model = model
        self.total_steps = total_steps
        self.steps_done = start.steps_done if start else 0
        self.samples = start.samples if start else 0
        self.input_tokens = start.input_tokens if start else 0
        self.output_tokens = start.output_tokens if start else 0
        self.cost: float | None = (start.cost if start else 0.0) if prices is not None else None

    def add(self, result: StepResult) -> None:
        """Count one decided step."""
        self.steps_done += 1
        self.samples += result.samples_drawn
        self.input_tokens += result.input_tokens
        self.output_tokens += result.output_tokens
        if self.cost is not None:
            cost = step_cost(result, self.prices, self.model)
            self.cost = None if cost is None else self.cost + cost

    def add_tokens(
        self,
        *,
        steps: int,
        samples: int,
        input_tokens: int,
        output_tokens: int,
        model: str | None = None,
    ) -> None:
        """Count steps known only by their totals (e.g. read back from a run log)."""
        self.steps_done += steps
        self.samples += samples
        self.input_tokens += input_tokens
        self.output_tokens += output_tokens
        if self.cost is not None:
            price = (
                self.prices
                if isinstance(self.prices, Price)
                else self.prices.lookup(model or self.model)
                if self.prices is not None
                else None
            )
            added = None if price is None else price.cost(input_tokens, output_tokens)
            self.cost = None if added is None else self.cost + added

    def spend(self) -> Spend:
        """The spending so far, with the projection to `total_steps`."""
        return Spend(
            steps_done=self.steps_done,
            total_steps=self.total_steps,
            samples=self.samples,
            input_tokens=self.input_tokens,
            output_tokens=self.output_tokens,
            cost=self.cost,
        )
