"""`maker-graph hanoi --no-eager-replacement` switches off `VotePolicy.eager_replacement`
(on by default): the policy the run gets says so."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

import maker_graph.run
from maker_graph.cli import app, load_commands


@pytest.mark.parametrize(("flags", "expected"), [((), True), (("--no-eager-replacement",), False)])
def test_the_flag_reaches_the_runs_policy(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: tuple[str, ...], expected: bool
) -> None:
    seen: list[Any] = []
    real = maker_graph.run.run_task_sync

    def recording(task: Any, sampler: Any, policy: Any, **kwargs: Any) -> Any:
        seen.append(policy)
        return real(task, sampler, policy, **kwargs)

    monkeypatch.setattr(maker_graph.run, "run_task_sync", recording)
    load_commands()
    result = CliRunner().invoke(
        app,
        ["hanoi", "--disks", "3", "--run-dir", str(tmp_path / "run"), "--no-progress", *flags],
    )
    assert result.exit_code == 0, result.output
    assert "solved: true" in result.output
    assert [policy.eager_replacement for policy in seen] == [expected]
