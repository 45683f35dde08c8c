"""What `maker-graph hanoi` shows: the progress bar on stderr and the closing summary.

Display only: nothing here changes the run, so the run body stays readable and
the wording of the summary (which scripts grep: `solved: ..., errors: ...`) lives
in one place.
"""

from __future__ import annotations

import math
import resource
import sys
from typing import Any


def peak_rss_mb() -> float:
    """This process's peak resident memory in MB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Linux reports KiB, macOS bytes.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def fmt_int(n: int) -> str:
    """`n` with thousands separators."""
    return f"{n:,}"


def make_console() -> Any:
    """The rich console the summary is printed on (stdout, no highlighting)."""
    from rich.console import Console

    return Console(highlight=False, soft_wrap=True)


class ProgressBar:
    """A rich progress bar on stderr, redrawn only when the run reports (every batch)."""

    def __init__(
        self,
        console: Any,
        total: int,
        *,
        enabled: bool,
        prices: tuple[float, float] = (0.0, 0.0),
    ) -> None:
        self.enabled = enabled
        self.total = total
        self.prices = prices
        self._progress: Any = None
        self._task: Any = None
        if not enabled:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        # No auto-refresh thread: it would compete with the run for the GIL.
        # Narrow columns: the whole line fits about 90 characters.
        self._progress = Progress(
            BarColumn(bar_width=10),
            MofNCompleteColumn(),
            TextColumn("{task.fields[rate]:>6,.0f} steps/s"),
            TextColumn("{task.fields[sps]:.2f} samples/step"),
            TextColumn("{task.fields[flags]:,} flagged"),
            TextColumn("{task.fields[spend]}"),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            auto_refresh=False,
            transient=False,
        )
        self._task = self._progress.add_task(
            "hanoi", total=total, rate=0.0, sps=0.0, flags=0, spend=""
        )

    def __enter__(self) -> ProgressBar:
        if self._progress is not None:
            self._progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.refresh()
            self._progress.stop()

    def update(self, event: Any) -> None:
        if self._progress is None:
            return
        rate = event.session_steps / event.elapsed if event.elapsed > 0 else 0.0
        sps = event.samples / event.steps if event.steps else 0.0
        self._progress.update(
            self._task,
            completed=event.steps,
            rate=rate,
            sps=sps,
            flags=event.red_flagged,
            spend=self._spend(event),
        )
        self._progress.refresh()

    def _spend(self, event: Any) -> str:
        """`$spent / ~$projected` once prices are known (empty otherwise)."""
        price_in, price_out = self.prices
        if not (price_in or price_out):
            return ""
        spent = (
            getattr(event, "input_tokens", 0) * price_in
            + getattr(event, "output_tokens", 0) * price_out
        ) / 1e6
        projected = spent * self.total / event.steps if event.steps else 0.0
        return f"${spent:,.2f} / ~${projected:,.2f}"


def print_summary(console: Any, data: dict[str, Any]) -> None:
    """Print the run's report `data` as the few lines a reader checks first."""
    steps = data["steps"]
    wall = data["wall_seconds"]
    rate = steps / wall if wall > 0 else math.nan
    flags = ", ".join(f"{reason} {n:,}" for reason, n in data["red_flags"].items()) or "none"
    rounds = ", ".join(f"{r}: {n:,}" for r, n in data["rounds_histogram"].items())
    console.print(
        f"steps: {fmt_int(steps)} of {fmt_int(data['total_steps'])} in {wall:,.1f} s "
        f"({rate:,.0f} steps/s), peak RSS {data['peak_rss_mb']:,.0f} MB"
    )
    console.print(
        f"samples: {fmt_int(data['samples'])} ({data['samples_per_step']:.4f} per step), "
        f"valid {fmt_int(data['valid_samples'])}, red-flagged {fmt_int(data['red_flagged'])} "
        f"({flags}); most in one step: {data['max_samples_in_step']}"
    )
    console.print(f"rounds per step: {rounds or '-'}")
    failures = data.get("provider_failures") or {}
    if failures:
        shown = ", ".join(f"{kind} {n:,}" for kind, n in sorted(failures.items()))
        console.print(f"provider failures (retried, never votes): {shown}")
    console.print(
        f"tokens: {fmt_int(data['input_tokens'])} in, {fmt_int(data['output_tokens'])} out"
        + (f", cost {data['cost']:.4f}" if data["cost"] else "")
        + (
            f" (projected for all steps: {data['projected_cost']:.4f})"
            if data["cost"] and data.get("projected_cost") and data["steps"] < data["total_steps"]
            else ""
        )
    )
    console.print(
        f"solved: {'true' if data['solved'] else 'false'}, errors: {data['errors']}",
        markup=False,
    )
