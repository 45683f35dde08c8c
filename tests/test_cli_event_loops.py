"""The command line runs its work on maker_graph's own loops, and leaves the process's
asyncio loop policy alone.

It used to install a process-wide policy so that every loop resolved host names in daemon
threads (`maker_graph._sync.new_event_loop`); an in-process `main()` (as the CLI tests
call it) then leaked that policy into every later test of the worker, and loop policies
are deprecated from Python 3.14. Each command now starts its loop on
`asyncio.Runner(loop_factory=new_event_loop)` (`maker_graph._sync.run_to_end`) instead,
which is what these tests check, in-process, for the commands that start one.
"""

from __future__ import annotations

import asyncio
import sys
import warnings
from pathlib import Path
from typing import Any

import pytest

import maker_graph._sync
from maker_graph.cli import main

# Commands that start an event loop, all offline (simulated models), small and seeded.
COMMANDS = [
    "multiply 12 34 --seed 0",
    "hanoi --disks 2 --seed 0",
    "estimate hanoi --disks 2 --steps 20",
]


def _policy() -> object:
    # get_event_loop_policy itself is deprecated from 3.14; reading it is the point here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return asyncio.get_event_loop_policy()


@pytest.mark.parametrize("args", COMMANDS)
def test_a_command_runs_on_the_resolving_loop_and_leaves_the_policy(
    args: str,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    made: list[asyncio.AbstractEventLoop] = []
    factory = maker_graph._sync.new_event_loop

    def counting() -> asyncio.AbstractEventLoop:
        made.append(factory())
        return made[-1]

    # run_to_end looks the factory up when it is called, so this sees every loop it makes.
    monkeypatch.setattr(maker_graph._sync, "new_event_loop", counting)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "argv", ["maker-graph", *args.split()])
    before = _policy()
    code: Any = 0
    try:
        main()
    except SystemExit as exit_:
        code = exit_.code
    captured = capsys.readouterr()
    assert code in (0, None), captured.err
    assert "Traceback" not in captured.err
    assert _policy() is before  # no process-wide policy left behind
    assert made, "the command's work did not run on maker_graph._sync.new_event_loop"
    assert all(type(loop).__name__ == "_ResolvingLoop" for loop in made)
    assert all(loop.is_closed() for loop in made)  # each run's loop ended with it
