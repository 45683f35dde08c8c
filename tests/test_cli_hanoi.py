"""`maker-graph hanoi`, `plan` and `log export`: the CLI contract of the million-step demo."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maker_graph.cli import app, load_commands
from maker_graph.runlog import Checkpoint, StepRecord, open_run_log
from maker_graph.scaling import plan
from maker_graph.tasks.hanoi import optimal_moves

load_commands()
runner = CliRunner()

REPORT_KEYS = {
    "disks",
    "steps",
    "k",
    "model",
    "errors",
    "solved",
    "samples",
    "valid_samples",
    "red_flagged",
    "max_samples_in_step",
    "rounds_histogram",
    "wall_seconds",
    "input_tokens",
    "output_tokens",
}


def invoke(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(app, list(args))
    return result.exit_code, result.stdout, result.stderr


def hanoi(*args: str) -> tuple[int, str, str]:
    return invoke("hanoi", "--no-progress", *args)


# --------------------------------------------------------------------------- hanoi


def test_hanoi_run_summary_and_report(tmp_path: Path) -> None:
    report = tmp_path / "out" / "report.json"
    code, out, err = hanoi(
        "--disks",
        "7",
        "--run-dir",
        str(tmp_path / "run"),
        "--report",
        str(report),
        "--error-rate",
        "0.02",
    )
    assert code == 0, err
    assert "solved: true, errors: 0" in out
    data = json.loads(report.read_text())
    assert REPORT_KEYS <= set(data)
    assert (data["disks"], data["steps"], data["errors"], data["solved"]) == (7, 127, 0, True)
    assert data["model"] == "simulated" and data["k"] >= 1
    assert data["samples"] == data["valid_samples"] + data["red_flagged"]
    assert sum(data["rounds_histogram"].values()) == 127
    assert data["max_samples_in_step"] >= data["k"]
    assert data["input_tokens"] > 0 and data["output_tokens"] > 0 and data["wall_seconds"] > 0


def test_hanoi_without_a_run_dir_and_with_the_chat_model() -> None:
    code, out, err = hanoi("--disks", "4", "--model", "simulated-chat", "--k", "2")
    assert code == 0, err
    assert "solved: true, errors: 0" in out and "model simulated-chat" in out


def test_default_k_is_k_min_for_the_error_rate(tmp_path: Path) -> None:
    report = tmp_path / "r.json"
    code, _, err = hanoi("--disks", "12", "--error-rate", "0.01", "--report", str(report))
    assert code == 0, err
    assert json.loads(report.read_text())["k"] == plan(0.99, 2**12 - 1).k_min


def test_log_export_is_one_json_line_per_step_in_order(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert hanoi("--disks", "6", "--run-dir", str(run), "--error-rate", "0.05")[0] == 0
    code, out, err = invoke("log", "export", "--run-dir", str(run))
    assert code == 0, err
    lines = [json.loads(line) for line in out.splitlines()]
    assert [line["step"] for line in lines] == list(range(63))
    assert [line["move"] for line in lines] == [list(m) for m in optimal_moves(6)]
    for line in lines:
        assert {
            "tally",
            "samples",
            "valid",
            "red_flagged",
            "red_flags",
            "rounds",
            "input_tokens",
            "output_tokens",
            "decided_by",
            "state_hash",
        } <= set(line)
        assert sum(line["tally"]) == line["valid"] == line["samples"] - line["red_flagged"]
    verify = invoke("log", "verify", "--run-dir", str(run))
    assert verify[0] == 0 and "63 steps" in verify[1] and "complete" in verify[1]


def test_a_budget_stop_then_resume(tmp_path: Path) -> None:
    run, report = tmp_path / "run", tmp_path / "r.json"
    code, out, err = hanoi(
        "--disks",
        "8",
        "--run-dir",
        str(run),
        "--max-total-samples",
        "200",
        "--report",
        str(report),
        "--seed",
        "5",
    )
    assert code == 1
    assert "samples budget spent" in err and "--max-total-samples" in err
    assert "solved: false" in out
    stopped = json.loads(report.read_text())
    assert 0 < stopped["steps"] < 255 and stopped["errors"] == 0
    # Again without --resume: refused, nothing changes.
    code, _, err = hanoi("--disks", "8", "--run-dir", str(run))
    assert code == 2 and "--resume" in err
    # --resume keeps the seed and k the run started with.
    code, out, err = hanoi(
        "--disks", "8", "--run-dir", str(run), "--resume", "--report", str(report)
    )
    assert code == 0, err
    assert "resuming" in out and "solved: true, errors: 0" in out
    done = json.loads(report.read_text())
    assert done["steps"] == 255 and done["seed"] == 5 and done["k"] == stopped["k"]


def test_fresh_starts_over(tmp_path: Path) -> None:
    run = tmp_path / "run"
    assert hanoi("--disks", "3", "--run-dir", str(run))[0] == 0
    code, out, err = hanoi("--disks", "5", "--run-dir", str(run), "--fresh")
    assert code == 0, err
    assert "steps: 31 of 31" in out


def _other_task(where: Path) -> None:
    with open_run_log(where) as log:
        log.start("multiply", {"digits": 5})
        log.append(
            [StepRecord(0, "1", "x", "[3]", 3, 3, None, 1, 0, 0, "vote")],
            Checkpoint(next_step=1, state=0, previous_action=1),
        )


BAD = [
    (["--disks", "0"], "--disks"),
    (["--disks", "65"], "--disks"),
    (["--disks", "3", "--k", "0"], "--k"),
    (["--disks", "3", "--error-rate", "0.5"], "--error-rate"),
    (["--disks", "3", "--error-rate", "-0.1"], "--error-rate"),
    (["--disks", "3", "--resume"], "--run-dir"),
    (["--disks", "3", "--run-dir", "x", "--resume", "--fresh"], "only one"),
    (["--disks", "3", "--k", "3", "--max-samples-per-step", "2"], "max-samples-per-step"),
    (["--disks", "3", "--max-cost", "1"], "--price"),
    (["--disks", "3", "--max-total-tokens", "-1"], "--max-total-tokens"),
    (["--disks", "3", "--model", "simulated:error_rate=0.7"], "error"),
    (["--disks", "3", "--model", "openai:"], "model"),
]


@pytest.mark.parametrize(("args", "needle"), BAD)
def test_bad_flags_give_one_line_and_exit_2(args: list[str], needle: str) -> None:
    code, out, err = hanoi(*args)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and needle in lines[0], err
    assert "Traceback" not in out + err


@pytest.mark.parametrize("extra", [[], ["--resume"]])
def test_a_run_dir_holding_another_task_is_refused(tmp_path: Path, extra: list[str]) -> None:
    _other_task(tmp_path)
    code, _, err = hanoi("--disks", "3", "--run-dir", str(tmp_path), *extra)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and "task 'multiply', not 'hanoi'" in lines[0]


def test_other_disks_in_the_run_dir_are_refused(tmp_path: Path) -> None:
    assert hanoi("--disks", "3", "--run-dir", str(tmp_path))[0] == 0
    code, _, err = hanoi("--disks", "4", "--run-dir", str(tmp_path), "--resume")
    assert code == 2 and "parameters" in err


def test_a_provider_model_without_credentials_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    code, _, err = hanoi("--disks", "3", "--model", "openai:gpt-4.1-mini")
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "OPENAI_API_KEY" in lines[0]


def test_python_dash_m_runs_the_cli() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "maker_graph", "hanoi", "--disks", "3", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert "solved: true, errors: 0" in proc.stdout


# --------------------------------------------------------------------------- plan


@pytest.mark.parametrize(
    "args",
    [
        ["--steps", "1048575", "--p", "0.9978"],
        ["--steps", "1000", "--p", "0.9", "--target", "0.99", "--v", "0.95"],
        [
            "--steps",
            "1048575",
            "--p",
            "0.9978",
            "--price-in",
            "0.4",
            "--price-out",
            "1.6",
            "--tokens-in",
            "300",
            "--tokens-out",
            "200",
        ],
        ["--steps", "500", "--p", "0.95", "--m", "2"],
    ],
)
def test_plan_json_agrees_with_scaling(args: list[str]) -> None:
    code, out, err = invoke("plan", *args, "--json")
    assert code == 0, err
    options = dict(zip(args[::2], args[1::2], strict=True))
    expected = plan(
        float(options["--p"]),
        int(options["--steps"]),
        target=float(options.get("--target", 0.95)),
        m=int(options.get("--m", 1)),
        v=float(options.get("--v", 1.0)),
        price_in=float(options.get("--price-in", 0)),
        price_out=float(options.get("--price-out", 0)),
        tokens_in=float(options.get("--tokens-in", 0)),
        tokens_out=float(options.get("--tokens-out", 0)),
    )
    assert json.loads(out) == expected.to_dict()


def test_plan_text_shows_the_paper_numbers() -> None:
    code, out, _ = invoke(
        "plan",
        "--steps",
        "1048575",
        "--p",
        "0.9978",
        "--price-in",
        "0.4",
        "--price-out",
        "1.6",
        "--tokens-in",
        "300",
        "--tokens-out",
        "200",
    )
    assert code == 0
    assert "k_min:                 3" in out
    assert "predicted p_full:      0.98" in out
    assert "valid samples / step:  3.0133" in out
    assert "expected cost:         1,390" in out


@pytest.mark.parametrize(
    "args",
    [
        ["--steps", "100", "--p", "0.4"],
        ["--steps", "0", "--p", "0.9"],
        ["--steps", "100", "--p", "0.9", "--target", "1.5"],
        ["--steps", "100", "--p", "0.9", "--m", "0"],
        ["--steps", "100", "--p", "0.9", "--v", "0"],
        ["--steps", "100", "--p", "0.9", "--price-in", "-1"],
    ],
)
def test_plan_bad_values_give_one_line(args: list[str]) -> None:
    code, out, err = invoke("plan", *args)
    assert code == 2
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err


# --------------------------------------------------------------------------- log


def test_log_export_of_nothing_is_one_line(tmp_path: Path) -> None:
    for where in (tmp_path / "missing", tmp_path):
        code, _, err = invoke("log", "export", "--run-dir", str(where))
        assert code == 2
        assert len([line for line in err.splitlines() if line.strip()]) == 1


@pytest.mark.parametrize("args", [["--disks", "abc"], ["--disks", "3", "--bogus"], []])
def test_unparseable_flags_are_one_line_too(args: list[str]) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "maker_graph", "hanoi", *args],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr


def test_a_simulated_model_spec_sets_the_error_rate_shown_and_used() -> None:
    from typer.testing import CliRunner

    from maker_graph.cli import app, load_commands

    load_commands()
    result = CliRunner().invoke(
        app, ["hanoi", "--disks", "3", "--model", "simulated:error_rate=0.01"]
    )
    assert result.exit_code == 0, result.output
    assert "error rate 0.01," in result.output
    bad = CliRunner().invoke(app, ["hanoi", "--disks", "3", "--model", "simulated:error_rate=0.7"])
    assert bad.exit_code == 2
    assert "must be below 0.5, got 0.7" in bad.output
    assert "Traceback" not in bad.output
