"""Plots: every figure of a run and of an estimate is written, in PNG and SVG, and is not empty."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from maker_graph.costs import Price
from maker_graph.errors import ConfigurationError
from maker_graph.estimate import EstimateOptions, estimate_sync
from maker_graph.plots import RunSeries, plot_estimate, plot_run, read_run_series
from maker_graph.red_flags import max_output_tokens
from maker_graph.run import run_task_sync
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RUN_PLOTS = {"undecided", "samples_per_step", "red_flags"}
ESTIMATE_PLOTS = {"error_vs_length", "collisions_vs_cap", "p_full_vs_k", "cost_vs_steps"}


def _check_files(paths: list[Path], names: set[str], formats: tuple[str, ...]) -> None:
    assert {(p.stem, p.suffix[1:]) for p in paths} == {(n, f) for n in names for f in formats}
    for path in paths:
        data = path.read_bytes()
        assert len(data) > 5_000, path  # a real figure, not an empty canvas
        if path.suffix == ".png":
            assert data.startswith(PNG_MAGIC)
        if path.suffix == ".svg":
            assert b"<svg" in data[:2000] and b"</svg>" in data[-200:]


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    where = tmp_path_factory.mktemp("run")
    task = HanoiTask(10)
    errors = ErrorModel(error_rate=0.03, ramble_rate=0.01, malformed_rate=0.01, seed=1)
    run_task_sync(
        task,
        simulated_sampler(task, errors),
        VotePolicy(k=3),
        run_log=str(where),
        red_flags=[max_output_tokens(750)],
        settings={"model": "simulated"},
    )
    return where


@pytest.fixture(scope="module")
def estimate_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    task = HanoiTask(12)
    models = [
        (
            "good",
            simulated_sampler(task, ErrorModel(error_rate=0.005, ramble_rate=0.02, seed=1)),
            Price(input=0.4, output=1.6),
        ),
        (
            "cheap",
            simulated_sampler(task, ErrorModel(error_rate=0.05, hard_fraction=0.02, seed=2)),
            Price(input=0.1, output=0.4),
        ),
    ]
    report = estimate_sync(task, models, EstimateOptions(steps=500))
    path = tmp_path_factory.mktemp("est") / "estimate.json"
    report.save(path)
    return path


def test_run_series_from_the_log(run_dir: Path) -> None:
    series = read_run_series(run_dir)
    assert series.steps == 1023 and series.k == 3 and series.model == "simulated"
    assert min(series.samples) >= 3 and len(series.rounds) == 1023
    after_rounds = series.undecided_after_rounds()
    assert after_rounds[0] == 1023 and after_rounds[-1] == 0
    assert after_rounds == sorted(after_rounds, reverse=True)
    assert series.undecided_after_samples()[:3] == [1023, 1023, 1023]  # k = 3 drawn at once
    assert set(series.reasons()) <= {"parse_error", "too_long"} and series.reasons()


def test_survival_counts() -> None:
    s = RunSeries(task="t", k=2, samples=[2, 2, 3, 5], rounds=[1, 1, 2, 3])
    assert s.undecided_after_samples() == [4, 4, 2, 1, 1, 0]
    assert s.undecided_after_rounds() == [4, 2, 1, 0]


def test_run_plots_written(run_dir: Path, tmp_path: Path) -> None:
    paths = plot_run(run_dir, tmp_path / "out")
    _check_files(paths, RUN_PLOTS, ("png", "svg"))
    default = plot_run(run_dir, formats=("png",))
    assert all(p.parent == run_dir / "plots" for p in default)


def test_estimate_plots_written(estimate_file: Path, tmp_path: Path) -> None:
    paths = plot_estimate(estimate_file, tmp_path / "est")
    _check_files(paths, ESTIMATE_PLOTS, ("png", "svg"))


def test_estimate_plots_without_prices_or_pairs(tmp_path: Path) -> None:
    task = HanoiTask(8)
    report = estimate_sync(
        task,
        [("only", simulated_sampler(task, ErrorModel(error_rate=0.02)), None)],
        EstimateOptions(steps=100, samples_per_step=1),
    )
    paths = plot_estimate(report, tmp_path, formats=("png",))
    _check_files(paths, ESTIMATE_PLOTS, ("png",))


def test_bad_inputs(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="no run"):
        plot_run(tmp_path)
    with pytest.raises(ConfigurationError, match="formats"):
        plot_run(tmp_path, formats=("gif",))


def test_plot_cli(run_dir: Path, estimate_file: Path, tmp_path: Path) -> None:
    from maker_graph.cli import app, load_commands

    load_commands()
    runner = CliRunner()
    result = runner.invoke(
        app, ["plot", "--run-dir", str(run_dir), "--out", str(tmp_path / "r"), "--format", "png"]
    )
    assert result.exit_code == 0, result.output
    assert sorted(Path(line).name for line in result.output.split()) == sorted(
        f"{n}.png" for n in RUN_PLOTS
    )
    # PNG only: SVG output is checked by test_estimate_plots_written; here the point is
    # the CLI's wiring and its default output folder (rendering both doubled the time).
    result = runner.invoke(app, ["plot", "--estimate", str(estimate_file), "--format", "png"])
    assert result.exit_code == 0, result.output
    written = estimate_file.with_name("estimate-plots")
    assert {p.stem for p in written.iterdir()} == ESTIMATE_PLOTS
    assert {p.suffix for p in written.iterdir()} == {".png"}
    for args in (
        [],
        ["--run-dir", str(run_dir), "--estimate", str(estimate_file)],
        ["--run-dir", str(tmp_path / "none")],
        ["--estimate", str(run_dir)],
        ["--run-dir", str(run_dir), "--format", "gif"],
    ):
        bad = runner.invoke(app, ["plot", *args])
        assert bad.exit_code == 2 and bad.output.startswith("error: "), (args, bad.output)
