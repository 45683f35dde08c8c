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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

__all__ = [
    "RunSeries",
    "plot_estimate",
    "plot_run",
    "read_run_series",
]

FORMATS = ("png", "svg")
"""File formats written by default: PNG for docs, SVG for papers."""

_MIN_BIN = 5
"""Bins with fewer samples are left out of the error-vs-length plot."""

_COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError:
        raise ConfigurationError(
            "plots need matplotlib: `pip install 'maker-graph[plots]'`"
        ) from None
    # Agg: files only, no display; must be chosen before pyplot is imported.
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    plt.rcParams.update(
        {
            "figure.dpi": 100,
            "savefig.dpi": 110,
            "axes.grid": True,
            "grid.alpha": 0.3,
            "axes.spines.top": False,
            "axes.spines.right": False,
            "font.size": 9,
            "svg.hashsalt": "maker-graph",  # reproducible SVG ids
        }
    )
    return plt


def _save(fig: Any, out_dir: Path, name: str, formats: Sequence[str]) -> list[Path]:
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for fmt in formats:
        path = out_dir / f"{name}.{fmt}"
        metadata = {"Date": None} if fmt == "svg" else {"Software": "maker-graph"}
        fig.savefig(path, format=fmt, bbox_inches="tight", metadata=metadata)
        paths.append(path)
    import matplotlib.pyplot as plt

    plt.close(fig)
    return paths


def _check_formats(formats: Sequence[str]) -> None:
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad or not formats:
        raise ConfigurationError(f"plot formats must be among png, svg, pdf; got {list(formats)}")


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
    left.semilogy(xs, [by_round[x] for x in xs], "o-", color=_COLOURS[0])
    left.set_xlabel("sampling round")
    left.set_ylabel("steps still undecided")
    left.set_title("after each round")
    left.xaxis.get_major_locator().set_params(integer=True)

    by_sample = series.undecided_after_samples()
    xs = [x for x, n in enumerate(by_sample) if n > 0]
    right.semilogy(xs, [by_sample[x] for x in xs], "o-", color=_COLOURS[1], markersize=4)
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
    ax.bar(xs, [counts[x] for x in xs], width=0.8, color=_COLOURS[0])
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
            color=_COLOURS[i % len(_COLOURS)],
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
    _check_formats(formats)
    series = read_run_series(run_dir)
    if series.steps == 0:
        raise ConfigurationError(f"the run in {run_dir} has no committed step to plot yet")
    plt = _pyplot()
    out = Path(out_dir) if out_dir is not None else Path(run_dir) / "plots"
    paths = []
    paths += _save(_plot_undecided(plt, series), out, "undecided", formats)
    paths += _save(_plot_samples_histogram(plt, series), out, "samples_per_step", formats)
    paths += _save(_plot_red_flags(plt, series), out, "red_flags", formats)
    return paths


# --------------------------------------------------------------------------- an estimate


def _plot_error_vs_length(plt: Any, report: Any) -> Any:
    fig, ax = plt.subplots(figsize=(6.5, 4))
    for i, m in enumerate(report.models):
        # A bin of a handful of samples (an empty answer, say) is noise, not a trend.
        bins = [b for b in m.length_bins if b.samples >= _MIN_BIN]
        if not bins:
            continue
        biggest = max(b.samples for b in bins)
        xs = [_bin_centre(b.low, b.high) for b in bins]
        ys = [100 * b.error_rate for b in bins]
        # Marker area grows with the bin's sample count: big dots are the reliable ones.
        sizes = [8 + 25 * math.log10(b.samples + 1) for b in bins]
        colour = _COLOURS[i % len(_COLOURS)]
        ax.plot(xs, ys, "-", color=colour, alpha=0.6)
        ax.scatter(xs, ys, s=sizes, color=colour, label=m.model, zorder=3)
        for x, y, b in zip(xs, ys, bins, strict=True):
            if b.samples < biggest:  # label the tails; the bulk is the big dot
                ax.annotate(
                    f"n={b.samples:,}",
                    (x, y),
                    xytext=(6, 2),
                    textcoords="offset points",
                    fontsize=7,
                    color=colour,
                )
    cap = report.max_output_tokens
    if cap is not None:
        ax.axvline(cap, color="grey", linestyle="--", linewidth=1)
        ax.annotate(
            f"red-flag cap {cap}",
            (cap, 0),
            xytext=(4, 6),
            textcoords="offset points",
            color="grey",
            fontsize=8,
        )
    ax.set_xscale("log")
    ax.set_ylim(0, max(ax.get_ylim()[1] * 1.12, 1.0))  # room for the labels above the dots
    ax.set_xlabel(
        f"output tokens of the answer (bin centre; bins of {_MIN_BIN}+ samples, "
        "dot area grows with the count)"
    )
    ax.set_ylabel("answers wrong or malformed (%)")
    ax.set_title("Error rate against answer length")
    ax.legend(fontsize=8, markerscale=0.6, loc="upper left")
    fig.tight_layout()
    return fig


