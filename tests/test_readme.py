"""The README's example runs and prints what the README says it prints."""

from __future__ import annotations

import contextlib
import io
import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_example_output_is_true() -> None:
    text = README.read_text()
    block = re.search(r"## Vote one step\s+```python\n(.*?)```", text, re.S)
    assert block, "README lost its example"
    code = block.group(1)
    expected = re.search(r"# (billing .*)$", code, re.M)
    assert expected
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().strip() == expected.group(1).strip()


def test_readme_wrapping_example_output_is_true() -> None:
    text = README.read_text()
    block = re.search(r"## Wrap a fragile step of your graph\s+```python\n(.*?)```", text, re.S)
    assert block, "README lost its maker_node example"
    code = block.group(1)
    expected = re.search(r"^# (\{.*\})$", code, re.M)
    assert expected
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        exec(compile(code, "README.md", "exec"), {})
    assert out.getvalue().strip() == expected.group(1).strip()


def test_readme_names_the_two_commands() -> None:
    text = README.read_text()
    assert "make demo" in text and "make test" in text
