"""Hostile environment and input at the CLI (issue 14): SIGTERM stops a run like Ctrl-C,
`run --timeout` reaches every provider model, `--import` imports only what was named,
and hostile `--input` is one `error:` line."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash_harness import PACED_MODEL, cli, committed
from typer.testing import CliRunner

from maker_graph.cli import app, load_commands
from maker_graph.config import load_spec
from maker_graph.runlog import open_run_log

ROOT = Path(__file__).resolve().parents[1]
TRIAGE = ROOT / "examples" / "configs" / "triage.yaml"
load_commands()
runner = CliRunner()


def test_sigterm_commits_what_was_decided_and_prints_the_resume_command(
    tmp_path: Path,
) -> None:
    run_dir = tmp_path / "run"
    proc = cli(
        [
            "hanoi",
            "--disks",
            "12",
            "--run-dir",
            str(run_dir),
            "--no-progress",
            "--model",
            PACED_MODEL,
        ],
        tmp_path,
        tmp_path,
        "term",
    )
    try:
        deadline = time.monotonic() + 60
        while committed(str(run_dir)) < 300:
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.01)
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    err = (tmp_path / "term.err").read_text()
    assert proc.returncode == 130, err
    assert "interrupted: every decided step is saved; resume with:" in err
    assert "--resume" in err and "Traceback" not in err
    with open_run_log(str(run_dir), readonly=True) as log:
        checked = log.verify()  # consistent: every batch intact
        cp = log.checkpoint()
        assert cp is not None and checked == cp.next_step >= 300 and not cp.done
        # The final commit counted the samples of the step in flight.
        assert log.reserved() == 0 or log.reserved() == cp.totals["samples"]


def test_run_timeout_sets_every_provider_model_and_is_checked() -> None:
    from maker_graph.cli.config import _with_timeout

    spec = load_spec(
        {
            "name": "t",
            "state": {"q": "str", "a": "str"},
            "models": {
                "m": {"model": "openai:gpt-4.1-mini", "timeout": 600},
                "s": {
                    "model": "simulated",
                    "oracle": {"rules": [{"match": "a", "answer": "x"}], "default": "x"},
                },
            },
            "nodes": {"n": {"kind": "maker", "model": "m", "k": 1, "prompt": "{q}", "output": "a"}},
            "entry": "n",
            "finish": ["n"],
        }
    )
    changed = _with_timeout(spec, 7.5)
    assert changed.models["m"].timeout == 7.5
    assert changed.models["s"] == spec.models["s"]
    bad = runner.invoke(app, ["run", str(TRIAGE), "--input", '{"ticket": "x"}', "--timeout", "0"])
    assert bad.exit_code == 2 and bad.stderr.startswith("error: --timeout"), bad.stderr


def test_import_of_a_file_named_like_a_module_is_refused(tmp_path: Path) -> None:
    (tmp_path / "json.py").write_text("raise SystemExit('json.py was executed')\n")
    # `-P`: no working directory on the path from the interpreter itself, as with the
    # installed `maker-graph` script (`python -m` would import ./json.py at startup).
    done = subprocess.run(
        [
            sys.executable,
            "-P",
            "-m",
            "maker_graph",
            "run",
            str(TRIAGE),
            "--input",
            '{"ticket": "refund"}',
            "--import",
            "./json.py",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2, done
    assert done.stderr.startswith("error: --import ./json.py:") and "rename" in done.stderr


def test_import_by_name_does_not_leave_the_working_directory_on_the_path(
    tmp_path: Path,
) -> None:
    (tmp_path / "mycomponents.py").write_text("VALUE = 1\n")
    # A module of the same name as one the run loads later: it must never execute.
    (tmp_path / "tiktoken.py").write_text("raise SystemExit('tiktoken.py was executed')\n")
    script = (
        "import sys; from maker_graph.cli.config import _import; "
        "print(_import(['mycomponents'])); import tiktoken; print(tiktoken.__file__); "
        "print(any(p in ('', '.') for p in sys.path))"
    )
    # `-P`: the interpreter itself adds no working directory, as the
    # installed `maker-graph` script does not.
    done = subprocess.run(
        [sys.executable, "-P", "-c", script],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == "['mycomponents']"
    assert str(tmp_path) not in lines[1]  # the real tiktoken
    assert str(tmp_path) not in sys.path


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[" * 100_000 + "]" * 100_000, "error: --input"),
        ('{"ticket": ' + "9" * 5000 + "}", "error: --input"),
    ],
    ids=["100k-deep", "5000-digit-int"],
)
def test_hostile_input_is_one_error_line(tmp_path: Path, text: str, message: str) -> None:
    (tmp_path / "in.json").write_text(text)
    done = runner.invoke(app, ["run", str(TRIAGE), "--input", f"@{tmp_path / 'in.json'}"])
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.exit_code == 2 and len(lines) == 1 and lines[0].startswith(message), done.stderr
