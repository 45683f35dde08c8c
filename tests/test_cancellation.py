"""Cancellation: cancelling `vote_step` or `run_task` (asyncio cancel, Ctrl-C in the CLI)
leaves no orphan tasks or provider calls, commits every decided step, and says how to resume.
"""

from __future__ import annotations

import asyncio
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from crash_harness import PACED_MODEL, cli, committed, run_cli

from maker_graph.errors import RunLogError
from maker_graph.records import RawSample
from maker_graph.run import count_errors, run_task
from maker_graph.runlog import open_run_log
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy, vote_step


class Tracked:
    """A sampler whose calls can hang; counts calls started, finished and cancelled."""

    def __init__(self, inner: Any = None, delay: float = 0.0, hang_from_step: int | None = None):
        self.inner = inner
        self.delay = delay
        self.hang_from_step = hang_from_step
        self.started = self.finished = self.cancelled = 0
        self.progress = asyncio.Event()

    async def until(self, condition: Any, timeout: float = 30.0) -> None:
        """Wait (bounded) until `condition()` holds; re-checked whenever a call starts."""
        async with asyncio.timeout(timeout):
            while not condition():
                self.progress.clear()
                await self.progress.wait()

    async def sample(self, step_input: Any, index: int) -> RawSample:
        self.started += 1
        self.progress.set()
        try:
            step = getattr(step_input, "step", 0)
            if self.hang_from_step is not None and step >= self.hang_from_step:
                await asyncio.sleep(3600)
            if self.delay:
                await asyncio.sleep(self.delay)
            raw = (
                await self.inner.sample(step_input, index)
                if self.inner is not None
                else RawSample(output="a", text="a")
            )
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        finally:
            self.finished += 1
        return raw  # type: ignore[no-any-return]


def others() -> set[asyncio.Task[Any]]:
    return asyncio.all_tasks() - {asyncio.current_task()}  # type: ignore[operator]


async def test_cancelling_vote_step_cancels_every_sample_in_flight() -> None:
    sampler = Tracked(hang_from_step=0)
    task = asyncio.create_task(vote_step(sampler, "q", k=4))
    await sampler.until(lambda: sampler.started == 4)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert others() == set()  # no orphan tasks
    assert sampler.started == sampler.finished == sampler.cancelled == 4


async def test_cancelling_vote_step_with_a_concurrency_limit() -> None:
    sampler = Tracked(hang_from_step=0)
    task = asyncio.create_task(vote_step(sampler, "q", policy=VotePolicy(k=5, max_concurrency=2)))
    await sampler.until(lambda: sampler.started == 2)
    await asyncio.sleep(0.01)
    assert sampler.started == 2  # the rest wait on the semaphore, never called
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await asyncio.sleep(0)
    assert others() == set()
    assert sampler.started == sampler.finished == 2


async def test_cancelling_run_task_commits_every_decided_step(tmp_path: Path) -> None:
    task = HanoiTask(8)
    sampler = Tracked(
        simulated_sampler(task, ErrorModel(error_rate=0.01, seed=1)), hang_from_step=100
    )
    decided: list[int] = []
    run = asyncio.create_task(
        run_task(
            task,
            sampler,
            VotePolicy(k=3),
            run_log=tmp_path,
            on_step=lambda step, result: decided.append(step),
        )
    )
    await sampler.until(lambda: sampler.started - sampler.finished == 3)  # step 100 hangs
    run.cancel()
    with pytest.raises(asyncio.CancelledError):
        await run
    await asyncio.sleep(0)
    assert others() == set()
    assert sampler.started == sampler.finished
    # Every decided step was committed, the undecided one was not.
    assert decided == list(range(100))
    with open_run_log(tmp_path, readonly=True) as log:
        checkpoint = log.checkpoint()
        assert checkpoint is not None and checkpoint.next_step == 100 and not checkpoint.done
        assert log.verify() == 100
    # Resuming decides the rest, each step once.
    report = await run_task(
        task,
        simulated_sampler(task, ErrorModel(error_rate=0.01, seed=1)),
        VotePolicy(k=3),
        run_log=tmp_path,
    )
    assert report.done and report.resumed_from == 100
    with open_run_log(tmp_path, readonly=True) as log:
        records = list(log.steps())
    assert [r.step for r in records] == list(range(255))
    assert count_errors(task, records) == 0


def drawn_beyond_committed(store: str) -> tuple[int, int]:
    """(committed steps, samples reserved beyond those the committed steps hold).

    The paced model has no instant path, so the run reserves every sample in its log
    before asking for it: the excess over the committed steps' samples is what the
    session drew since its last batch (decided steps and the step in progress)."""
    try:
        log = open_run_log(store, readonly=True)
    except RunLogError:
        return 0, 0
    try:
        cp = log.checkpoint()
        if cp is None:
            return 0, 0
        return cp.next_step, log.reserved() - int(cp.totals["samples"])
    finally:
        log.close()


