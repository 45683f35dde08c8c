"""The README's example runs and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def run_example(heading: str, printed: str) -> None:
    """Execute the python block under `heading` and compare its output with the
    `# ...` comment (matched by the regex `printed`) that the README shows for it."""
    text = README.read_text()
    block = re.search(rf"## {re.escape(heading)}\s+```python\n(.*?)```", text, re.S)
    assert block, f"README lost its example under {heading!r}"
    code = block.group(1)
    expected = re.search(printed, code, re.M)
    assert expected, f"the example under {heading!r} no longer shows its output"
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().strip() == expected.group(1).strip()


def test_readme_example_output_is_true() -> None:
    run_example("Vote one step", r"# (billing .*)$")


def test_readme_wrapping_example_output_is_true() -> None:
    run_example("Wrap a fragile step of your graph", r"^# (\{.*\})$")


def test_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
