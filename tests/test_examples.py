"""Every script in examples/ runs offline, quickly, and prints what it promises.

Scripts are discovered, so a new example is covered as soon as it is added.
Known examples must print their key line, and the numbers in it must be the
right ones (a checker per example below); any other example must exit 0 and
print something.
"""

from __future__ import annotations

import math
import os
import re
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from maker_graph.scaling import p_step

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
TIMEOUT = 60  # seconds; each example is meant to finish well under 30

KEY_LINES = {
    "agent_tool_voting.py": "MakerMiddleware(k=3) tool accuracy:",
    "wrap_fragile_step.py": "voted accuracy (k=3):",
    "hybrid_pipeline.py": "solved: True",
    "human_escalation.py": "(decided by escalation)",
}


def _one(pattern: str, out: str) -> re.Match[str]:
    found = re.findall(pattern, out, flags=re.MULTILINE)
    assert len(found) == 1, f"expected one line matching {pattern!r}:\n{out}"
    match = re.search(pattern, out, flags=re.MULTILINE)
    assert match is not None
    return match


def _within(measured: float, expected: float, n: int, z: float = 4.0) -> bool:
    # Binomial band: z standard errors of a rate over n trials (plus the 0.05 %
    # the script's one-decimal percentage can round away).
    return abs(measured - expected) <= z * math.sqrt(expected * (1 - expected) / n) + 0.0005


def _check_wrap_fragile_step(out: str) -> None:
    # Seeded, one rival label, 300 tickets: single-sample 0.8 and voted p_step(0.8, 3)
    # = 0.985, each within 4 binomial s.e. (300 tickets are too few to tell k = 2 or 4
    # apart; test_maker_node and test_config_loader do that). Voting must beat one sample.
    tickets = int(_one(r"^tickets: (\d+)$", out)[1])
    single = float(_one(r"^single-sample accuracy: ([\d.]+)%$", out)[1]) / 100
    voted_line = _one(
        r"^voted accuracy \(k=3\): ([\d.]+)%\s+\(scaling law p_step\(0\.8, 3\) "
        r"= ([\d.]+)%\)$",
        out,
    )
    voted, law = float(voted_line[1]) / 100, float(voted_line[2]) / 100
    assert tickets == 300
    assert law == round(p_step(0.8, 3), 3)
    assert _within(single, 0.8, tickets), single
    assert _within(voted, p_step(0.8, 3), tickets), voted
    assert voted > single


def _check_hybrid_pipeline(out: str) -> None:
    extracted = _one(r"^voted extraction: \{'customer': 'ACME-42', 'disks': (\d+)\}", out)
    report = _one(
        r"^report: customer ACME-42 \(\w+\): moved (\d+) disks in (\d+) voted steps, "
        r"solved: True$",
        out,
    )
    disks, steps = int(report[1]), int(report[2])
    assert disks == int(extracted[1]) == 8  # the voted extraction is what got solved
    assert steps == 2**disks - 1  # the optimal solution, one vote per move
    chunks = [int(n) for n in re.findall(r"decomposition chunk \d+: (\d+) steps done", out)]
    assert chunks == sorted(chunks) and chunks[-1] == steps


def _check_human_escalation(out: str) -> None:
    tally = _one(r"^  tally after (\d+) samples: \[\['(\w+)', (\d+)\], \['(\w+)', (\d+)\]\]$", out)
    drawn, first, second = int(tally[1]), int(tally[3]), int(tally[5])
    assert first + second == drawn and abs(first - second) < 3  # no 3-vote lead: escalated
    answer = _one(r"^  reviewer answers: (\w+)$", out)[1]
    verdict = _one(r"^verdict: (\w+) \(decided by escalation\)", out)[1]
    assert verdict == answer  # the human's answer is the verdict


def _check_recursive_multiplication(out: str) -> None:
    products = re.findall(
        r"^(\d+) × (\d+) = (\d+)  \(\d+ nodes, \d+ samples\)$", out, flags=re.MULTILINE
    )
    assert products, out
    assert all(int(a) * int(b) == int(c) for a, b, c in products), products
    correct = _one(r"^correct: (\d+)/(\d+) products", out)
    assert int(correct[1]) == int(correct[2])


def _check_agent_tool_voting(out: str) -> None:
    # Seeded; one sample is right 75 %; the vote must reach the exact value for this error
    # mix (two rivals, 15 % and 10 %) within 4 s.e., and the floor p_step - 3 s.e.
    n = int(_one(r"^conversations: (\d+)$", out)[1])
    plain = float(_one(r"^plain agent tool accuracy: ([\d.]+)%$", out)[1]) / 100
    line = _one(
        r"^MakerMiddleware\(k=3\) tool accuracy: ([\d.]+)%  \(p_step\(0\.75, 3\) = "
        r"([\d.]+)%; exact for this error mix ([\d.]+)%\)$",
        out,
    )
    voted, law, exact = (float(line[i]) / 100 for i in (1, 2, 3))
    assert n >= 200
    assert abs(law - p_step(0.75, 3)) < 0.0006
    assert law < exact < 1
    assert _within(plain, 0.75, n), plain
    assert _within(voted, exact, n), voted
    assert voted >= law - 3 * math.sqrt(law * (1 - law) / n)
    runs = _one(r"^tools run: plain (\d+), voted (\d+) ", out)
    assert int(runs[1]) == int(runs[2]) == n  # one tool per request, never a loser's
    assert "AIMessage(refund) -> ToolMessage('refund issued for #42')" in out


CHECKS: dict[str, Callable[[str], None]] = {
    "agent_tool_voting.py": _check_agent_tool_voting,
    "wrap_fragile_step.py": _check_wrap_fragile_step,
    "hybrid_pipeline.py": _check_hybrid_pipeline,
    "human_escalation.py": _check_human_escalation,
    "recursive_multiplication.py": _check_recursive_multiplication,
}


def test_examples_exist() -> None:
    names = {script.name for script in SCRIPTS}
    assert set(KEY_LINES) <= names
    assert set(CHECKS) <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs(script: Path) -> None:
    # Keep conftest's PYTHONPATH: it carries the subprocess network guard.
    path = os.pathsep.join([str(EXAMPLES.parent), *filter(None, [os.environ.get("PYTHONPATH")])])
    env = {
        **os.environ,
        "PYTHONPATH": path,
        "MPLBACKEND": "Agg",
        "LANGCHAIN_TRACING_V2": "false",
        "LANGSMITH_TRACING": "false",
    }
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=EXAMPLES.parent,
        env=env,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{script.name} printed nothing"
    key = KEY_LINES.get(script.name)
    if key is not None:
        assert key in done.stdout, f"{script.name} did not print {key!r}:\n{done.stdout}"
    check = CHECKS.get(script.name)
    if check is not None:
        check(done.stdout)
