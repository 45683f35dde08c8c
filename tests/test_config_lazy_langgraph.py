"""`maker-graph schema` and `validate` (no `--build`) never import LangGraph.

Importing langgraph costs about a second; reading and checking a spec needs none
of it. Each check runs in a fresh interpreter, since this test process has long
imported langgraph.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SPEC = Path(__file__).parent.parent / "examples" / "configs" / "triage.yaml"

_PROBE = """
import json, sys
from maker_graph.cli import load_commands
from maker_graph.cli.app import app
load_commands()
try:
    app(sys.argv[1:], standalone_mode=False)
except SystemExit:
    pass
heavy = sorted(m for m in ("langgraph", "langchain_core") if m in sys.modules)
print(json.dumps(heavy), file=sys.stderr)
"""


@pytest.mark.parametrize(
    "argv",
    [["schema", "--output", "{tmp}/schema.json"], ["validate", str(SPEC)]],
    ids=["schema", "validate"],
)
def test_spec_commands_do_not_import_langgraph(argv: list[str], tmp_path: Path) -> None:
    args = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "ok:" in done.stdout or (tmp_path / "schema.json").stat().st_size > 1000
    imported = json.loads(done.stderr.strip().splitlines()[-1])
    assert imported == [], f"{argv[0]} imported {imported}"


def test_config_package_import_leaves_langgraph_unloaded() -> None:
    code = (
        "import sys, maker_graph.config\n"
        "from maker_graph.config import load_spec\n"
        f"load_spec({str(SPEC)!r})\n"
        "print('langgraph' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
