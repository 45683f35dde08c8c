"""The MAKER paper's plots for a run and for a pilot estimate (matplotlib, PNG and SVG).

From a run (its run log):

- `undecided`: steps still undecided after each round and after each sample
  drawn, on a log scale (the paper's Fig. 8: it falls exponentially once the
  first k samples are in);
- `samples_per_step`: the histogram of samples drawn per step;
- `red_flags`: red-flagged samples by reason along the run.

From an estimate (`maker-graph estimate --json`):

- `error_vs_length`: error rate against output tokens (Fig. 9a);
- `collisions_vs_cap`: steps with two wrong samples against the length cap (Fig. 9b);
- `p_full_vs_k`: the chance of solving the whole task against the margin k;
- `cost_vs_steps`: expected cost (or samples) against task length, with the
  planned point marked (the paper's Fig. 4 style).

matplotlib is an optional extra (`pip install 'maker-graph[plots]'`); it runs
on the non-interactive Agg backend, so no display is needed.

Example:
    >>> import tempfile
    >>> from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
    >>> from maker_graph.run import run_task_sync
    >>> task, where = HanoiTask(5), tempfile.mkdtemp()
    >>> _ = run_task_sync(task, simulated_sampler(task), run_log=where)
    >>> paths = plot_run(where, formats=("png",))
    >>> sorted(p.name for p in paths)
    ['red_flags.png', 'samples_per_step.png', 'undecided.png']
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ._plot_estimate import plot_estimate
from ._plot_kit import COLOURS, FORMATS, check_formats, pyplot, save
from .errors import ConfigurationError

__all__ = [
    "RunSeries",
    "plot_estimate",
    "plot_run",
    "read_run_series",
]

# --------------------------------------------------------------------------- a run


@dataclass(kw_only=True)
class RunSeries:
    """The per-step numbers a run's plots need, read from its run log.

    Example:
        >>> s = RunSeries(task="t", k=2, samples=[2, 2, 4], rounds=[1, 1, 2],
        ...               red_flags=[{}, {}, {"too_long": 1}])
        >>> s.undecided_after_rounds()
        [3, 1, 0]
    """

    task: str
    """The task's name."""
    k: int
    """The voting margin (0 when the log does not say)."""
    samples: list[int] = field(default_factory=list)
    """Samples drawn per step, red-flagged ones included."""
    rounds: list[int] = field(default_factory=list)
    """Rounds of sampling per step."""
    red_flags: list[dict[str, int]] = field(default_factory=list)
    """Red-flagged samples per step, by reason."""
    params: dict[str, Any] = field(default_factory=dict)
    """The task's parameters."""
    model: str | None = None
    """The model the run was started with, if recorded."""

    @property
    def steps(self) -> int:
        return len(self.samples)

    def undecided_after_rounds(self) -> list[int]:
        """Steps still undecided after round r, for r = 0 (all steps) to the last round."""
        return _survival(self.rounds)

    def undecided_after_samples(self) -> list[int]:
        """Steps still undecided after n samples drawn, for n = 0 to the most drawn."""
        return _survival(self.samples)

    def reasons(self) -> list[str]:
        seen: dict[str, int] = {}
        for flags in self.red_flags:
            for reason, n in flags.items():
                seen[reason] = seen.get(reason, 0) + n
        return sorted(seen, key=lambda r: -seen[r])


def _survival(values: Sequence[int]) -> list[int]:
    """`out[x]` = how many values exceed x, for x = 0 .. max(values)."""
    top = max(values, default=0)
    counts = [0] * (top + 2)
    for v in values:
        counts[v] += 1
    out = []
    remaining = len(values)
    for x in range(top + 1):
        remaining -= counts[x]
        out.append(remaining)
    return out


def read_run_series(run_dir: str | Path) -> RunSeries:
    """Read the per-step records of the run in `run_dir` (read-only; a live run is fine).

    Raises:
        ConfigurationError: there is no run log there.
    """
    from .errors import RunLogError
    from .runlog import open_run_log

    try:
        log = open_run_log(str(run_dir), readonly=True)
    except RunLogError as exc:
        raise ConfigurationError(f"no run to plot in {run_dir}: {exc}") from None
    try:
        meta = log.meta()
        if meta is None:
            raise ConfigurationError(f"no run to plot in {run_dir}")
        series = RunSeries(
            task=meta.task,
            k=int(meta.settings.get("k", 0) or 0),
            params=dict(meta.params),
            model=meta.settings.get("model"),
        )
        for record in log.steps():
            series.samples.append(record.samples)
            series.rounds.append(record.rounds)
            series.red_flags.append(json.loads(record.red_flags) if record.red_flags else {})
        return series
    finally:
        log.close()


def _title(series: RunSeries) -> str:
    params = ", ".join(f"{k} {v}" for k, v in series.params.items())
    bits = [series.task + (f" ({params})" if params else ""), f"{series.steps:,} steps"]
    if series.k:
        bits.append(f"k = {series.k}")
    if series.model:
        model = str(series.model)
        bits.append(model if len(model) <= 32 else model[:31] + "\u2026")
    return ", ".join(bits)


