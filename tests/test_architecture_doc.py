"""docs/architecture.md's generated half is current: every module, by layer, and the core."""

from __future__ import annotations

import runpy
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GENERATOR = runpy.run_path(str(ROOT / "scripts" / "gen_architecture.py"))


def test_architecture_page_is_current() -> None:
    actual = (ROOT / "docs" / "architecture.md").read_text(encoding="utf-8")
    assert actual == GENERATOR["render"](), (
        "docs/architecture.md is stale: run `python scripts/gen_architecture.py`"
    )


def test_the_map_names_every_module_once() -> None:
    page = GENERATOR["render_generated"]()
    names = [line.split("`")[1] for line in page.splitlines() if line.startswith("| `maker_graph")]
    modules = GENERATOR["_module_names"]()
    assert sorted(names) == sorted(modules)


def test_the_core_is_modules_of_the_package() -> None:
    missing = [m for m, _ in GENERATOR["CORE"] if not (ROOT / "maker_graph" / m).is_file()]
    assert missing == []
