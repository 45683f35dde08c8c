"""Long multiplication by recursive decomposition: notation, checks, simulated agents, evidence.

The evidence test runs 200 random 6x6-digit products with every role wrong on
5 % of its calls, k = 3, and compares what it measures, node by node and
sample by sample, with what `maker_graph.recursive.predict` (built on
`maker_graph.scaling`) forecasts. It prints the numbers.
"""

from __future__ import annotations

import asyncio
import json
import math
import random
import statistics
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from maker_graph.cli import app, load_commands
from maker_graph.recursive import (
    DecomposeInput,
    Decomposer,
    Decomposition,
    Discriminator,
    MemoryTreeRecorder,
    RecursionPolicy,
    Role,
    SolveInput,
    load_events,
)
from maker_graph.recursive.predict import RoleRates, forecast_tree, forecast_vote
from maker_graph.recursive.render import render_text
from maker_graph.tasks.multiplication import (
    Multiplier,
    RoleErrors,
    audit,
    canonical_split,
    check_product,
    check_split,
    evaluate_composition,
    multiplication_roles,
    parse_composition,
    parse_problem,
    problem_text,
    simulated_models,
    true_split,
    wrong_split,
)
from maker_graph.testing import ErrorModel, ScriptedSampler
from maker_graph.vote import VotePolicy

# --------------------------------------------------------------------------- notation and checks


def test_notation_round_trips() -> None:
    assert parse_problem(problem_text(12, 345)) == ("12", "345")
    assert parse_problem(" 007 * 8 ") == ("007", "8")
    assert parse_composition("#2*10**4 + #1", 2) == [(1, 4), (0, 0)]
    assert evaluate_composition("#1 * 10^3 + #2", [123, 456]) == 123456
    for bad in ("#1 * 10^3", "#1 + #1", "#1 - #2", "#1 * 2 + #2", "#3 + #1"):
        with pytest.raises(ValueError):
            parse_composition(bad, 2)
    with pytest.raises(ValueError):
        parse_problem("12 × -3")


@settings(max_examples=200, deadline=None)
@given(st.integers(0, 10**14), st.integers(0, 10**14))
def test_the_believed_split_is_exact_and_passes_the_checks(a: int, b: int) -> None:
    problem = problem_text(a, b)
    plan = true_split(problem)
    assert check_split(DecomposeInput(problem=problem), plan) is None
    if plan.is_split:
        answers = [int(x) * int(y) for x, y in map(parse_problem, plan.subproblems)]
        assert evaluate_composition(plan.composition, answers) == a * b


@settings(max_examples=100, deadline=None)
@given(st.integers(10, 10**9), st.integers(10, 10**9))
def test_equivalent_splits_share_a_key_and_wrong_ones_do_not(a: int, b: int) -> None:
    problem = problem_text(a, b)
    plan = Decomposition(
        subproblems=true_split(problem, leaf_digits=1).subproblems,
        composition=true_split(problem, leaf_digits=1).composition,
    )
    (x1, y1), (x2, y2) = map(parse_problem, plan.subproblems)
    shift = parse_composition(plan.composition, 2)[0][1]
    # Parts swapped, factors commuted, another multiplication sign, a leading zero.
    same = Decomposition(
        subproblems=[f"{y2}*0{x2}", f"{y1} x {x1}"], composition=f"#2*10**{shift} + #1"
    )
    assert canonical_split(same) == canonical_split(plan)
    plausible = wrong_split(problem, 0, leaf_digits=1)
    assert check_split(DecomposeInput(problem=problem), plausible) is None
    assert canonical_split(plausible) != canonical_split(plan)
    invalid = wrong_split(problem, 1, leaf_digits=1)
    assert check_split(DecomposeInput(problem=problem), invalid) is not None


def test_answer_checks() -> None:
    inp = SolveInput(problem="99 × 99")
    from maker_graph.recursive import Answer

    assert check_product(inp, Answer(answer="9801")) is None
    assert check_product(inp, Answer(answer="98010")) == "5 digits, but the product has at most 4"
    assert check_product(inp, Answer(answer="98-01")) == "the answer must be digits only"


# --------------------------------------------------------------------------- the roles on this task


async def test_invalid_split_is_red_flagged_and_redrawn() -> None:
    problem = "123456 × 789"
    good = json.dumps(true_split(problem).model_dump())
    # A part left out of the composition, then a part no smaller than the problem.
    dropped = json.dumps({"subproblems": ["123 × 789", "456 × 789"], "composition": "#1 * 10^3"})
    stuck = json.dumps({"subproblems": ["123456 × 789", "0 × 789"], "composition": "#1 + #2"})
    script = ScriptedSampler([dropped, good, stuck, good, good])
    roles = multiplication_roles(
        {"decomposer": script, "discriminator": script, "solver": script, "composer": script}
    )
    decomposer = Decomposer(roles.decomposer, candidates=3, canonical=canonical_split)
    proposals = await decomposer.propose(problem)
    script.assert_all_used()
    assert proposals.result.red_flags == {"invalid_split": 2}
    assert proposals.unanimous and proposals.candidates[0].proposers == (1, 3, 4)


