"""Every script in examples/ runs offline, quickly, and prints what it promises.

Scripts are discovered, so a new example is covered as soon as it is added.
Known examples must print their key line; any other example must exit 0 and
print something.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
SCRIPTS = sorted(EXAMPLES.glob("*.py"))
TIMEOUT = 60  # seconds; each example is meant to finish well under 30

KEY_LINES = {
    "wrap_fragile_step.py": "voted accuracy (k=3):",
    "hybrid_pipeline.py": "solved: True",
    "human_escalation.py": "(decided by escalation)",
}


def test_examples_exist() -> None:
    names = {script.name for script in SCRIPTS}
    assert set(KEY_LINES) <= names


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: p.name)
def test_example_runs(script: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(EXAMPLES.parent), "MPLBACKEND": "Agg",
           "LANGCHAIN_TRACING_V2": "false", "LANGSMITH_TRACING": "false"}
    done = subprocess.run(
        [sys.executable, str(script)], cwd=EXAMPLES.parent, env=env, capture_output=True,
        text=True, timeout=TIMEOUT, check=False,
    )
    assert done.returncode == 0, f"{script.name} failed:\n{done.stdout}\n{done.stderr}"
    assert done.stdout.strip(), f"{script.name} printed nothing"
    key = KEY_LINES.get(script.name)
    if key is not None:
        assert key in done.stdout, f"{script.name} did not print {key!r}:\n{done.stdout}"
