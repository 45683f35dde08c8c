"""The figures of a pilot estimate: error against length, collisions, P(full) and cost.

`maker_graph.plots` re-exports `plot_estimate`.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from ._plot_kit import COLOURS, FORMATS, check_formats, pyplot, save

_MIN_BIN = 5
"""Bins with fewer samples are left out of the error-vs-length plot."""


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
        colour = COLOURS[i % len(COLOURS)]
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
        colour = COLOURS[i % len(COLOURS)]
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
        colour = COLOURS[i % len(COLOURS)]
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
        colour = COLOURS[i % len(COLOURS)]
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

    check_formats(formats)
    if isinstance(report, (str, Path)):
        report = load_estimate(report)
    plt = pyplot()
    out = Path(out_dir)
    paths = []
    paths += save(_plot_error_vs_length(plt, report), out, "error_vs_length", formats)
    paths += save(_plot_collisions(plt, report), out, "collisions_vs_cap", formats)
    paths += save(_plot_p_full(plt, report), out, "p_full_vs_k", formats)
    paths += save(_plot_cost(plt, report), out, "cost_vs_steps", formats)
    return paths
