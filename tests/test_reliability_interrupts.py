"""Ctrl-C or SIGTERM at any moment of a command is one line and exit code 130 (issue 14).

Typer turns a KeyboardInterrupt out of a command body into a silent exit code 130: a
signal during a command's imports or model building (before its own handler) ended
with an empty stderr. These tests do not race the clock: the child blocks inside a
chosen import, tells the test through a marker file, and is signalled there.
"""

from __future__ import annotations

import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

# Runs `maker-graph ARGS...` and, the first time module BLOCK is imported, writes the
# marker and sleeps: the test's signal arrives inside that import.
CHILD = """
import importlib.abc, pathlib, sys, time

block, marker = sys.argv[1], pathlib.Path(sys.argv[2])

class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == block:
            sys.meta_path.remove(self)
            marker.write_text("blocked")
            time.sleep(60)  # bounded: the test kills the child after its own wait
        return None

sys.meta_path.insert(0, Block())
sys.argv = ["maker-graph", *sys.argv[3:]]
from maker_graph.cli import main
main()
"""


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on exit: connecting is refused


def _interrupt_inside_import(
    tmp_path: Path, block: str, args: list[str], signum: int = signal.SIGTERM
) -> tuple[int, str]:
    """Start the CLI, signal it once it is inside the import of `block`."""
    child = tmp_path / "child.py"
    child.write_text(CHILD)
    marker = tmp_path / f"blocked-{block}"
    marker.unlink(missing_ok=True)
    err = tmp_path / "stderr.txt"
    env = {**os.environ, "OPENAI_API_KEY": "test-key-not-used"}
    with err.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, str(child), block, str(marker), *args],
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            env=env,
            cwd=tmp_path,
        )
        try:
            deadline = time.monotonic() + 60
            while not marker.exists():
                assert proc.poll() is None, f"exited {proc.returncode}: {err.read_text()}"
                assert time.monotonic() < deadline, "the child never reached the import"
                time.sleep(0.01)
            proc.send_signal(signum)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait(timeout=30)
    return code, err.read_text()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["term", "int"])
def test_an_interrupt_while_a_command_imports_is_one_line(tmp_path: Path, signum: int) -> None:
    # `estimate` imports the task registry (maker_graph.config) before its own handler.
    args = [
        "estimate",
        "hanoi",
        "--disks",
        "3",
        "--model",
        "openai:gpt-4.1-mini",
        "--base-url",
        f"http://127.0.0.1:{_closed_port()}/v1",
        "--steps",
        "5",
    ]
    code, err = _interrupt_inside_import(tmp_path, "maker_graph.config", args, signum)
    assert code == 130, err
    assert err == "interrupted\n"


def test_an_interrupt_while_the_commands_load_is_one_line(tmp_path: Path) -> None:
    code, err = _interrupt_inside_import(
        tmp_path, "maker_graph.cli.plot", ["estimate", "hanoi", "--disks", "3", "--steps", "5"]
    )
    assert code == 130, err
    assert err == "interrupted\n"


def test_an_interrupt_while_a_resume_starts_prints_the_resume_command(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    started = subprocess.run(
        [sys.executable, "-m", "maker_graph", "hanoi", "--disks", "4", "--run-dir", str(run_dir)]
        + ["--k", "3", "--max-total-samples", "12", "--no-progress"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert started.returncode == 1 and "samples budget spent" in started.stderr, started.stderr
    # The resume is stopped while it imports the engine, before its run loop (and its
    # own `interrupted` message): main must still say how to continue.
    args = ["hanoi", "--disks", "4", "--run-dir", str(run_dir), "--resume", "--no-progress"]
    code, err = _interrupt_inside_import(tmp_path, "maker_graph.run", args)
    assert code == 130, err
    lines = err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("interrupted; resume with: "), err
    command = shlex.split(lines[0].removeprefix("interrupted; resume with: "))
    assert command[0] == "maker-graph"
    # The printed command works: it finishes the run from the committed steps.
    done = subprocess.run(
        [sys.executable, "-m", "maker_graph", *command[1:]],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "resuming the run in" in done.stdout