def _bin_centre(low: int, high: int | None) -> float:
    if high is None:
        return low * 1.5
    return math.sqrt(max(low, 1) * high)


def _plot_collisions(plt: Any, report: Any) -> Any:
    fig, ax = plt.subplots(figsize=(8, 4))
    if report.samples_per_step < 2:
        ax.text(
            0.5,
            0.5,
            "one sample per step: no collisions to count;\nrerun the estimate "
            "with --samples-per-step 2",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
        ax.set_axis_off()
        ax.set_title("Collisions against the length cap")
        return fig
    # Caps that discard most answers say nothing about errors: only draw caps that keep
    # at least half of the samples.
    shown = {
        m.model: [c for c in m.collisions_by_cap if c.cap is None or c.v >= 0.5]
        for m in report.models
    }
    finite = [c.cap for cs in shown.values() for c in cs if c.cap is not None]
    right = max(finite, default=1000) * 2.5  # where "no cap" is drawn
    for i, m in enumerate(report.models):
        colour = _COLOURS[i % len(_COLOURS)]
        points = [(c.cap if c.cap is not None else right, c) for c in shown[m.model]]
        xs = [x for x, _ in points]
        ax.plot(
            xs, [c.collisions for _, c in points], "o-", color=colour, label=m.model, markersize=4
        )
        ax.plot(xs, [c.expected for _, c in points], ":", color=colour)
    ax.plot([], [], ":", color="grey", label="dotted: expected if errors were independent")
    cap = report.max_output_tokens
    if cap is not None:
        ax.axvline(cap, color="grey", linestyle="--", linewidth=1)
    ax.set_xscale("log")
    low = min(finite, default=50)
    nice = (25, 50, 100, 200, 500, 1000, 2000, 5000)
    ticks = sorted({*(t for t in nice if low <= t < right / 1.8), right})
    ax.set_xticks(ticks)
    ax.set_xticklabels([str(t) if t != right else "no cap" for t in ticks])
    ax.minorticks_off()
    top = max((c.collisions for cs in shown.values() for c in cs), default=0)
    if top > 20:
        # One bad model's hundreds of collisions would flatten everyone else's few.
        from matplotlib.ticker import ScalarFormatter

        ax.set_yscale("symlog", linthresh=1)
        ax.yaxis.set_major_formatter(ScalarFormatter())
        ax.set_ylim(0, top * 2)
    else:
        ax.set_ylim(0, max(ax.get_ylim()[1], 1.0))
    ax.set_xlabel("length red flag: answers above this many tokens discarded")
    ax.set_ylabel(f"steps with two wrong valid samples\n(of {report.pilot_steps:,} pilot steps)")
    if top <= 20:
        ax.yaxis.get_major_locator().set_params(integer=True)
    ax.set_title("Collisions against the length cap")
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0)
    fig.tight_layout()
    return fig


def _planned(m: Any) -> tuple[float, float] | None:
    """(p used by the plan, v) of a model, or None without a plan."""
    if m.plan is None:
        return None
    return m.plan.p_used, m.v