async def test_equivalent_candidate_splits_collide_in_the_vote() -> None:
    problem = "12345 × 678"
    right = Decomposition(subproblems=["123 × 678", "45 × 678"], composition="#1 * 10^2 + #2")
    restated = Decomposition(subproblems=["678 * 045", "678 x 123"], composition="#2 * 10**2 + #1")
    shifted = Decomposition(subproblems=["123 × 678", "45 × 678"], composition="#1 * 10^3 + #2")
    # Three decomposers: two write the right split differently, one shifts wrongly.
    proposals = ScriptedSampler([json.dumps(d.model_dump()) for d in (right, shifted, restated)])
    decomposer = Decomposer(Role(model=proposals, check=check_split), canonical=canonical_split)
    found = await decomposer.propose(problem)
    assert [c.proposers for c in found.candidates] == [(0, 2), (1,)]
    # Shown all three, discriminators vote 1, 3, 3: keyed by candidate number that is
    # no decision at k = 3; keyed canonically it is three votes for one split.
    votes = ScriptedSampler(['{"choice": 1}', '{"choice": 3}', '{"choice": 3}'])
    disc = Discriminator(Role(model=votes, policy=VotePolicy(k=3)), canonical=canonical_split)
    chosen, vote = await disc.choose(problem, [right, shifted, restated])
    votes.assert_all_used()
    assert canonical_split(chosen) == canonical_split(right)
    assert list(vote.tally.values()) == [3] and vote.samples_drawn == 3


# --------------------------------------------------------------------------- end to end


def test_ten_by_ten_digits_with_simulated_chat_models() -> None:
    recorder = MemoryTreeRecorder()
    models = simulated_models(RoleErrors.uniform(0.05, seed=7), kind="chat")
    multiplier = Multiplier(multiplication_roles(models), recorder=recorder)
    result = multiplier.multiply_sync(9876543210, 1234567891)
    assert result.correct and result.answer == 9876543210 * 1234567891
    assert result.stats["nodes"] == 31 and result.stats["depth"] == 4
    tree = load_events(recorder.events)[0]
    assert render_text(tree).startswith(f"tree {tree.id}: 9876543210 × 1234567891 = ")


async def test_ten_by_ten_digits_many_products() -> None:
    rng = random.Random(10)
    pairs = [(rng.randrange(10**9, 10**10), rng.randrange(10**9, 10**10)) for _ in range(20)]
    multiplier = Multiplier(multiplication_roles(simulated_models(RoleErrors.uniform(0.05))))
    results = await asyncio.gather(*(multiplier.multiply(a, b) for a, b in pairs))
    assert all(r.correct for r in results)


def test_a_starved_inner_node_fails_cleanly() -> None:
    models = simulated_models(RoleErrors.uniform(0.05))
    multiplier = Multiplier(
        multiplication_roles(models), policy=RecursionPolicy(max_samples_per_node=5)
    )
    from maker_graph.recursive import NodeBudgetExhaustedError

    with pytest.raises(NodeBudgetExhaustedError) as info:
        multiplier.multiply_sync(123456, 654321)
    # Each node needs at least 3 proposals and a 3-sample vote: the first node to run
    # short is named, with its role and problem.
    assert str(info.value).startswith(f"node {info.value.node} ({info.value.role}, ")
    assert info.value.limit == 5


# --------------------------------------------------------------------------- the evidence


def _mean_and_se(values: list[int]) -> tuple[float, float]:
    return statistics.fmean(values), statistics.stdev(values) / math.sqrt(len(values))


