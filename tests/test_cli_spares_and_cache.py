"""`maker-graph hanoi --spare-samples / --price-cached-in`, and no temporary directory left
behind by a refused run. Through the real ChatOpenAI client against the loopback stub."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import pytest
from openai_stub import OpenAIStub, StubBehaviour, hanoi_oracle
from typer.testing import CliRunner

from maker_graph.cli import app, load_commands
from maker_graph.tasks.hanoi import HanoiTask

QUIET = dict(
    wrong_rate=0.0,
    ramble_rate=0.0,
    malformed_rate=0.0,
    rate_limit_rate=0.0,
    server_error_rate=0.0,
    retry_after=0.01,
)


def _hanoi(tmp_path: Path, stub: OpenAIStub, *extra: str):  # type: ignore[no-untyped-def]
    load_commands()
    result = CliRunner().invoke(
        app,
        [
            "hanoi",
            "--disks",
            "3",
            "--k",
            "3",
            "--model",
            "openai:stub-hanoi",
            "--base-url",
            stub.base_url,
            "--temperature",
            "0.1",
            "--no-progress",
            "--run-dir",
            str(tmp_path / "run"),
            "--report",
            str(tmp_path / "r.json"),
            *extra,
        ],
    )
    assert result.exit_code == 0, result.output
    return json.loads((tmp_path / "r.json").read_text())


def test_spare_samples_flag(tmp_path) -> None:
    oracle, wrong = hanoi_oracle(HanoiTask(3))
    with OpenAIStub(oracle, wrong, StubBehaviour(**QUIET)) as stub:  # type: ignore[arg-type]
        data = _hanoi(tmp_path, stub, "--spare-samples", "2")
        choices, requests = stub.stats["choices"], stub.stats["requests"]
    # 7 unanimous steps: one request of 3 + 2 spares each; the spares are billed, unused.
    assert data["solved"] and requests == 7 and choices == 7 * 5
    assert data["spares_unused"] == 7 * 2 and data["samples"] == choices
    assert data["output_tokens"] == stub.usage["completion_tokens"]


def test_price_cached_in_flag(tmp_path) -> None:
    oracle, wrong = hanoi_oracle(HanoiTask(3))
    behaviour = StubBehaviour(**QUIET, cached_prompt_tokens=100)  # type: ignore[arg-type]
    with OpenAIStub(oracle, wrong, behaviour) as stub:
        data = _hanoi(
            tmp_path, stub, "--price-in", "1", "--price-out", "2", "--price-cached-in", "0.5"
        )
        billed_in, cached = stub.usage["prompt_tokens"], stub.usage["cached_tokens"]
        billed_out = stub.usage["completion_tokens"]
    assert data["cached_input_tokens"] == cached == 7 * 100
    expected = ((billed_in - cached) * 1 + cached * 0.5 + billed_out * 2) / 1e6
    assert data["cost"] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("flags", [["--spare-samples", "-1"], ["--price-cached-in", "-2"]])
def test_bad_values_are_refused(flags: list[str]) -> None:
    load_commands()
    result = CliRunner().invoke(
        app,
        [
            "hanoi",
            "--disks",
            "3",
            "--model",
            "openai:x",
            "--base-url",
            "http://127.0.0.1:9/v1",
            *flags,
        ],
    )
    assert result.exit_code != 0 and f"{flags[0]} must be" in result.output


def test_a_refused_run_leaves_no_temporary_directory(tmp_path, monkeypatch) -> None:
    """Refused after the temporary run directory was made (k below what the run needs is
    checked later): the empty directory goes too."""
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    load_commands()
    result = CliRunner().invoke(
        app, ["hanoi", "--disks", "3", "--k", "3", "--max-samples-per-step", "2", "--no-progress"]
    )
    assert result.exit_code != 0 and "must be >= --k" in result.output
    assert not list(tmp_path.glob("maker-graph-hanoi-*"))
