"""Which model `maker-graph hanoi` samples: the simulated demo model or a real one.

The demo's error model, the model spec resolved to a sampler, and the price of a
provider model from the price table.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import ConfigurationError


def demo_errors() -> Any:
    from ..testing import ErrorModel

    # Per-step error 0.2 % (gpt-4.1-mini's measured rate); a handful of hard steps whose
    # errors all agree (2e-5 of the steps: 14 in the 20-disk run at seed 0, each sample
    # there wrong 10 % of the time); 0.2 % over-long rambles (half of them wrong: the
    # 750-token flag catches them) and 0.1 % malformed answers (the parser catches them).
    # At k = 3 a hard step is decided wrongly with probability (1/9)^3 / (1 + (1/9)^3),
    # 0.14 %, so the hard steps add ~0.02 expected errors to the run's ~0.01: it is solved
    # with probability ~0.97, above the 0.95 the plan aims at. Harder steps (say 1e-4 of
    # them at 25 %) would need k = 7 for the same odds: a demo of a run that k = 3 loses.
    return ErrorModel(
        error_rate=0.002,
        hard_fraction=2e-5,
        hard_error_rate=0.1,
        ramble_rate=0.002,
        ramble_tokens=1200,
        ramble_error_rate=0.5,
        malformed_rate=0.001,
    )


DEMO_ERRORS = demo_errors()
"""The simulated model's default error model for `maker-graph hanoi`."""


def provider_options(**options: Any) -> Any:
    """`ProviderOptions` built late, so `--help` does not import the providers."""
    from ..providers import ProviderOptions

    return ProviderOptions(**options)


def table_price(model: str, prices: Path | None) -> tuple[float, float, float | None]:
    """(input, output, cached input) prices of a provider model from the built-in table
    (or `--prices`), else zero."""
    from ..providers import parse_model_spec
    from ._models import price_table

    price = price_table(prices).lookup(parse_model_spec(model).model)
    if price is None:
        return 0.0, 0.0, None
    return price.input, price.output, price.cached_input


def effective_error_rate(model: str, error_rate: float, seed: int) -> float:
    """The error rate a simulated model spec really runs at (a real model's is passed on)."""
    from ..providers import parse_model_spec, simulated_error_model

    spec = parse_model_spec(model)
    if not spec.simulated:
        return error_rate
    errors = simulated_error_model(spec, replace(DEMO_ERRORS, error_rate=error_rate, seed=seed))
    if errors.error_rate >= 0.5:
        raise ConfigurationError(
            f"the model's error rate must be below 0.5, got {errors.error_rate}: at 0.5 or more "
            "the wrong answers win the vote as often as the right one"
        )
    return float(errors.error_rate)


def choose_sampler(
    task: Any,
    model: str,
    error_rate: float,
    seed: int,
    concurrency: int | None,
    provider: Any = None,
    *,
    rotate: bool = False,
) -> tuple[Any, str]:
    """The sampler for `model` and the label the report shows for it; `rotate`: chat
    models rotate the task's prompt wordings (`HanoiTask.rotated_prompts`)."""
    from ..providers import (
        ProviderOptions,
        parse_model_spec,
        resolve_chat_model,
        simulated_error_model,
    )
    from ..sampling import ChatModelSampler
    from ..tasks.hanoi import simulated_chat_model, simulated_sampler

    spec = parse_model_spec(model)
    prompt = task.rotated_prompts() if rotate else task.prompt
    if spec.simulated:
        errors = simulated_error_model(spec, replace(DEMO_ERRORS, error_rate=error_rate, seed=seed))
        if errors.error_rate >= 0.5:
            raise ConfigurationError(f"error rate must be below 0.5, got {errors.error_rate}")
        if spec.provider == "simulated":
            return simulated_sampler(task, errors), spec.text
        chat = simulated_chat_model(task, errors)
        return ChatModelSampler(chat, prompt=prompt), spec.text
    if provider is not None:
        from ..sampling import TemperatureSchedule
        from ._models import build_model

        schedule = None
        if provider.temperature is not None:
            schedule = TemperatureSchedule(first=provider.temperature, rest=provider.temperature)
        built = build_model(
            task, spec, options=provider, errors=None, temperature=schedule, prompt=prompt
        )
        return built.sampler, spec.text
    chat = resolve_chat_model(spec, ProviderOptions(max_concurrency=concurrency))
    return ChatModelSampler(chat, prompt=prompt), spec.text