def test_evidence_200_six_digit_products_at_five_percent_error(
    capsys: pytest.CaptureFixture[str],
) -> None:
    error, k, n_products, candidates = 0.05, 3, 200, 3
    errors = RoleErrors.uniform(error, seed=0)
    recorder = MemoryTreeRecorder()
    multiplier = Multiplier(
        multiplication_roles(simulated_models(errors), k=k),
        policy=RecursionPolicy(max_depth=8, candidates=candidates),
        recorder=recorder,
    )
    rng = random.Random(0)
    pairs = [(rng.randrange(10**5, 10**6), rng.randrange(10**5, 10**6)) for _ in range(n_products)]

    async def run_all() -> list[Any]:
        return list(await asyncio.gather(*(multiplier.multiply(a, b) for a, b in pairs)))

    results = asyncio.run(run_all())
    trees = load_events(recorder.events)
    measured = audit(trees)
    shapes = {(r.stats["nodes"], r.stats["leaves"]) for r in results}

    # What the scaling laws forecast for this tree (3 inner nodes, 4 leaves) and error model.
    rates = {
        # decomposer errors: half a plausible wrong split, half an invalid one (red flag)
        "decomposer": RoleRates(wrong=error / 2, invalid=error / 2),
        "discriminator": RoleRates(wrong=error),  # two candidates: one rival
        "solver": RoleRates(wrong=error, rivals=errors.solver.rivals),
        "composer": RoleRates(wrong=error, rivals=errors.composer.rivals),
    }
    forecast = forecast_tree(inner=3, leaves=4, k=k, candidates=candidates, **rates)
    expected_votes = {
        "decomposer": forecast.decomposer_samples,
        "discriminator": forecast.discriminator.samples,
        "solver": forecast.solver.samples,
        "composer": forecast.composer.samples,
    }
    vote_error = {
        "decomposer": forecast.decomposer_all_wrong,
        "discriminator": forecast.discriminator.error,
        "solver": forecast.solver.error,
        "composer": forecast.composer.error,
    }
    per_tree = [r.samples for r in results]
    lines = [
        f"evidence: {n_products} random 6x6-digit products, k={k}, per-call error {error:.0%} "
        "for every role (solver/composer slips spread over 3 values; decomposer errors half "
        "plausible, half invalid)",
        f"  correct: {sum(r.correct for r in results)}/{n_products}; tree shapes "
        f"(nodes, leaves): {sorted(shapes)}",
        f"  {'role':<14}{'votes':>6}{'samples':>9}{'per vote':>10}{'forecast':>10}"
        f"{'wrong/sample':>14}{'red flags':>11}{'wrong votes':>13}{'forecast':>10}",
    ]
    for role, m in measured.items():
        mean, _ = _mean_and_se(m.samples_per_vote)
        lines.append(
            f"  {role:<14}{m.votes:>6}{m.samples:>9}{mean:>10.3f}{expected_votes[role]:>10.3f}"
            f"{m.wrong_samples / m.samples:>14.4f}{m.red_flagged / m.samples:>11.4f}"
            f"{m.wrong_votes:>13}{m.votes * vote_error[role]:>10.4f}"
        )
    disc_rate = measured["discriminator"].votes / measured["decomposer"].votes
    tree_mean, tree_se = _mean_and_se(per_tree)
    lines += [
        f"  discriminator ran at {disc_rate:.3f} of nodes (forecast "
        f"{forecast.discriminator_runs:.3f})",
        f"  samples per product: {tree_mean:.2f} +- {tree_se:.2f} (forecast "
        f"{forecast.samples_per_tree:.2f})",
        f"  forecast error per product {forecast.error_per_tree:.1e}: P(all {n_products} "
        f"correct) = {forecast.p_all_correct(n_products):.3f}; worst case (every role's "
        "errors agreeing) " + f"{_worst_case(error, k, candidates).p_all_correct(n_products):.3f}",
    ]
    with capsys.disabled():
        print("\n" + "\n".join(lines))

    assert all(r.correct for r in results)
    assert shapes == {(7, 4)}
    # Per-sample error and red-flag rates: binomial, within 4 standard deviations.
    per_call = {
        "decomposer": (error / 2, error / 2),
        "discriminator": (error, 0.0),
        "solver": (error, 0.0),
        "composer": (error, 0.0),
    }
    for role, m in measured.items():
        wrong_rate, flag_rate = per_call[role]
        for seen, p in ((m.wrong_samples, wrong_rate), (m.red_flagged, flag_rate)):
            sd = math.sqrt(max(p * (1 - p), 1e-12) * m.samples)
            assert abs(seen - p * m.samples) <= 4 * sd + 1, (role, seen, p, m.samples)
        mean, se = _mean_and_se(m.samples_per_vote)
        assert abs(mean - expected_votes[role]) <= 4 * se + 1e-9, (role, mean)
        assert m.wrong_votes == 0
    runs = measured["decomposer"].votes
    sd = math.sqrt(forecast.discriminator_runs * (1 - forecast.discriminator_runs) * runs)
    assert abs(measured["discriminator"].votes - forecast.discriminator_runs * runs) <= 4 * sd
    assert abs(tree_mean - forecast.samples_per_tree) <= 4 * tree_se


def _worst_case(error: float, k: int, candidates: int) -> Any:
    one = RoleRates(wrong=error)
    return forecast_tree(
        inner=3,
        leaves=4,
        k=k,
        candidates=candidates,
        decomposer=RoleRates(wrong=error),
        discriminator=one,
        solver=one,
        composer=one,
    )


