"""docs/reference.md is generated from the code and must be current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_reference_page_is_current() -> None:
    # Rendered in a fresh interpreter: the page shows live values (the default
    # registry's counts), which tests that register components change in this one.
    script = ROOT / "scripts" / "gen_reference.py"
    code = f"import runpy; print(runpy.run_path({str(script)!r})['render'](), end='')"
    done = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    expected = done.stdout
    actual = (ROOT / "docs" / "reference.md").read_text()
    assert actual == expected, "docs/reference.md is stale: run `python scripts/gen_reference.py`"


def test_reference_page_covers_every_public_module() -> None:
    exported = {"maker_graph"}
    for path in (ROOT / "maker_graph").rglob("*.py"):
        rel = path.relative_to(ROOT).with_suffix("")
        parts = rel.parts
        if any(p.startswith("_") and p != "__init__" for p in parts) or "cli" in parts:
            continue
        name = ".".join(p for p in parts if p != "__init__")
        module_text = path.read_text()
        if "__all__" in module_text and name.count(".") == 1:
            exported.add(name)
    page = (ROOT / "docs" / "reference.md").read_text()
    missing = sorted(m for m in exported if f"## `{m}`" not in page)
    assert not missing, f"add these modules to scripts/gen_reference.py: {missing}"
