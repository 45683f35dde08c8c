"""The CLI variant of test_budget_crash.py (issue 14): `--max-total-samples` against a real
OpenAI-compatible server, the CLI killed four times mid-run and resumed each time.

Before reservations, a killed session's decided-but-uncommitted steps were drawn again
for free: the server served well past the budget while the report said exactly the
budget. Now every sample is reserved in the run log before it is requested, so the
server never serves more than the budget, and the report counts at least what was
served (at most the calls in flight at each kill more: reserved, never sent).
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from openai_stub import OpenAIStub, StubBehaviour, hanoi_oracle

from maker_graph.tasks.hanoi import HanoiTask

DISKS = 6  # 63 steps: far more than the budget buys
BUDGET = 60
KILLS = 4
CONCURRENCY = 2  # k = 2: a round is two calls, so at most two in flight at a kill


def _cli(args: list[str], cwd: Path, out: Path) -> subprocess.Popen[bytes]:
    with out.open("wb") as sink:
        return subprocess.Popen(
            [sys.executable, "-m", "maker_graph", *args],
            cwd=cwd,
            stdout=sink,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )


@pytest.mark.slow  # ~15-25 s: five CLI starts, each importing the OpenAI client
@pytest.mark.timeout(300)
def test_sample_budget_holds_across_four_kills(tmp_path: Path) -> None:
    task = HanoiTask(DISKS)
    oracle, wrong = hanoi_oracle(task)
    behaviour = StubBehaviour(
        wrong_rate=0.0,
        ramble_rate=0.0,
        malformed_rate=0.0,
        rate_limit_rate=0.0,
        server_error_rate=0.0,
        latency=0.03,
        seed=1,
    )
    stub = OpenAIStub(oracle, wrong, behaviour).start()
    rng = random.Random(14)
    run_dir = tmp_path / "run"
    try:
        args = [
            "hanoi",
            "--disks",
            str(DISKS),
            "--k",
            "2",
            "--model",
            "openai:stub-hanoi",
            "--base-url",
            stub.base_url,
            "--concurrency",
            str(CONCURRENCY),
            "--samples-per-request",
            "1",
            "--max-total-samples",
            str(BUDGET),
            "--run-dir",
            str(run_dir),
            "--no-progress",
        ]
        killed = 0
        for i in range(KILLS):
            proc = _cli([*args, "--resume"], tmp_path, tmp_path / f"s{i}.out")
            try:
                # Kill once this session has had a few answers served, at a random moment.
                target = stub.stats["choices"] + rng.randrange(3, 9)
                deadline = time.monotonic() + 120
                while stub.stats["choices"] < target and proc.poll() is None:
                    assert time.monotonic() < deadline, "the session never reached its target"
                    time.sleep(0.005)
                time.sleep(rng.uniform(0.0, 0.05))
                if proc.poll() is None:
                    proc.send_signal(signal.SIGKILL)
                    killed += 1
                proc.wait(timeout=30)
            finally:
                if proc.poll() is None:
                    proc.kill()
                    proc.wait(timeout=30)
        assert killed == KILLS, [(tmp_path / f"s{i}.out").read_text()[-500:] for i in range(KILLS)]
        final = subprocess.run(
            [
                sys.executable,
                "-m",
                "maker_graph",
                *args,
                "--resume",
                "--report",
                str(tmp_path / "report.json"),
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
        served = stub.stats["choices"]
    finally:
        stub.stop()
    assert final.returncode == 1 and "--max-total-samples" in final.stderr, final
    report = json.loads((tmp_path / "report.json").read_text())
    # The budget holds against what the provider really served...
    assert served <= BUDGET, (served, report["samples"])
    # ...and the report hides nothing that was served: it may count, per kill, the
    # calls that were reserved but never reached the server, and no more.
    assert served <= report["samples"] <= BUDGET, (served, report["samples"])
    assert report["samples"] - served <= KILLS * CONCURRENCY, (served, report["samples"])
