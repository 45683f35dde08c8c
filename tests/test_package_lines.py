"""scripts/package_lines.py splits a module's lines by kind and counts revisions."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _script():
    spec = importlib.util.spec_from_file_location(
        "package_lines", ROOT / "scripts/package_lines.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_each_line_has_one_kind():
    source = '''"""Module docstring,
on two lines."""

import os  # a trailing comment is code


def f():
    """One line."""
    # why
    return os.sep
'''
    kinds = _script().count_lines(source)
    assert dict(kinds) == {"docstring": 3, "blank": 3, "code": 3, "comment": 1}
    assert sum(kinds.values()) == len(source.splitlines())


def test_working_tree_total_is_every_line_of_the_package():
    out = subprocess.run(
        [sys.executable, "scripts/package_lines.py"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    total = int(out.splitlines()[-1].split()[0].replace(",", ""))
    wc = sum(len(p.read_text().splitlines()) for p in (ROOT / "maker_graph").rglob("*.py"))
    assert total == wc