def _plot_p_full(plt: Any, report: Any) -> Any:
    from .scaling import p_full

    fig, ax = plt.subplots(figsize=(6.5, 4))
    ks_all: list[int] = []
    for i, m in enumerate(report.models):
        planned = _planned(m)
        if planned is None:
            continue
        p, _ = planned
        shown = m.plan.k_min if m.plan.k_min is not None else m.plan.independent_k_min or 1
        top = max(shown + 4, 8)
        ks = list(range(1, top + 1))
        ks_all += ks
        colour = _COLOURS[i % len(_COLOURS)]
        # The forecast under the measured correlation is the line; what independent errors
        # would promise is dotted beside it, only where the two differ.
        forecast = [m.forecast(k, report.task_steps).p_full for k in ks]
        independent = [p_full(p, k, report.task_steps) for k in ks]
        k_text = m.plan.k_min if m.plan.k_min is not None else "none reaches target"
        ax.plot(
            ks,
            forecast,
            "o-",
            color=colour,
            markersize=4,
            label=f"{m.model}: p = {p:.4f}, k_min = {k_text}",
        )
        if any(abs(a - b) > 1e-3 for a, b in zip(forecast, independent, strict=True)):
            ax.plot(
                ks,
                independent,
                ":",
                color=colour,
                linewidth=1,
                label=f"{m.model} if errors were independent",
            )
        if m.plan.k_min is not None:
            ax.plot(
                [m.plan.k_min],
                [m.plan.p_full],
                "o",
                markersize=11,
                markerfacecolor="none",
                markeredgecolor=colour,
                markeredgewidth=2,
            )
    ax.axhline(report.target, color="grey", linestyle="--", linewidth=1)
    ax.annotate(
        f"target {report.target:g}",
        (1.0, report.target),
        xytext=(-2, -12),
        xycoords=("axes fraction", "data"),
        textcoords="offset points",
        ha="right",
        color="grey",
        fontsize=8,
    )
    if not ks_all:
        ax.text(
            0.5,
            0.5,
            "no model with p > 0.5: nothing to plan",
            transform=ax.transAxes,
            ha="center",
            va="center",
            color="grey",
        )
    ax.set_ylim(-0.02, 1.02)
    ax.set_xlabel("margin k")
    ax.set_ylabel("P(whole task solved)")
    ax.set_title(f"Solving all {report.task_steps:,} steps against the margin (circled: k_min)")
    ax.xaxis.get_major_locator().set_params(integer=True)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def _plot_cost(plt: Any, report: Any) -> Any:
    from .scaling import plan

    fig, ax = plt.subplots(figsize=(6.5, 4))
    priced = all(m.plan is None or m.plan.total_cost is not None for m in report.models)
    top = max(report.task_steps * 10, 10_000)
    grid = sorted({*_log_grid(10, top, 60), report.task_steps})
    for i, m in enumerate(report.models):
        planned = _planned(m)
        if planned is None or m.plan.k_min is None:
            continue  # no margin reaches the target: there is no cost to draw
        p, v = planned
        colour = _COLOURS[i % len(_COLOURS)]
        ys = []
        if m.correlation is not None and m.correlation.detected:
            # Correlated: the forecast decides k at each length (None: unreachable there).
            for s in grid:
                k = next(
                    (k for k in range(1, 200) if (m.forecast(k, s).p_full or 0.0) >= report.target),
                    None,
                )
                if k is None:
                    ys.append(float("nan"))
                    continue
                drawn = m.forecast(k).samples_per_step * s
                ys.append(drawn * (m.cost_per_sample or 0.0) if priced else drawn)
            grid_ys = ys
        else:
            grid_ys = []
        for s in grid if not grid_ys else ():
            pl = plan(
                p,
                s,
                target=report.target,
                v=v,
                price_in=m.price_in or 0.0,
                price_out=m.price_out or 0.0,
                tokens_in=m.mean_input_tokens,
                tokens_out=m.mean_output_tokens,
            )
            ys.append(pl.total_cost if priced else pl.total_samples)
        chosen = m.plan.total_cost if priced else m.plan.total_samples
        label = f"${chosen:,.2f}" if priced else f"{chosen:,.0f} samples"
        ax.loglog(grid, ys, "-", color=colour, label=f"{m.model}: {label} at k = {m.plan.k_min}")
        ax.plot(
            [report.task_steps],
            [chosen],
            "*",
            markersize=13,
            color=colour,
            markeredgecolor="black",
            zorder=4,
        )
    ax.axvline(report.task_steps, color="grey", linestyle=":", linewidth=1)
    ax.annotate(
        f"this task: {report.task_steps:,} steps",
        (report.task_steps, 0),
        xytext=(-4, 6),
        xycoords=("data", "axes fraction"),
        textcoords="offset points",
        ha="right",
        color="grey",
        fontsize=8,
    )
    ax.set_xlabel("steps in the task")
    ax.set_ylabel("expected cost ($)" if priced else "expected samples")
    ax.set_title(
        "Expected "
        + ("cost" if priced else "samples")
        + f" against task length (target {report.target:g})"
    )
    ax.legend(fontsize=8, loc="upper left")
    fig.tight_layout()
    return fig


def _log_grid(low: float, high: float, n: int) -> Iterable[int]:
    a, b = math.log10(low), math.log10(high)
    return (int(round(10 ** (a + (b - a) * i / (n - 1)))) for i in range(n))


def plot_estimate(
    report: Any,
    out_dir: str | Path,
    *,
    formats: Sequence[str] = FORMATS,
) -> list[Path]:
    """Draw an estimate's plots; returns the files written.

    Args:
        report: an `EstimateReport`, or the path of an estimate JSON file.
        out_dir: where to write.
        formats: file formats, among `png`, `svg`, `pdf`.

    Raises:
        ConfigurationError: not an estimate, or matplotlib missing.
    """
    from .estimate import load_estimate

    _check_formats(formats)
    if isinstance(report, (str, Path)):
        report = load_estimate(report)
    plt = _pyplot()
    out = Path(out_dir)
    paths = []
    paths += _save(_plot_error_vs_length(plt, report), out, "error_vs_length", formats)
    paths += _save(_plot_collisions(plt, report), out, "collisions_vs_cap", formats)
    paths += _save(_plot_p_full(plt, report), out, "p_full_vs_k", formats)
    paths += _save(_plot_cost(plt, report), out, "cost_vs_steps", formats)
    return paths
