"""`maker-graph run` on a graph that escalates: the interrupt is JSON, the exit code says
so, and a later command resumes the stored thread with the human's answer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from maker_graph.cli import app
from maker_graph.cli.config import INTERRUPTED

# A vote that cannot be won: a red flag throws away every answer, so when the three
# samples of the budget are spent the step escalates to a human.
SPEC = """
name: escalating
state: {ticket: str, category: str}
models:
  coin:
    model: simulated
    choices: [billing, bug, account, other]
    oracle: {rules: [{match: ".", answer: billing}], default: billing}
nodes:
  classify:
    kind: maker
    model: coin
    prompt: "Ticket: {ticket}"
    parser: {kind: labels, labels: [billing, bug, account, other]}
    k: 3
    red_flags: [{kind: matches, pattern: ".", reason: rejects_everything}]
    budget: {max_samples: 3, on_no_consensus: escalate}
    output: category
entry: classify
finish: [classify]
"""


@pytest.fixture
def spec(tmp_path: Path) -> Path:
    path = tmp_path / "escalating.yaml"
    path.write_text(SPEC)
    return path


def test_an_interrupt_is_json_with_its_own_exit_code_and_resumes(
    spec: Path, tmp_path: Path
) -> None:
    cli = CliRunner()
    store = str(tmp_path / "run")
    first = cli.invoke(
        app,
        [
            "run",
            str(spec),
            "--input",
            '{"ticket": "charged twice"}',
            "--store",
            store,
            "--thread",
            "t1",
        ],
    )
    assert first.exit_code == INTERRUPTED, first.output
    report = json.loads(first.stdout)
    assert report["thread_id"] == "t1"
    [pending] = report["interrupted"]
    assert pending["id"] and isinstance(pending["value"], dict)
    assert f"--store {store} --thread t1 --resume" in report["resume"]

    second = cli.invoke(
        app, ["run", str(spec), "--store", store, "--thread", "t1", "--resume", '"bug"']
    )
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["category"] == "bug"


def test_without_a_store_the_interrupt_says_it_cannot_be_resumed(spec: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(spec), "--input", '{"ticket": "x"}'])
    assert result.exit_code == INTERRUPTED, result.output
    assert "not resumable" in json.loads(result.stdout)["resume"]


def test_resume_needs_the_store_and_thread(spec: Path) -> None:
    result = CliRunner().invoke(app, ["run", str(spec), "--resume", "bug"])
    assert result.exit_code == 2
    assert "--store and --thread" in result.stderr
