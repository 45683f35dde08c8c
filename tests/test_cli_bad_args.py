"""Bad command lines get one clear line, never a traceback; `maker-graph` writes only inside
its run directory (and the report path it is given)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from maker_graph.cli import main

# (arguments, what the one line must say). Exit code 2 unless stated in the third field.
BAD = [
    ("hanoi --disks -1", "--disks must be between 1 and 64"),
    ("hanoi --disks 65", "--disks must be between 1 and 64"),
    ("hanoi --disks 99999999999999999999999", "--disks must be between 1 and 64"),
    ("hanoi --disks abc", "Invalid value for '--disks'"),
    ("hanoi", "Missing option '--disks'"),
    ("hanoi --disks 3 --bogus", "No such option: --bogus"),
    ("hanoi --disks 3 --k 0", "--k must be >= 1"),
    ("hanoi --disks 3 --error-rate 0.5", "--error-rate must be in [0, 0.5)"),
    ("hanoi --disks 3 --error-rate -0.1", "--error-rate must be in [0, 0.5)"),
    ("hanoi --disks 3 --error-rate nan", "--error-rate must be in [0, 0.5)"),
    ("hanoi --disks 3 --max-total-samples -1", "--max-total-samples must be >= 0"),
    ("hanoi --disks 3 --max-samples-per-step 0", "--max-samples-per-step must be >= 1"),
    ("hanoi --disks 3 --k 3 --max-samples-per-step 2", "must be >= --k (3)"),
    ("hanoi --disks 3 --concurrency 0", "--concurrency must be >= 1"),
    ("hanoi --disks 3 --red-flag-tokens 0", "--red-flag-tokens must be >= 1"),
    ("hanoi --disks 3 --resume", "--resume needs --run-dir"),
    ("hanoi --disks 3 --run-dir x --resume --fresh", "pass only one"),
    ("hanoi --disks 3 --max-cost 1", "--max-cost needs --price-in"),
    ("hanoi --disks 3 --price-in -1", "--price-in must be >= 0"),
    ("hanoi --disks 3 --model simulated:2", "error_rate must be within [0, 1]"),
    ("hanoi --disks 3 --store redis://h/x", "unknown run log URL"),
    ("hanoi --disks 3 --store postgresql://127.0.0.1:1/db", "needs ?run_id=NAME"),
    ("hanoi --disks 3 --store postgresql://h/db?run_id=x&schema=a;b", "schema must be letters"),
    ("hanoi --disks 3 --store postgresql://127.0.0.1:1/db?run_id=x", "cannot connect to"),
    ("plan --steps 0 --p 0.99", "steps must be >= 1"),
    ("plan --steps 100 --p 1.5", "p must be in (0.5, 1]"),
    ("plan --steps 100 --p 0.4", "p must be in (0.5, 1]"),
    ("plan --steps 100 --p 0.99 --target 0", "--target must be in (0, 1)"),
    ("estimate hanoi --disks 0", "--disks must be between 1 and 64"),
    ("estimate hanoi --steps 0", "--steps must be >= 1"),
    ("estimate nosuch", "unknown task 'nosuch'"),
    ("log export --run-dir /nonexistent", "no run directory at /nonexistent"),
    ("log export --run-dir redis://x", "unknown run log URL"),
    ("log verify --run-dir /nonexistent", "no run directory at /nonexistent", 1),
    ("nosuch", "No such command 'nosuch'"),
]


@pytest.mark.parametrize("case", BAD, ids=[c[0] for c in BAD])
def test_a_bad_command_line_is_one_clear_line(
    case: tuple[str, ...],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    args, expected = case[0], case[1]
    code = int(case[2]) if len(case) > 2 else 2
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["maker-graph", *args.split()])
    with pytest.raises(SystemExit) as info:
        main()
    captured = capsys.readouterr()
    lines = captured.err.strip().splitlines()
    assert info.value.code == code, captured.err
    assert len(lines) == 1 and lines[0].startswith("error: "), captured.err
    assert expected in lines[0]
    assert "Traceback" not in captured.err + captured.out
    assert list(tmp_path.iterdir()) == []  # a refused command wrote nothing


def _tree(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*")}


def test_the_cli_writes_only_inside_its_run_directory(tmp_path: Path) -> None:
    cwd, home, tmp = tmp_path / "cwd", tmp_path / "home", tmp_path / "tmp"
    for d in (cwd, home, tmp):
        d.mkdir()
    env = {
        **os.environ,
        "HOME": str(home),
        "TMPDIR": str(tmp),
        "XDG_CACHE_HOME": str(home / ".cache"),
        "PYTHONDONTWRITEBYTECODE": "1",
    }
    env.pop("TIKTOKEN_CACHE_DIR", None)
    env.pop("DATA_GYM_CACHE_DIR", None)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        proc = subprocess.run(
            [sys.executable, "-m", "maker_graph", *args],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        return proc

    run(
        "hanoi",
        "--disks",
        "6",
        "--run-dir",
        "runs/a",
        "--report",
        "runs/a/report.json",
        "--no-progress",
    )
    run("log", "export", "--run-dir", "runs/a")
    run("log", "verify", "--run-dir", "runs/a")
    run("hanoi", "--disks", "4", "--no-progress")  # a temporary run directory, removed after
    written = _tree(cwd)
    assert written, "the run wrote nothing at all"
    assert all(p == "runs" or p.startswith("runs/a") for p in written), sorted(written)
    # Outside the run directory: only the per-user cache of tiktoken's offline token
    # files (written once; see maker_graph.tokens), and nothing left of the temporary run.
    assert all(p == ".cache" or p.startswith(".cache/maker_graph") for p in _tree(home)), sorted(
        _tree(home)
    )
    assert _tree(tmp) == set(), sorted(_tree(tmp))
