"""`maker-graph hanoi --resume` keeps the prompt rotation and eager replacement the run was
started with (issue 14: a resume must not silently change what the run means), and a
resume that changes them explicitly is recorded as a segment of the stored settings."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import maker_graph.cli.hanoi
import maker_graph.run
from maker_graph.cli import app, load_commands
from maker_graph.runlog import open_run_log


def _record(monkeypatch: pytest.MonkeyPatch) -> list[tuple[bool, bool]]:
    """(rotate, eager_replacement) of every run the command starts."""
    seen: list[tuple[bool, bool]] = []
    rotations: list[bool] = []
    real_choose, real_run = maker_graph.cli.hanoi.choose_sampler, maker_graph.run.run_task_sync

    def choose(*args: Any, rotate: bool = False, **kwargs: Any) -> Any:
        rotations.append(rotate)
        return real_choose(*args, rotate=rotate, **kwargs)

    def run(task: Any, sampler: Any, policy: Any, **kwargs: Any) -> Any:
        seen.append((rotations[-1], policy.eager_replacement))
        return real_run(task, sampler, policy, **kwargs)

    monkeypatch.setattr(maker_graph.cli.hanoi, "choose_sampler", choose)
    monkeypatch.setattr(maker_graph.run, "run_task_sync", run)
    return seen


def _hanoi(run_dir: Path, *flags: str) -> Any:
    load_commands()
    base = ["hanoi", "--disks", "3", "--model", "simulated-chat", "--run-dir", str(run_dir)]
    return CliRunner().invoke(app, [*base, "--no-progress", "--k", "1", *flags])


def _settings(run_dir: Path) -> dict[str, Any]:
    log = open_run_log(str(run_dir), readonly=True)
    try:
        meta = log.meta()
        assert meta is not None
        return dict(meta.settings)
    finally:
        log.close()


def test_resume_keeps_prompt_rotation_and_eager_replacement(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _record(monkeypatch)
    run_dir = tmp_path / "run"
    first = _hanoi(
        run_dir, "--prompt-rotation", "--no-eager-replacement", "--max-total-samples", "3"
    )
    assert first.exit_code == 1, first.output  # the budget stopped it after 3 steps
    stored = _settings(run_dir)
    assert (stored["prompt_rotation"], stored["eager_replacement"]) == (True, False)

    resumed = _hanoi(run_dir, "--resume")
    assert resumed.exit_code == 0, resumed.output
    assert "solved: true" in resumed.output
    assert seen == [(True, False), (True, False)]
    assert "segments" not in _settings(run_dir)  # nothing changed


def test_an_explicit_change_on_resume_is_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _record(monkeypatch)
    run_dir = tmp_path / "run"
    assert _hanoi(run_dir, "--prompt-rotation", "--max-total-samples", "3").exit_code == 1
    resumed = _hanoi(run_dir, "--resume", "--no-prompt-rotation")
    assert resumed.exit_code == 0, resumed.output
    assert seen == [(True, True), (False, True)]
    stored = _settings(run_dir)
    assert stored["prompt_rotation"] is False
    assert stored["segments"] == [{"from_step": 3, "changed": {"prompt_rotation": False}}]
