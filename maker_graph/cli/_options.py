"""The options several `maker-graph` commands share, each defined once, and their checks.

Each alias is a typer `Annotated` type: a command declares `timeout: Timeout = 120.0`
and gets the same flag name and help as every other command that takes it (typer
wants the default in the signature, not in the alias). Options whose default or
meaning differs between commands (`--concurrency`, `--temperature`, `--seed`, ...)
stay in their command.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from .app import fail

__all__ = [
    "BaseUrl",
    "MaxRetries",
    "PriceIn",
    "PriceOut",
    "Prices",
    "RedFlagTokens",
    "RequestsPerSecond",
    "Timeout",
    "check_at_least",
]

BaseUrl = Annotated[
    str | None,
    typer.Option("--base-url", help="Provider endpoint, e.g. a local OpenAI-compatible server."),
]
RequestsPerSecond = Annotated[
    float | None,
    typer.Option(
        "--requests-per-second", help="Client-side rate limit of provider calls, per model."
    ),
]
MaxRetries = Annotated[
    int, typer.Option("--max-retries", help="Client-side HTTP retries (0: maker_graph retries).")
]
Timeout = Annotated[
    float,
    typer.Option(
        "--timeout",
        help="Seconds one provider call may take in total; then it "
        "counts as a timeout and is retried.",
    ),
]
RedFlagTokens = Annotated[
    int, typer.Option("--red-flag-tokens", help="Red-flag answers longer than this many tokens.")
]
# 0 means "not given" where the command prices from a table (hanoi) or from a file
# (plan --estimate); `estimate` needs None for that and declares its own.
PriceIn = Annotated[float, typer.Option("--price-in", help="Price per million input tokens.")]
PriceOut = Annotated[float, typer.Option("--price-out", help="Price per million output tokens.")]
Prices = Annotated[
    Path | None,
    typer.Option(
        "--prices",
        help="JSON/YAML price table ({model: {input: X, output: Y}}); known models are "
        "priced from it when --price-in/--price-out are not given.",
    ),
]


def check_at_least(bounds: Iterable[tuple[str, float | None, int]]) -> None:
    """Refuse the first flag below its least value, in the order given.

    Args:
        bounds: `(flag, value, least)` rows; a value of None (not given) passes.

    Raises:
        typer.Exit: after one `error: FLAG must be >= LEAST, got VALUE` line (code 2).
    """
    for flag, value, least in bounds:
        if value is not None and value < least:
            raise fail(f"{flag} must be >= {least}, got {value}")