MAX_PER_STEP = 20  # the step in progress holds at most this many of the excess samples
CTRL_C_DISKS = 10  # 1,023 paced steps, each sample a durable reservation: seconds, not 0.1 s


def test_ctrl_c_in_the_cli_saves_and_says_how_to_resume(tmp_path: Path) -> None:
    run_dir = tmp_path / "run"
    # Paced (>= 0.5 ms a call, so >= 4 s for the run on any machine) and interrupted on
    # what the log shows, not after a sleep: once more than MAX_PER_STEP samples were
    # drawn past the last batch, at least one decided step is not yet committed.
    args = [
        "hanoi",
        "--disks",
        str(CTRL_C_DISKS),
        "--run-dir",
        str(run_dir),
        "--no-progress",
        "--model",
        PACED_MODEL,
        "--max-samples-per-step",
        str(MAX_PER_STEP),
    ]
    proc = cli(args, tmp_path, tmp_path, "interrupted")
    try:
        deadline = time.monotonic() + 60
        seen, excess = drawn_beyond_committed(str(run_dir))
        while not (seen > 0 and excess > MAX_PER_STEP) and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before it could be interrupted"
            time.sleep(0.005)
            seen, excess = drawn_beyond_committed(str(run_dir))
        assert seen > 0 and excess > MAX_PER_STEP, (seen, excess)  # got there, not timed out
        proc.send_signal(signal.SIGINT)
        code = proc.wait(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    err = (tmp_path / "interrupted.err").read_text()
    out = (tmp_path / "interrupted.out").read_text()
    assert code == 130, err
    assert (
        "interrupted: every decided step is saved; resume with: maker-graph hanoi "
        f"--disks {CTRL_C_DISKS} --run-dir {run_dir} --resume"
    ) in err
    assert "Traceback" not in err
    assert "solved: false, errors: 0" in out  # the summary of what was done so far
    saved = committed(str(run_dir))
    # The steps decided since the last batch were saved.
    assert 0 < seen < saved < 2**CTRL_C_DISKS - 1
    # The rest unpaced (a resume may change the model, not k): the pacing was for the kill.
    unpaced = list(args)
    unpaced[unpaced.index(PACED_MODEL)] = "simulated"
    resumed = run_cli([*unpaced, "--resume"], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "solved: true, errors: 0" in resumed.stdout
    with open_run_log(str(run_dir), readonly=True) as log:
        assert [r.step for r in log.steps()] == list(range(2**CTRL_C_DISKS - 1))


def test_a_stopped_run_without_a_run_directory_keeps_it_and_says_how_to_resume(
    tmp_path: Path,
) -> None:
    env = {**os.environ, "TMPDIR": str(tmp_path)}
    stopped = subprocess.run(
        [
            sys.executable,
            "-m",
            "maker_graph",
            "hanoi",
            "--disks",
            "8",
            "--no-progress",
            "--max-total-samples",
            "100",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert stopped.returncode == 1
    command = stopped.stderr.strip().splitlines()[-1].split("To resume: ", 1)[1]
    args = shlex.split(command)
    assert args[:2] == ["maker-graph", "hanoi"] and args[-1] == "--resume"
    resumed = run_cli(args[1:], tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming the run in" in resumed.stdout
    assert "solved: true, errors: 0" in resumed.stdout


def test_ctrl_c_during_a_sync_graph_invoke_stops_its_background_work(tmp_path: Path) -> None:
    """Sync graph nodes run the engine on a background loop; Ctrl-C in the caller must
    cancel that work too (no orphan calling providers or writing the log), and the
    loop must keep serving later calls."""
    from maker_graph.graph import create_decomposition_graph

    task = HanoiTask(9)
    good = simulated_sampler(task, ErrorModel(error_rate=0.01, seed=4))
    sampler = Tracked(good, hang_from_step=300)
    graph = create_decomposition_graph(task, sampler, chunk=100, run_log=str(tmp_path)).compile()

    def interrupt_when_hanging() -> None:
        deadline = time.monotonic() + 30
        while sampler.started - sampler.finished < 3 and time.monotonic() < deadline:
            time.sleep(0.005)
        os.kill(os.getpid(), signal.SIGINT)  # what Ctrl-C does

    # A shell starts background jobs with SIGINT ignored, and Python keeps it so: make
    # Ctrl-C raise KeyboardInterrupt here, as it does in a terminal.
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    watcher = threading.Thread(target=interrupt_when_hanging)
    watcher.start()
    try:
        with pytest.raises(KeyboardInterrupt):
            graph.invoke({})
    finally:
        watcher.join(timeout=60)
        signal.signal(signal.SIGINT, previous)
    assert sampler.started == sampler.finished and sampler.cancelled == 3
    assert committed(str(tmp_path)) == 300  # the decided steps were committed
    resumed = create_decomposition_graph(task, good, chunk=100, run_log=str(tmp_path)).compile()
    out = resumed.invoke({})
    assert out["done"] and out["step"] == 511
    with open_run_log(str(tmp_path), readonly=True) as log:
        assert [r.step for r in log.steps()] == list(range(511))
