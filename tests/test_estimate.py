"""Pilot estimation: its numbers agree with the simulated models' known rates and the scaling laws.

Statistical checks use fixed seeds (so they are deterministic) and a stated
tolerance of 4 binomial (or Poisson) standard deviations around the rate the
simulated model was given: a correct implementation passes with any seed at
that width except about once in 15,000 draws, a wrong one (a rate off by a
factor, samples double-counted) fails by far more.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from openai_stub import OpenAIStub, StubBehaviour, hanoi_oracle
from typer.testing import CliRunner

from maker_graph.costs import Price
from maker_graph.errors import ConfigurationError
from maker_graph.estimate import (
    EstimateOptions,
    EstimateReport,
    SampleRecord,
    estimate_sync,
    load_estimate,
    pick_steps,
    replan,
    summarise,
)
from maker_graph.providers import ProviderOptions, resolve_chat_model
from maker_graph.sampling import ChatModelSampler, TemperatureSchedule
from maker_graph.scaling import k_min, plan
from maker_graph.tasks.hanoi import HanoiTask, simulated_chat_model, simulated_sampler
from maker_graph.testing import ErrorModel


def _within(observed: float, rate: float, n: int, sigmas: float = 4.0) -> bool:
    return abs(observed - rate) <= sigmas * math.sqrt(rate * (1 - rate) / n)


def _one(
    task: HanoiTask, errors: ErrorModel, options: EstimateOptions, price: Price | None = None
) -> EstimateReport:
    return estimate_sync(task, [("sim", simulated_sampler(task, errors), price)], options)


# --------------------------------------------------------------------------- steps


def test_pick_steps_are_distinct_sorted_and_true() -> None:
    task = HanoiTask(6)
    chosen = pick_steps(task, 20, seed=3)
    assert [s.step for s in chosen] == sorted({s.step for s in chosen}) and len(chosen) == 20
    # Replay the truth independently and compare each chosen state.
    state, previous = task.initial_state(), None
    by_step = {s.step: s for s in chosen}
    for step in range(task.total_steps):
        truth = task.true_step(state, previous)
        if step in by_step:
            assert by_step[step].state == state and by_step[step].previous_action == previous
            assert by_step[step].truth == truth
        state, previous = truth.next_state, truth.action
    assert [s.step for s in pick_steps(task, 10_000)] == list(range(63))  # fewer steps: all
    with pytest.raises(ConfigurationError, match="TaskWithTruth"):
        pick_steps(object(), 5, total_steps=10)


def test_options_are_checked() -> None:
    for bad in (
        {"steps": 0},
        {"samples_per_step": 0},
        {"target": 1.0},
        {"concurrency": 0},
        {"max_output_tokens": 0},
        {"task_steps": 0},
    ):
        with pytest.raises(ConfigurationError):
            EstimateOptions(**bad)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- the numbers


def test_p_and_plan_agree_with_the_error_rate_and_the_scaling_laws() -> None:
    task = HanoiTask(12)
    errors = ErrorModel(error_rate=0.04, seed=11)
    price = Price(input=0.4, output=1.6)
    report = _one(task, errors, EstimateOptions(steps=2000, seed=5), price)
    m = report.models[0]
    assert m.samples == 4000 and report.pilot_steps == 2000 and report.task_steps == 4095
    assert m.v == 1.0 and m.valid == 4000
    assert _within(m.p, 0.96, m.valid)
    assert m.p_low < 0.96 < m.p_high
    # The plan is exactly the scaling law's, at the measured p, v and tokens.
    expected = plan(
        m.p,
        4095,
        target=0.95,
        v=m.v,
        price_in=0.4,
        price_out=1.6,
        tokens_in=m.mean_input_tokens,
        tokens_out=m.mean_output_tokens,
    )
    assert m.plan is not None
    assert m.plan.k_min == expected.k_min == k_min(0.96, 4095, target=0.95)
    assert m.plan.p_full == pytest.approx(expected.p_full, rel=1e-12)
    assert m.plan.total_samples == pytest.approx(expected.total_samples, rel=1e-12)
    assert m.plan.total_cost == pytest.approx(expected.total_cost, rel=1e-12)
    assert m.cost_per_sample == pytest.approx(price.cost(m.mean_input_tokens, m.mean_output_tokens))
    # Tokens are what the simulated model reports: the prompt's count in, the answer out.
    assert m.mean_input_tokens > 300 and 20 < m.mean_output_tokens < 120


def test_red_flags_length_and_error_by_length() -> None:
    task = HanoiTask(10)
    errors = ErrorModel(
        error_rate=0.02,
        malformed_rate=0.03,
        ramble_rate=0.05,
        ramble_tokens=1200,
        ramble_error_rate=0.5,
        seed=2,
    )
    report = _one(task, errors, EstimateOptions(steps=1023, samples_per_step=4, seed=1))
    m = report.models[0]
    n = m.samples
    assert n == 4092
    # v: malformed answers and over-long rambles (1200 > the 750 cap) are discarded.
    assert _within(1 - m.v, 0.03 + 0.97 * 0.05, n)
    assert set(m.red_flags) == {"parse_error", "too_long"}
    assert m.red_flags["parse_error"] + m.red_flags["too_long"] == n - m.valid
    assert _within(m.p, 0.98, m.valid)
    # Error rate against length: short answers err at 2 %, the long ones at ~50 %.
    long_bins = [b for b in m.length_bins if b.low >= 1000]
    short_bins = [b for b in m.length_bins if b.high is not None and b.high <= 200]
    # Malformed rambles are long too, but the parser flags them first.
    long_n = sum(b.samples - b.malformed for b in long_bins)
    long_wrong = sum(b.wrong for b in long_bins)
    assert long_n == m.red_flags["too_long"]
    assert _within(long_wrong / long_n, 0.5, long_n)
    short_parsed = sum(b.samples - b.malformed for b in short_bins)
    assert _within(sum(b.wrong for b in short_bins) / short_parsed, 0.02, short_parsed)
    # Without the length cap the rambles vote, and p drops towards 0.95 * 0.98 + 0.05 * 0.5.
    uncapped = m.at_cap(None, task_steps=report.task_steps)
    assert uncapped.v > m.v and uncapped.p < m.p
    assert _within(uncapped.p, 0.95 * 0.98 + 0.05 * 0.5, uncapped.valid)


def test_collisions_match_independence_and_reveal_correlated_errors() -> None:
    task = HanoiTask(12)
    options = EstimateOptions(steps=3000, seed=4)
    independent = _one(task, ErrorModel(error_rate=0.08, seed=3), options).models[0]
    # Independent errors: collisions are Poisson around N q^2 (one rival: all the same).
    exp = independent.expected_collisions
    assert exp == pytest.approx(3000 * (1 - independent.p) ** 2, rel=1e-9)
    assert abs(independent.collisions - exp) <= 4 * math.sqrt(exp) + 1
    assert independent.same_answer_collisions == independent.collisions

    correlated = _one(
        task,
        ErrorModel(error_rate=0.02, hard_fraction=0.25, hard_error_rate=0.6, seed=3),
        options,
    ).models[0]
    # 25 % hard steps both wrong with probability 0.6 ** 2, the rest at 0.02 ** 2: ~271
    # same-answer collisions, +-66 (4 Poisson SDs). Sized so a hard error rate of 0.45
    # (~153) or 0.75 (~422) falls outside that band: the count measures the rate, not
    # just "more than independence". Independent errors at the same overall rate give
    # ~82 (`expected_collisions`); the observed count must lie more than 4 of that
    # model's SDs above it, i.e. the estimate reveals the correlation.
    same = correlated.same_answer_collisions
    correlated_rate = 0.25 * 0.6**2 + 0.75 * 0.02**2
    assert abs(same - 3000 * correlated_rate) <= 4 * math.sqrt(3000 * correlated_rate)
    independent_exp = correlated.expected_collisions
    assert same > independent_exp + 4 * math.sqrt(independent_exp)


def test_collisions_fall_with_a_tighter_length_cap() -> None:
    task = HanoiTask(12)
    errors = ErrorModel(error_rate=0.01, ramble_rate=0.1, ramble_error_rate=0.9, seed=6)
    steps, per_step = 3000, 3
    m = _one(task, errors, EstimateOptions(steps=steps, samples_per_step=per_step, seed=2)).models[
        0
    ]
    by_cap = {c.cap: c for c in m.collisions_by_cap}
    assert m.samples == steps * per_step

    def p_collision(q: float) -> float:
        """P(at least two of a step's three samples are wrong), each wrong with q."""
        return 3 * q * q * (1 - q) + q**3

    # No cap: rambles (10 %, wrong 90 %) vote, q = 0.9 * 0.01 + 0.1 * 0.9 = 0.099:
    # 2.75 % of steps collide, +-1.2 % (4 SE); at a ramble error of 0.5 it would be 1 %.
    assert by_cap[None].v == 1.0
    assert _within(by_cap[None].collisions / steps, p_collision(0.099), steps)
    # Cap 750 flags every ramble (1,200 tokens): v = 0.9, and only three short answers
    # (each wrong at 1 %) collide: 0.03 % of steps, expected 0.8 of 3,000.
    assert _within(by_cap[750].v, 0.9, steps * per_step)
    p_short = 0.9**3 * p_collision(0.01) + 3 * 0.9**2 * 0.1 * 0.01**2
    assert by_cap[750].collisions <= steps * p_short + 4 * math.sqrt(steps * p_short) + 1


def test_models_sorted_by_cost_and_unplannable_last() -> None:
    task = HanoiTask(10)
    models = [
        (
            "weak-cheap",
            simulated_sampler(task, ErrorModel(error_rate=0.1, seed=1)),
            Price(input=0.1, output=0.4),
        ),
        (
            "hopeless",
            simulated_sampler(task, ErrorModel(error_rate=0.6, seed=2)),
            Price(input=0.01, output=0.01),
        ),
        (
            "strong-dear",
            simulated_sampler(task, ErrorModel(error_rate=0.002, seed=3)),
            Price(input=2.0, output=8.0),
        ),
        (
            "strong-cheap",
            simulated_sampler(task, ErrorModel(error_rate=0.002, seed=4)),
            Price(input=0.4, output=1.6),
        ),
    ]
    report = estimate_sync(task, models, EstimateOptions(steps=400))
    names = [m.model for m in report.models]
    assert names[-1] == "hopeless"
    assert report.models[-1].plan is None and "0.5" in (report.models[-1].note or "")
    costs = [m.plan.total_cost for m in report.models[:-1] if m.plan is not None]
    assert costs == sorted(costs) and len(costs) == 3
    assert names.index("strong-cheap") < names.index("strong-dear")


def test_no_error_seen_plans_with_the_lower_bound() -> None:
    task = HanoiTask(8)
    m = _one(task, ErrorModel(error_rate=0.0), EstimateOptions(steps=200)).models[0]
    assert m.p == 1.0 and m.plan is not None
    assert m.plan.p_used == m.p_low < 1.0
    assert "lower end" in (m.note or "")
    cautious = _one(task, ErrorModel(error_rate=0.05), EstimateOptions(steps=200, cautious=True))
    row = cautious.models[0]
    assert row.plan is not None and row.plan.p_used == row.p_low


def test_summarise_without_valid_samples() -> None:
    records = [SampleRecord(step=i, index=0, outcome="malformed") for i in range(5)]
    m = summarise("broken", records, cap=750, price=None, task_steps=100)
    assert m.p is None and m.plan is None and m.v == 0.0
    assert "no valid sample" in (m.note or "")


def test_report_round_trip_and_replan(tmp_path: Path) -> None:
    task = HanoiTask(10)
    report = _one(
        task,
        ErrorModel(error_rate=0.03, seed=1),
        EstimateOptions(steps=300),
        Price(input=0.4, output=1.6),
    )
    path = tmp_path / "est.json"
    report.save(path)
    loaded = load_estimate(path)
    assert loaded == report
    longer = replan(loaded, task_steps=1_000_000, target=0.99)
    m, m2 = report.models[0], longer.models[0]
    assert m2.p == m.p and m2.plan is not None and m.plan is not None
    assert m2.plan.steps == 1_000_000 and m2.plan.k_min > m.plan.k_min
    assert m2.plan.k_min == k_min(m.p, 1_000_000, target=0.99)
    free = replan(loaded, price=Price(input=0, output=0))
    assert free.models[0].plan is not None and free.models[0].plan.total_cost == 0.0

    (tmp_path / "bad.json").write_text(json.dumps({"task": "x"}))
    with pytest.raises(ConfigurationError, match="not an estimate"):
        load_estimate(tmp_path / "bad.json")
    with pytest.raises(ConfigurationError, match="cannot read"):
        load_estimate(tmp_path / "missing.json")


# --------------------------------------------------------------------------- chat models


def test_estimate_through_the_simulated_chat_model() -> None:
    task = HanoiTask(8)
    chat = simulated_chat_model(task, ErrorModel(error_rate=0.05, seed=9))
    schedule = TemperatureSchedule(first=0.1, rest=0.1)
    sampler = ChatModelSampler(chat, prompt=task.prompt, temperature=schedule)
    m = estimate_sync(task, [("chat", sampler, None)], EstimateOptions(steps=255)).models[0]
    assert m.samples == 510
    assert _within(m.p, 0.95, m.valid)
    assert m.mean_input_tokens > 300  # from usage_metadata


@pytest.mark.timeout(120)
def test_estimate_through_chatopenai_and_the_stub() -> None:
    task = HanoiTask(8)
    oracle, wrong = hanoi_oracle(task)
    behaviour = StubBehaviour(
        wrong_rate=0.1,
        ramble_rate=0.0,
        malformed_rate=0.05,
        rate_limit_rate=0.03,
        server_error_rate=0.0,
        retry_after=0.01,
        seed=1,
        script=("rate_limited",),
    )
    stub = OpenAIStub(oracle, wrong, behaviour)
    stub.start()
    try:
        model = resolve_chat_model(
            "openai:stub",
            ProviderOptions(
                base_url=stub.base_url, max_retries=6, requests_per_second=200, timeout=10
            ),
        )
        sampler = ChatModelSampler(model, prompt=task.prompt)
        m = estimate_sync(
            task,
            [("stub", sampler, Price(input=1, output=1))],
            EstimateOptions(steps=100, concurrency=8),
        ).models[0]
    finally:
        stub.stop()
    answered = stub.stats["correct"] + stub.stats["wrong"] + stub.stats["malformed"]
    assert m.samples == answered == 200 and m.gave_up == 0
    assert stub.stats["rate_limited"] >= 1  # retried by the client, never a sample
    assert m.red_flags == {"parse_error": stub.stats["malformed"]}
    assert m.correct == stub.stats["correct"]
    assert sum(r.input_tokens for r in m.records) == stub.usage["prompt_tokens"]
    assert sum(r.output_tokens for r in m.records) == stub.usage["completion_tokens"]


# --------------------------------------------------------------------------- CLI


def test_estimate_and_plan_cli(tmp_path: Path) -> None:
    from maker_graph.cli import app, load_commands

    load_commands()
    runner = CliRunner()
    path = tmp_path / "est.json"
    result = runner.invoke(
        app,
        [
            "estimate",
            "hanoi",
            "--disks",
            "10",
            "--model",
            "simulated:0.05",
            "--model",
            "simulated:0.005",
            "--steps",
            "300",
            "--price-in",
            "0.4",
            "--price-out",
            "1.6",
            "--json",
            str(path),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "k_min" in result.output and "collisions" in result.output
    report = load_estimate(path)
    assert [m.model for m in report.models] == ["simulated:0.005", "simulated:0.05"]
    assert report.models[0].plan is not None and report.models[0].price_in == 0.4

    planned = runner.invoke(app, ["plan", "--estimate", str(path), "--steps", "1000000"])
    assert planned.exit_code == 0, planned.output
    assert "1,000,000 steps" in planned.output and "simulated:0.005" in planned.output
    as_json = runner.invoke(app, ["plan", "--estimate", str(path), "--json"])
    data = json.loads(as_json.output)
    assert data["models"][0]["plan"]["k_min"] == report.models[0].plan.k_min
    # Without --target the plan keeps the estimate's own target; with it, the new one.
    relaxed = tmp_path / "est-0.9.json"
    relaxed.write_text(json.dumps({**json.loads(path.read_text()), "target": 0.9}))
    kept = runner.invoke(app, ["plan", "--estimate", str(relaxed), "--json"])
    assert json.loads(kept.output)["target"] == 0.9
    stricter = runner.invoke(app, ["plan", "--estimate", str(path), "--json", "--target", "0.999"])
    assert json.loads(stricter.output)["target"] == 0.999

    for args, needle in (
        (["estimate", "chess"], "unknown task"),
        (["estimate", "hanoi", "--steps", "0"], "--steps"),
        (["estimate", "hanoi", "--error-rate", "0.7"], "--error-rate"),
        (["estimate", "hanoi", "--model", "simulated:colour=1"], "NAME=VALUE"),
        (["plan", "--estimate", str(tmp_path / "nope.json")], "cannot read"),
        (["plan"], "--estimate"),
    ):
        bad = runner.invoke(app, args)
        assert bad.exit_code == 2, (args, bad.output)
        assert needle in bad.output and "Traceback" not in bad.output


@pytest.mark.timeout(120)
def test_estimate_cli_against_the_stub(tmp_path: Path) -> None:
    from maker_graph.cli import app, load_commands

    load_commands()
    task = HanoiTask(6)
    oracle, wrong = hanoi_oracle(task)
    behaviour = StubBehaviour(
        wrong_rate=0.05,
        ramble_rate=0.1,
        ramble_tokens=300,
        malformed_rate=0.0,
        rate_limit_rate=0.0,
        server_error_rate=0.0,
        seed=2,
        script=("ramble",),
    )
    stub = OpenAIStub(oracle, wrong, behaviour)
    stub.start()
    try:
        result = CliRunner().invoke(
            app,
            [
                "estimate",
                "hanoi",
                "--disks",
                "6",
                "--steps",
                "30",
                "--model",
                "stub=openai:stub",
                "--base-url",
                stub.base_url,
                "--requests-per-second",
                "100",
                "--max-tokens",
                "100",
                "--price-in",
                "1",
                "--price-out",
                "2",
                "--json",
                str(tmp_path / "e.json"),
            ],
        )
    finally:
        stub.stop()
    assert result.exit_code == 0, result.output
    m = load_estimate(tmp_path / "e.json").models[0]
    assert m.model == "stub" and m.samples == 60 == stub.stats["requests"]
    # Rambles came back cut at the 100-token call cap with finish_reason "length".
    assert (
        m.red_flags.get("parse_error", 0) + m.red_flags.get("truncated", 0)
        == (stub.stats["truncated"])
        >= 1
    )
    assert sum(r.input_tokens for r in m.records) == stub.usage["prompt_tokens"]