def _plot_undecided(plt: Any, series: RunSeries) -> Any:
    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.6))
    by_round = series.undecided_after_rounds()
    xs = [x for x, n in enumerate(by_round) if n > 0]
    left.semilogy(xs, [by_round[x] for x in xs], "o-", color=COLOURS[0])
    left.set_xlabel("sampling round")
    left.set_ylabel("steps still undecided")
    left.set_title("after each round")
    left.xaxis.get_major_locator().set_params(integer=True)

    by_sample = series.undecided_after_samples()
    xs = [x for x, n in enumerate(by_sample) if n > 0]
    right.semilogy(xs, [by_sample[x] for x in xs], "o-", color=COLOURS[1], markersize=4)
    right.set_xlabel("samples drawn (votes and red-flagged)")
    right.set_title("after each sample")
    right.xaxis.get_major_locator().set_params(integer=True)
    if series.k:
        right.axvline(series.k, color="grey", linestyle=":", linewidth=1)
        right.annotate(
            f"k = {series.k}",
            (series.k, right.get_ylim()[1]),
            xytext=(3, -12),
            textcoords="offset points",
            color="grey",
        )
    fig.suptitle(f"Undecided steps - {_title(series)}")
    fig.tight_layout()
    return fig


def _plot_samples_histogram(plt: Any, series: RunSeries) -> Any:
    counts: dict[int, int] = {}
    for n in series.samples:
        counts[n] = counts.get(n, 0) + 1
    fig, ax = plt.subplots(figsize=(6, 3.6))
    xs = sorted(counts)
    ax.bar(xs, [counts[x] for x in xs], width=0.8, color=COLOURS[0])
    ax.set_yscale("log")
    ax.set_xlabel("samples drawn in the step")
    ax.set_ylabel("steps")
    ax.xaxis.get_major_locator().set_params(integer=True)
    mean = sum(series.samples) / series.steps if series.steps else 0.0
    ax.set_title(f"Samples per step (mean {mean:.3f}, max {max(xs, default=0)})")
    for x in xs:
        ax.annotate(
            f"{counts[x]:,}",
            (x, counts[x]),
            ha="center",
            va="bottom",
            fontsize=7,
            xytext=(0, 1),
            textcoords="offset points",
        )
    fig.suptitle(_title(series), fontsize=8, y=0.99)
    fig.tight_layout()
    return fig


def _plot_red_flags(plt: Any, series: RunSeries, windows: int = 50) -> Any:
    fig, ax = plt.subplots(figsize=(7, 3.6))
    steps = series.steps
    reasons = series.reasons()
    size = max(1, math.ceil(steps / windows))
    starts = list(range(0, steps, size))
    for i, reason in enumerate(reasons):
        per_window = []
        for start in starts:
            chunk = series.red_flags[start : start + size]
            per_window.append(1000 * sum(f.get(reason, 0) for f in chunk) / len(chunk))
        total = sum(f.get(reason, 0) for f in series.red_flags)
        mids = [s + min(size, steps - s) / 2 for s in starts]
        ax.plot(
            mids,
            per_window,
            "-",
            color=COLOURS[i % len(COLOURS)],
            label=f"{reason} ({total:,} in all)",
            drawstyle="steps-mid",
        )
    if not reasons:
        ax.text(
            0.5,
            0.5,
            "no red flags in this run",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
    else:
        ax.legend(loc="upper right", fontsize=8)
    ax.set_xlim(0, max(steps, 1))
    ax.set_ylim(bottom=0)
    ax.xaxis.set_major_formatter(_thousands())
    ax.set_xlabel("step")
    ax.set_ylabel(f"red flags per 1,000 steps\n(windows of {size:,} steps)")
    ax.set_title(f"Red flags by reason - {_title(series)}")
    fig.tight_layout()
    return fig


def _thousands() -> Any:
    from matplotlib.ticker import FuncFormatter

    return FuncFormatter(lambda x, _pos: f"{x:,.0f}")


def plot_run(
    run_dir: str | Path,
    out_dir: str | Path | None = None,
    *,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Draw a run's plots from its run log; returns the files written.

    Args:
        run_dir: the run directory (its `run.sqlite` is opened read-only).
        out_dir: where to write (default: `RUN_DIR/plots`).
        formats: file formats, among `png`, `svg`, `pdf`.

    Raises:
        ConfigurationError: no run there, no committed step, or matplotlib missing.
    """
    check_formats(formats)
    series = read_run_series(run_dir)
    if series.steps == 0:
        raise ConfigurationError(f"the run in {run_dir} has no committed step to plot yet")
    plt = pyplot()
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    paths = []
    paths += save(_plot_undecided(plt, series), out, "undecided", formats)
    paths += save(_plot_samples_histogram(plt, series), out, "samples_per_step", formats)
    paths += save(_plot_red_flags(plt, series), out, "red_flags", formats)
    return paths
