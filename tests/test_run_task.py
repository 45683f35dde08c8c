"""`run_task`: the MAD loop end to end: zero errors on small runs, the run log's contents,
resume after `kill -9` at a random moment, cancellation, budgets, no-consensus stops."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from maker_graph.errors import (
    BudgetExhaustedError,
    ConfigurationError,
    NoConsensusError,
    RunLogError,
)
from maker_graph.records import RawSample, StepResult
from maker_graph.red_flags import max_output_tokens
from maker_graph.run import (
    ProgressEvent,
    RunReport,
    count_errors,
    report_from_log,
    run_task,
    run_task_sync,
)
from maker_graph.runlog import StepRecord, open_run_log
from maker_graph.tasks.base import StepAnswer
from maker_graph.tasks.hanoi import (
    HanoiStep,
    HanoiTask,
    apply_move,
    format_answer,
    legal_moves,
    optimal_moves,
    simulated_chat_model,
    simulated_sampler,
)
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy

# Noisy enough that every mechanism shows (contested votes, both red flags, hard steps),
# and k = 4 keeps the expected number of wrong steps in 8,191 below 0.02.
NOISY = ErrorModel(
    error_rate=0.02,
    hard_fraction=0.002,
    hard_error_rate=0.15,
    ramble_rate=0.02,
    malformed_rate=0.02,
    seed=11,
)
FLAGS = [max_output_tokens(750)]


def log_records(where: Path) -> list[StepRecord]:
    with open_run_log(where, readonly=True) as log:
        return list(log.steps())


# --------------------------------------------------------------------------- correctness


@pytest.mark.parametrize("n", [1, 2, 5, 8, 10])
async def test_small_runs_are_solved_with_zero_errors(n: int, tmp_path: Path) -> None:
    task = HanoiTask(n)
    report = await run_task(
        task,
        simulated_sampler(task, NOISY),
        VotePolicy(k=4),
        run_log=tmp_path,
        red_flags=FLAGS,
        chunk_size=64,
    )
    assert report.done and report.stopped == "done"
    assert report.steps == report.session_steps == task.total_steps
    assert report.final_state == [[], [], list(range(n, 0, -1))]
    records = log_records(tmp_path)
    assert [r.step for r in records] == list(range(task.total_steps))
    assert count_errors(task, records) == 0
    assert [json.loads(r.action) for r in records] == [list(m) for m in optimal_moves(n)]
    # The report's totals are the log's, step by step.
    assert report.samples == sum(r.samples for r in records)
    assert report.valid_samples == sum(r.valid for r in records)
    assert report.input_tokens == sum(r.input_tokens for r in records)
    assert report.output_tokens == sum(r.output_tokens for r in records)
    assert sum(report.rounds_histogram.values()) == task.total_steps
    assert report.max_samples_in_step == max(r.samples for r in records)
    assert report.red_flagged == report.samples - report.valid_samples
    assert sum(report.red_flags.values()) == report.red_flagged


async def test_records_carry_tally_red_flags_and_tokens(tmp_path: Path) -> None:
    task = HanoiTask(9)
    await run_task(
        task, simulated_sampler(task, NOISY), VotePolicy(k=3), run_log=tmp_path, red_flags=FLAGS
    )
    records = log_records(tmp_path)
    contested = [r for r in records if len(json.loads(r.tally)) > 1]
    flagged = [r for r in records if r.red_flags]
    assert contested and flagged
    for r in records:
        tally = json.loads(r.tally)
        assert tally[0] - max(tally[1:], default=0) >= 3  # the winner is first, k ahead
        assert sum(tally) == r.valid
        assert r.samples - r.valid == sum(json.loads(r.red_flags or "{}").values())
        assert r.decided_by == "vote" and r.rounds >= 1 and r.input_tokens > 0
    assert {reason for r in flagged for reason in json.loads(r.red_flags or "{}")} == {
        "parse_error",
        "too_long",
    }


async def test_count_errors_catches_a_wrong_committed_move(tmp_path: Path) -> None:
    task = HanoiTask(4)
    good = simulated_sampler(task, ErrorModel(error_rate=0.0))

    class WrongAtStep3:
        async def sample(self, step_input: HanoiStep, index: int) -> RawSample:
            if step_input.step == 3:
                state, previous = step_input.state, step_input.previous_move
                right = task.true_step(state, previous).action
                move = next(m for m in legal_moves(state) if m != right)
                text = format_answer(move, apply_move(state, move))
                return RawSample(text, text, 10, 10)
            return await good.sample(step_input, index)

    await run_task(task, WrongAtStep3(), VotePolicy(k=1), run_log=tmp_path, max_steps=6)
    records = log_records(tmp_path)
    assert len(records) == 6
    assert count_errors(task, records[:3]) == 0
    assert count_errors(task, records) >= 1
    # Off course, the run stops at the task's known length instead of wandering on.
    report = await run_task(task, WrongAtStep3(), VotePolicy(k=1), run_log=tmp_path)
    assert report.steps == task.total_steps
    assert not report.done and report.stopped == "max_steps"


async def test_the_no_wait_path_decides_exactly_as_awaiting(tmp_path: Path) -> None:
    # The simulated sampler offers `sample_now` (no latency, no failures), which the
    # voter calls directly; hiding it forces the awaited path. Both logs must agree.
    task = HanoiTask(9)
    fast = simulated_sampler(task, NOISY)
    assert fast.sample_now is not None

    class AwaitOnly:
        async def sample(self, step_input: HanoiStep, index: int) -> RawSample:
            return await fast.sample(step_input, index)

    await run_task(task, fast, VotePolicy(k=3), run_log=tmp_path / "fast", red_flags=FLAGS)
    await run_task(task, AwaitOnly(), VotePolicy(k=3), run_log=tmp_path / "slow", red_flags=FLAGS)
    assert log_records(tmp_path / "fast") == log_records(tmp_path / "slow")
    # Under a sample budget the counting wrapper keeps the fast path and counts it.
    report = await run_task(task, fast, VotePolicy(k=3), red_flags=FLAGS, max_total_samples=10**9)
    assert report.samples == sum(r.samples for r in log_records(tmp_path / "fast"))


async def test_run_without_a_log_and_with_a_chat_model() -> None:
    task = HanoiTask(4)
    model = simulated_chat_model(task, ErrorModel(error_rate=0.05, seed=2))
    report = await run_task(task, model, VotePolicy(k=2))  # a bare chat model gets the prompt
    assert report.done and report.steps == 15 and report.run_id is None
    assert report.final_state == [[], [], [4, 3, 2, 1]]


async def test_progress_events_and_on_step(tmp_path: Path) -> None:
    task = HanoiTask(8)
    events: list[ProgressEvent] = []
    seen: list[int] = []

    def on_step(step: int, result: StepResult) -> None:
        assert result.samples == []  # samples are never kept on the long-run path
        seen.append(step)

    await run_task(
        task,
        simulated_sampler(task),
        run_log=tmp_path,
        chunk_size=50,
        on_progress=events.append,
        on_step=on_step,
    )
    assert seen == list(range(255))
    assert events[0].steps == 0 and events[-1].steps == 255 == events[-1].committed
    assert [e.steps for e in events] == sorted(e.steps for e in events)
    assert all(e.total_steps == 255 for e in events)
    assert len(events) >= 255 // 50


async def test_max_steps_then_continue(tmp_path: Path) -> None:
    task = HanoiTask(7)
    sampler = simulated_sampler(task, NOISY)
    first = await run_task(task, sampler, run_log=tmp_path, max_steps=40, red_flags=FLAGS)
    assert (first.stopped, first.steps, first.done) == ("max_steps", 40, False)
    second = await run_task(task, sampler, run_log=tmp_path, red_flags=FLAGS)
    assert (second.resumed_from, second.session_steps, second.steps) == (40, 87, 127)
    assert second.done and count_errors(task, log_records(tmp_path)) == 0
    again = await run_task(task, sampler, run_log=tmp_path)  # finished: nothing to do
    assert again.done and again.session_steps == 0 and again.samples == second.samples
    assert report_from_log(str(tmp_path)).steps == 127


async def test_a_run_dir_of_another_task_is_refused(tmp_path: Path) -> None:
    await run_task(HanoiTask(3), simulated_sampler(HanoiTask(3)), run_log=tmp_path)
    with pytest.raises(RunLogError, match="parameters"):
        await run_task(HanoiTask(4), simulated_sampler(HanoiTask(4)), run_log=tmp_path)


@pytest.mark.parametrize(
    ("option", "match"),
    [
        ({"chunk_size": 0}, "chunk_size"),
        ({"commit_interval": -1}, "commit_interval"),
        ({"max_steps": -1}, "max_steps"),
        ({"concurrency": 0}, "concurrency"),
        ({"max_total_tokens": -5}, "max_total_tokens"),
        ({"max_total_cost": 1.0}, "price"),
    ],
)
async def test_bad_options_are_configuration_errors(option: dict[str, Any], match: str) -> None:
    task = HanoiTask(3)
    with pytest.raises(ConfigurationError, match=match):
        await run_task(task, simulated_sampler(task), **option)


async def test_sync_wrapper_refuses_a_running_loop() -> None:
    task = HanoiTask(2)
    with pytest.raises(RuntimeError, match="running event loop"):
        run_task_sync(task, simulated_sampler(task))


def test_report_to_dict_is_json() -> None:
    task = HanoiTask(5)
    report = run_task_sync(task, simulated_sampler(task, NOISY), red_flags=FLAGS)
    data = json.loads(json.dumps(report.to_dict()))
    assert data["steps"] == 31 and data["done"] is True
    assert set(data["rounds_histogram"]) <= {str(i) for i in range(1, 40)}
    assert isinstance(report, RunReport)


# --------------------------------------------------------------------------- resume after kill -9

# 4,095 steps (was 13 disks): kills land after 200-2,500 committed steps, so the child
# still has >= 1,595 steps to go when its 0-50 ms of grace ends; half the resume and
# reference work of 8,191 steps, the same guarantee (nothing redone, nothing lost).
KILL_DISKS = 12

CHILD = textwrap.dedent(
    """
    import sys
    from maker_graph.red_flags import max_output_tokens
    from maker_graph.run import run_task_sync
    from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
    from maker_graph.testing import ErrorModel
    from maker_graph.vote import VotePolicy

    errors = ErrorModel(error_rate=0.02, hard_fraction=0.002, hard_error_rate=0.15,
                        ramble_rate=0.02, malformed_rate=0.02, seed=11)
    task = HanoiTask(int(sys.argv[3]))
    run_task_sync(task, simulated_sampler(task, errors), VotePolicy(k=4), run_log=sys.argv[1],
                  red_flags=[max_output_tokens(750)], chunk_size=int(sys.argv[2]),
                  commit_interval=0.01)
    """
)


def committed(where: Path) -> int:
    try:
        with open_run_log(where, readonly=True) as log:
            cp = log.checkpoint()
            return 0 if cp is None else cp.next_step
    except RunLogError:
        return 0


def kill_child_at_a_random_moment(where: Path, rng: random.Random) -> None:
    """Start the run in a child, wait (bounded) until it committed a random number of
    steps, let it go on a random few milliseconds more, then SIGKILL it."""
    chunk = rng.choice([1, 7, 100, 500])
    threshold = rng.randrange(200, 2500)
    proc = subprocess.Popen([sys.executable, "-c", CHILD, str(where), str(chunk), str(KILL_DISKS)])
    try:
        deadline = time.monotonic() + 120
        while committed(where) < threshold:
            assert proc.poll() is None, "the child finished before it could be killed"
            assert time.monotonic() < deadline, "the child made no progress"
            time.sleep(0.01)
        time.sleep(rng.uniform(0.0, 0.05))  # land anywhere: mid-step, mid-commit
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    assert committed(where) >= threshold


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[StepRecord], RunReport]:
    """The same run, never interrupted."""
    where = tmp_path_factory.mktemp("reference")
    task = HanoiTask(KILL_DISKS)
    report = run_task_sync(
        task, simulated_sampler(task, NOISY), VotePolicy(k=4), run_log=where, red_flags=FLAGS
    )
    assert report.done
    return log_records(where), report


@pytest.mark.parametrize("seed", [1, 2, 3])
async def test_resume_after_sigkill_at_a_random_moment(
    seed: int, tmp_path: Path, reference: tuple[list[StepRecord], RunReport]
) -> None:
    kill_child_at_a_random_moment(tmp_path, random.Random(seed))
    done_before = committed(tmp_path)

    task = HanoiTask(KILL_DISKS)
    voted: list[int] = []
    report = await run_task(
        task,
        simulated_sampler(task, NOISY),
        VotePolicy(k=4),
        run_log=tmp_path,
        red_flags=FLAGS,
        on_step=lambda step, _: voted.append(step),
    )
    # No committed step was decided twice, none was lost.
    assert voted == list(range(done_before, task.total_steps))
    assert report.resumed_from == done_before and report.done
    ref_records, ref_report = reference
    assert log_records(tmp_path) == ref_records  # identical to a run never interrupted
    assert report.samples == ref_report.samples
    assert report.rounds_histogram == ref_report.rounds_histogram
    assert count_errors(task, ref_records) == 0


# --------------------------------------------------------------------------- cancellation


@pytest.mark.parametrize("latency", [0.0, 0.0005])
async def test_cancellation_commits_every_decided_step(tmp_path: Path, latency: float) -> None:
    # With no latency the simulated sampler answers without suspending (`sample_now`), so
    # the cancellation lands where the loop next yields (within 64 steps); with latency,
    # in the very next step. Either way every decided step is committed.
    task = HanoiTask(9)
    sampler = simulated_sampler(task, replace(NOISY, latency_median=latency))
    me: list[asyncio.Task[Any]] = []
    decided: list[int] = []

    def stop_at_300(step: int, result: StepResult) -> None:
        decided.append(step)
        if step == 300:
            me[0].cancel()

    run = asyncio.create_task(
        run_task(
            task,
            sampler,
            run_log=tmp_path,
            on_step=stop_at_300,
            chunk_size=1000,
            commit_interval=1e9,
            red_flags=FLAGS,
        )
    )
    me.append(run)
    with pytest.raises(asyncio.CancelledError):
        await run
    assert committed(tmp_path) == len(decided) == decided[-1] + 1
    assert 301 <= len(decided) <= 301 + 64
    if latency:
        assert len(decided) == 301
    report = await run_task(task, sampler, run_log=tmp_path, red_flags=FLAGS)
    assert report.resumed_from == len(decided) and report.done
    assert count_errors(task, log_records(tmp_path)) == 0


# --------------------------------------------------------------------------- budgets


@pytest.mark.parametrize(
    ("budget", "options", "flag"),
    [
        ("tokens", {"max_total_tokens": 200_000}, "max_total_tokens="),
        ("cost", {"max_total_cost": 0.05, "price_in": 0.4, "price_out": 1.6}, "max_total_cost="),
        ("samples", {"max_total_samples": 500}, "max_total_samples="),
    ],
)
async def test_a_spent_budget_stops_cleanly_and_the_run_resumes(
    tmp_path: Path, budget: str, options: dict[str, Any], flag: str
) -> None:
    task = HanoiTask(8)
    sampler = simulated_sampler(task, NOISY)
    with pytest.raises(BudgetExhaustedError) as info:
        await run_task(task, sampler, VotePolicy(k=3), run_log=tmp_path, red_flags=FLAGS, **options)
    err = info.value
    assert err.budget == budget and err.flag == flag
    assert f"{budget} budget spent" in str(err) and flag in str(err)
    assert 0 < err.steps_done is not None and err.steps_done < task.total_steps
    assert committed(tmp_path) == err.steps_done  # everything decided is saved
    on_disk = report_from_log(
        str(tmp_path),
        price_in=options.get("price_in", 0.0),
        price_out=options.get("price_out", 0.0),
    )
    spent = {
        "tokens": on_disk.input_tokens + on_disk.output_tokens,
        "cost": on_disk.cost,
        "samples": on_disk.samples,
    }[budget]
    assert spent == pytest.approx(err.spent)
    # Again with the same budget: it is a run budget, so it stops at once.
    with pytest.raises(BudgetExhaustedError):
        await run_task(task, sampler, VotePolicy(k=3), run_log=tmp_path, red_flags=FLAGS, **options)
    assert committed(tmp_path) == err.steps_done
    report = await run_task(task, sampler, VotePolicy(k=3), run_log=tmp_path, red_flags=FLAGS)
    assert report.done and count_errors(task, log_records(tmp_path)) == 0


async def test_budget_error_names_the_caller_flag() -> None:
    task = HanoiTask(6)
    with pytest.raises(BudgetExhaustedError, match="Raise it with --max-tokens and resume"):
        await run_task(
            task,
            simulated_sampler(task),
            max_total_tokens=1000,
            budget_flags={"tokens": "--max-tokens"},
        )


# --------------------------------------------------------------------------- no consensus


async def test_no_consensus_stops_after_committing_the_steps_before(tmp_path: Path) -> None:
    task = HanoiTask(5)
    good = simulated_sampler(task, ErrorModel(error_rate=0.0))

    billed = {"in": 0, "out": 0}

    class Split:
        """Two different well-formed answers, alternating, at step 6: no one gets ahead."""

        async def sample(self, step_input: HanoiStep, index: int) -> RawSample:
            raw = await good.sample(step_input, index)
            if step_input.step == 6 and index % 2:
                text = "move = [2, 0, 1]\nnext_state = [[5, 4, 3], [2], [1]]"
                raw = RawSample(text, text, 1, 1)
            billed["in"] += raw.input_tokens or 0
            billed["out"] += raw.output_tokens or 0
            return raw

    with pytest.raises(NoConsensusError) as info:
        await run_task(
            task, Split(), VotePolicy(k=3, max_samples=10), run_log=tmp_path, speculate=0
        )
    assert info.value.step == 6
    assert committed(tmp_path) == 6
    # a,b,a / b,a / b,a / b,a: 5-4 after 9, and 1 left cannot make 3 ahead.
    assert info.value.samples_drawn == 9 and info.value.stopped == "hopeless"
    # The undecided step's samples were billed: the log's totals count them.
    with open_run_log(tmp_path, readonly=True) as log:
        totals = log.checkpoint().totals  # type: ignore[union-attr]
    assert (totals["input_tokens"], totals["output_tokens"]) == (billed["in"], billed["out"])
    assert totals["samples"] == 6 * 3 + 9 and totals["uncommitted"] == 9
    # A plurality policy decides the step and goes on; the decision is recorded.
    report = await run_task(
        task,
        Split(),
        VotePolicy(k=3, max_samples=10, on_no_consensus="plurality"),
        run_log=tmp_path,
        max_steps=1,
    )
    assert report.decided_by == {"plurality": 1, "vote": 6}
    assert log_records(tmp_path)[6].decided_by == "plurality"


def test_step_answer_keys_need_not_be_hashable() -> None:
    from maker_graph.run import answer_key

    assert answer_key(StepAnswer((1, 0, 2), ((2,), (), (1,)))) == StepAnswer(
        (1, 0, 2), ((2,), (), (1,))
    )
    listy = StepAnswer([1, 0, 2], [[2], [], [1]])
    assert answer_key(listy) == listy.key()


def test_the_task_guide_example_runs_and_prints_what_it_says(
    capsys: pytest.CaptureFixture[str],
) -> None:
    import re

    guide = (Path(__file__).resolve().parents[1] / "docs" / "tasks.md").read_text()
    code = re.search(r"```python\n(.*?)```", guide, re.S)
    assert code, "docs/tasks.md lost its example"
    expected = re.search(r"# (\d+ True 0)$", code.group(1), re.M)
    assert expected
    exec(compile(code.group(1), "docs/tasks.md", "exec"), {})
    assert capsys.readouterr().out.strip() == expected.group(1)
