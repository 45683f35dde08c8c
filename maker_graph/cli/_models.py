"""Turning `--model` values and provider flags into samplers and prices (CLI helper).

`simulated` and `simulated-chat` are built by the task (they need its right
answers); anything else goes through `maker_graph.providers.resolve_chat_model`
and is wrapped so that it samples the task's prompt, counts tokens a provider
did not report, and keeps to the concurrency limit.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..costs import Price, PriceTable, TokenCountingSampler
from ..errors import ConfigurationError
from ..providers import ModelSpec, ProviderOptions, limit_concurrency, resolve_chat_model
from ..providers import simulated_error_model as _errors_for
from ..sampling import ChatModelSampler, Sampler, TemperatureSchedule

__all__ = ["BuiltModel", "build_model", "price_table", "resolve_price"]


@dataclass(frozen=True, kw_only=True)
class BuiltModel:
    """A sampler ready for the task, with the name to price and report it by."""

    label: str
    """The `--model` value as given."""
    name: str
    """The provider's model name (or the simulated spec), for price lookups."""
    sampler: Sampler
    simulated: bool
    price_names: tuple[str, ...] = ()
    """Names to look the price up by, in order (the alias first, then `name`)."""


def build_model(
    task: Any,
    spec: ModelSpec,
    *,
    options: ProviderOptions,
    errors: Any,
    temperature: TemperatureSchedule | None = None,
    prompt: Any = None,
) -> BuiltModel:
    """A sampler for `task` from a parsed `--model` value.

    Args:
        task: the task (its `prompt` feeds chat models; Hanoi builds simulated ones).
        spec: the parsed `--model` value.
        options: provider options (base URL, rate limit, concurrency, output cap, ...).
        errors: the `ErrorModel` simulated models start from (the spec may override it).
        temperature: the temperature schedule of chat models.
        prompt: the prompt builder(s) of a provider's chat model (default `task.prompt`;
            a list rotates wordings).

    Raises:
        ConfigurationError: the task cannot simulate itself, or the provider cannot be built.
    """
    if spec.simulated:
        model_errors = _errors_for(spec, errors)
        sampler = _simulated(task, spec, model_errors, options, temperature)
        # Priced by its alias or full spec when a price file names them, else as
        # "simulated" (free).
        return BuiltModel(
            label=spec.label,
            name=spec.text,
            sampler=sampler,
            simulated=True,
            price_names=(spec.label, spec.text),
        )
    model = resolve_chat_model(spec, options)
    chat = ChatModelSampler(
        model,
        prompt=prompt if prompt is not None else task.prompt,
        temperature=temperature,
        max_tokens=options.max_tokens,
        samples_per_request=options.samples_per_request,
    )
    counted = TokenCountingSampler(chat, prompt=task.prompt, model=spec.model)
    return BuiltModel(
        label=spec.label,
        name=spec.model,
        sampler=limit_concurrency(counted, options.max_concurrency),
        simulated=False,
        price_names=(spec.label, spec.model),
    )


def _simulated(
    task: Any,
    spec: ModelSpec,
    errors: Any,
    options: ProviderOptions,
    temperature: TemperatureSchedule | None,
) -> Sampler:
    from ..tasks import hanoi

    if not isinstance(task, hanoi.HanoiTask):
        raise ConfigurationError(
            f"{spec.text!r}: the simulated models are only built for the Hanoi task here; "
            f"pass a real model for {getattr(task, 'name', type(task).__name__)}"
        )
    if spec.provider == "simulated":
        return hanoi.simulated_sampler(task, errors, model_name=spec.text)
    make_chat = getattr(hanoi, "simulated_chat_model", None)
    if make_chat is None:  # pragma: no cover - older task module
        raise ConfigurationError("this version of the Hanoi task has no simulated chat model")
    model = make_chat(task, errors, model_name=spec.text)
    chat = ChatModelSampler(
        model, prompt=task.prompt, temperature=temperature, max_tokens=options.max_tokens
    )
    return limit_concurrency(chat, options.max_concurrency)


def price_table(prices_file: Path | None) -> PriceTable:
    """The built-in price table, extended by a `--prices` file when given."""
    if prices_file is None:
        return PriceTable()
    return PriceTable.from_file(prices_file)


def resolve_price(
    name: str | tuple[str, ...],
    table: PriceTable,
    price_in: float | None,
    price_out: float | None,
) -> Price | None:
    """`--price-in/--price-out` when given (both or one, the other 0), else the table's
    price of the first of the names it knows."""
    if price_in is not None or price_out is not None:
        return Price(input=price_in or 0.0, output=price_out or 0.0)
    for candidate in (name,) if isinstance(name, str) else name:
        price = table.lookup(candidate)
        if price is not None:
            return price
    return None