def test_forecast_of_a_single_vote_matches_a_simulated_solver() -> None:
    # The solver role alone, many votes: mean samples and the error rate of the vote.
    errors = ErrorModel(error_rate=0.2, rivals=1, seed=3)
    models = simulated_models(RoleErrors(solver=errors))
    from maker_graph.recursive import Solver

    solver = Solver(multiplication_roles(models, k=2).solver)
    problems = [problem_text(a, b) for a, b in zip(range(100, 1100), range(200, 1200), strict=True)]

    async def run() -> list[Any]:
        return list(await asyncio.gather(*(solver.solve(p) for p in problems)))

    votes = asyncio.run(run())
    wrong = sum(
        int(v.winner.answer) != math.prod(map(int, parse_problem(p)))
        for v, p in zip(votes, problems, strict=True)
    )
    f = forecast_vote(RoleRates(wrong=0.2), k=2)
    n = len(problems)
    assert abs(wrong - f.error * n) <= 4 * math.sqrt(f.error * (1 - f.error) * n)
    mean = statistics.fmean(v.samples_drawn for v in votes)
    se = statistics.stdev(v.samples_drawn for v in votes) / math.sqrt(n)
    assert abs(mean - f.samples) <= 4 * se


# --------------------------------------------------------------------------- the CLI


@pytest.fixture(scope="module")
def cli() -> CliRunner:
    load_commands()
    return CliRunner()


def test_cli_multiply_records_a_tree_that_tree_prints(cli: CliRunner, tmp_path: Any) -> None:
    run_dir = tmp_path / "run"
    out = cli.invoke(
        app,
        [
            "multiply",
            "1234567",
            "7654321",
            "--run-dir",
            str(run_dir),
            "--error-rate",
            "0.1",
            "--seed",
            "3",
        ],
    )
    assert out.exit_code == 0, out.output
    assert f"answer: {1234567 * 7654321}" in out.output and "correct: true" in out.output
    shown = cli.invoke(app, ["tree", "--run-dir", str(run_dir)])
    assert shown.exit_code == 0 and "1234567 × 7654321" in shown.output
    assert "decomposer:" in shown.output and "composer:" in shown.output
    mermaid = cli.invoke(app, ["tree", "--run-dir", str(run_dir), "--mermaid"])
    assert mermaid.output.startswith("flowchart TD")
    listed = cli.invoke(app, ["tree", "--run-dir", str(run_dir), "--list"])
    assert listed.exit_code == 0 and "[ok, " in listed.output


def test_cli_multiply_json_and_simulated_chat(cli: CliRunner) -> None:
    out = cli.invoke(app, ["multiply", "98765", "43210", "--model", "simulated-chat", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert data["correct"] is True and data["answer"] == 98765 * 43210


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["multiply", "12", "3.4"], "B must be a non-negative integer"),
        (["multiply", "12", "34", "--k", "0"], "--k must be >= 1"),
        (["multiply", "12", "34", "--error-rate", "0.5"], "--error-rate must be in [0, 0.5)"),
        (["multiply", "12", "34", "--candidates", "0"], "candidates must be >= 1"),
        (["multiply", "12", "34", "--model", "simulated:rivals=0"], "rivals"),
        (["tree", "--run-dir", "/nonexistent/run"], "does not exist"),
    ],
)
def test_cli_bad_values_give_one_line_and_exit_2(
    cli: CliRunner, args: list[str], message: str
) -> None:
    out = cli.invoke(app, args)
    assert out.exit_code == 2, out.output
    assert message in out.output and "Traceback" not in out.output


def test_cli_reports_a_starved_node_and_exits_1(cli: CliRunner) -> None:
    out = cli.invoke(app, ["multiply", "123456", "654321", "--max-samples-per-node", "4"])
    assert out.exit_code == 1
    assert "error: node " in out.output and "sample budget is spent" in out.output


def test_a_huge_power_of_ten_is_refused_not_evaluated() -> None:
    """`#1 * 10^10000000` took 9.7 s to evaluate (and more memory with more digits): the
    exponent is capped, so the reply is a parse error (a red flag) at once."""
    import time

    from maker_graph.tasks.multiplication.notation import MAX_EXPONENT, evaluate_composition

    started = time.perf_counter()
    with pytest.raises(ValueError, match="power of ten"):
        evaluate_composition(f"#1 * 10^{MAX_EXPONENT + 1}", [3])
    assert time.perf_counter() - started < 1.0
    assert evaluate_composition(f"#1 * 10^{MAX_EXPONENT}", [3]) == 3 * 10**MAX_EXPONENT
