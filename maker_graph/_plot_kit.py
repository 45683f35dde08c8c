"""What every figure shares: matplotlib on the Agg backend, the palette, saving, formats."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .errors import ConfigurationError

FORMATS = ("png", "svg")
"""File formats written by default: PNG for docs, SVG for papers."""

COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf")
"""One colour per model or reason, in order."""


def pyplot() -> Any:
    """matplotlib's pyplot on the Agg backend with the house style, or a ConfigurationError."""
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


def save(fig: Any, out_dir: Path, name: str, formats: Sequence[str]) -> list[Path]:
    """Write `fig` as `out_dir/name.FORMAT` for each format, close it, return the paths."""
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


def check_formats(formats: Sequence[str]) -> None:
    """Refuse an empty list or a format other than png, svg, pdf."""
    bad = [f for f in formats if f not in ("png", "svg", "pdf")]
    if bad or not formats:
        raise ConfigurationError(f"plot formats must be among png, svg, pdf; got {list(formats)}")
