"""`maker-graph estimate` against a provider that never answers fails with one line.

A closed loopback port refuses every call; before the check the command planned from
0 samples and exited 0, as if the pilot were a result (issue 14).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # closed on exit: connecting is refused


def test_estimate_with_an_unreachable_provider_fails_with_one_error_line(tmp_path: Path) -> None:
    port = _closed_port()
    env = {**os.environ, "OPENAI_API_KEY": "test-key-not-used"}
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "maker_graph",
            "estimate",
            "hanoi",
            "--disks",
            "3",
            "--steps",
            "3",
            "--model",
            "openai:gpt-4.1-mini",
            "--base-url",
            f"http://127.0.0.1:{port}/v1",
            "--max-retries",
            "0",
            "--json",
            str(tmp_path / "estimate.json"),
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=tmp_path,
        timeout=120,
    )
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 1, (proc.returncode, proc.stdout, proc.stderr)
    assert len(errors) == 1, proc.stderr
    assert "no sample came back from" in errors[0] and "gpt-4.1-mini" in errors[0]
    assert "Traceback" not in proc.stderr
