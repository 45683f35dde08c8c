"""Long addition (one column a step): its truth adds up, its parser is strict, and
`maker-graph estimate` measures it like Hanoi (any registered TaskWithTruth)."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from maker_graph.estimate import EstimateOptions, estimate_sync, pick_steps
from maker_graph.tasks.addition import LongAdditionTask, simulated_sampler
from maker_graph.tasks.base import TaskWithTruth
from maker_graph.testing import ErrorModel


def test_true_steps_spell_the_sum() -> None:
    task = LongAdditionTask(60, seed=4)
    assert isinstance(task, TaskWithTruth)
    state, previous, digits = task.initial_state(), None, []
    while not task.is_done(state):
        answer = task.true_step(state, previous)
        assert task.parse(task.format_answer(answer)) == answer
        digits.append(answer.action[1])
        state, previous = answer.next_state, answer.action
    total = int(str(state[1]) + "".join(map(str, reversed(digits))))
    assert total == task.total()
    # state_at jumps where replaying would walk: both give the same steps.
    jumped = pick_steps(task, 20, seed=1)
    assert all(task.state_at(s.step)[0] == s.state for s in jumped)


@pytest.mark.parametrize(
    "bad",
    [
        "digit = 3, carry = 1",
        "column = 1, digit = 12, carry = 0",
        "column = 1, digit = 3, carry = 2",
        "3",
        "",
    ],
)
def test_parser_is_strict(bad: str) -> None:
    with pytest.raises(ValueError):
        LongAdditionTask(3).parse(bad)


def test_estimate_measures_a_stuck_share_on_addition() -> None:
    task = LongAdditionTask(3000, seed=0)
    errors = ErrorModel(error_rate=0.05, hard_fraction=0.03, hard_error_rate=1.0, seed=2)
    report = estimate_sync(
        task, [("sim", simulated_sampler(task, errors), None)], EstimateOptions(steps=1000)
    )
    m = report.models[0]
    assert m.correlation is not None and m.correlation.detected
    # 1,000 steps x 3 %: the share within 4 binomial s.e.
    assert abs(m.correlation.h - 0.03) <= 4 * (0.03 * 0.97 / 1000) ** 0.5
    assert m.plan is not None and m.plan.k_min is None


def test_cli_estimates_any_registered_task() -> None:
    from maker_graph.cli import app, load_commands

    load_commands()
    runner = CliRunner()
    ok = runner.invoke(
        app,
        [
            "estimate",
            "long_addition",
            "--task-param",
            "digits=500",
            "--steps",
            "200",
            "--model",
            "simulated:0.05",
        ],
    )
    assert ok.exit_code == 0, ok.output
    assert "long_addition (digits 500, seed 0): 500 steps" in ok.output
    bad = runner.invoke(app, ["estimate", "long_addition", "--task-param", "width=3"])
    assert bad.exit_code != 0 and "accepted: digits, seed" in bad.output
    unknown = runner.invoke(app, ["estimate", "sudoku"])
    assert unknown.exit_code != 0 and "long_addition" in unknown.output
