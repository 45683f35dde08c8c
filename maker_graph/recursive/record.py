"""The tree record: who proposed what and how every vote went, append-only.

A recursive run writes one JSON object per line to `<run dir>/tree.jsonl`:
`tree` when a tree starts, `node` for every sub-problem, `proposals` (every
decomposer sample, red flags included, and the distinct candidates with their
proposers), `choice` (the discriminator's vote, or why none was needed),
`answer` (the solver's or composer's vote), `failure` and `done`. Lines are
only ever appended and each is flushed (and fsynced) before the run moves on,
so a killed run leaves a readable record up to its last decision. `load_trees`
reads a record back, tolerating a torn last line and events repeated by a
resumed run (the last one of a kind wins).

Example:
    >>> rec = MemoryTreeRecorder()
    >>> rec.write({"event": "tree", "tree": "t1", "problem": "2 × 3"})
    >>> rec.write({"event": "node", "tree": "t1", "node": "0", "depth": 0, "problem": "2 × 3"})
    >>> load_events(rec.events)[0].nodes["0"].problem
    '2 × 3'
"""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from ..errors import RunLogError

__all__ = [
    "TREE_FILE",
    "JsonlTreeRecorder",
    "MemoryTreeRecorder",
    "NodeView",
    "TreeRecorder",
    "TreeView",
    "load_events",
    "load_trees",
    "read_events",
]

TREE_FILE = "tree.jsonl"
"""The tree record's file name inside a run directory."""


@runtime_checkable
class TreeRecorder(Protocol):
    """Receives the tree's events, in order, as JSON-serialisable dicts."""

    def write(self, event: dict[str, Any]) -> None: ...


class MemoryTreeRecorder:
    """Keeps events in a list (tests, analysis, runs that need no file)."""

    def __init__(self) -> None:
        self.events: list[dict[str, Any]] = []
        self._lock = threading.Lock()

    def write(self, event: dict[str, Any]) -> None:
        with self._lock:
            self.events.append(event)


class JsonlTreeRecorder:
    """Appends events to `<run_dir>/tree.jsonl`, one line each, flushed as written.

    Args:
        run_dir: the run directory (created if missing).
        fsync: also force each line to disk (durable across a power cut; ~ms a line).

    Raises:
        RunLogError: the directory or file cannot be written.

    Example:
        >>> import tempfile
        >>> with tempfile.TemporaryDirectory() as d:
        ...     rec = JsonlTreeRecorder(d, fsync=False)
        ...     rec.write({"event": "tree", "tree": "t", "problem": "p"})
        ...     rec.close()
        ...     [t.problem for t in load_trees(d)]
        ['p']
    """

    def __init__(self, run_dir: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = Path(run_dir) / TREE_FILE
        self.fsync = fsync
        self._lock = threading.Lock()
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", encoding="utf-8")
        except OSError as exc:
            raise RunLogError(f"cannot write the tree record {self.path}: {exc}") from exc

    def write(self, event: dict[str, Any]) -> None:
        line = json.dumps(event, ensure_ascii=False, default=repr, separators=(",", ":"))
        with self._lock:
            try:
                # One write per line: appends from one process never interleave mid-line.
                self._file.write(line + "\n")
                self._file.flush()
                if self.fsync:
                    os.fsync(self._file.fileno())
            except (OSError, ValueError) as exc:
                raise RunLogError(f"cannot append to the tree record {self.path}: {exc}") from exc

    def close(self) -> None:
        with self._lock:
            self._file.close()

    def __enter__(self) -> JsonlTreeRecorder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def stamp(event: dict[str, Any]) -> dict[str, Any]:
    """Add the wall-clock time to an event."""
    event["t"] = round(time.time(), 3)
    return event


# --------------------------------------------------------------------------- reading


@dataclass
class NodeView:
    """Everything recorded about one tree node."""

    id: str
    parent: str | None = None
    depth: int = 0
    problem: str = ""
    proposals: dict[str, Any] | None = None
    choice: dict[str, Any] | None = None
    answer_event: dict[str, Any] | None = None
    failure: dict[str, Any] | None = None
    children: list[str] = field(default_factory=list)

    @property
    def answer(self) -> str | None:
        return None if self.answer_event is None else self.answer_event.get("answer")

    @property
    def decomposition(self) -> dict[str, Any] | None:
        return None if self.choice is None else self.choice.get("decomposition")

    @property
    def samples(self) -> int:
        """Samples drawn at this node, all roles together."""
        total = 0
        for event, key in (
            (self.proposals, "draw"),
            (self.choice, "vote"),
            (self.answer_event, "vote"),
        ):
            vote = (event or {}).get(key) or {}
            total += int(vote.get("samples_drawn", 0))
        return total


@dataclass
class TreeView:
    """One recorded tree."""

    id: str
    problem: str = ""
    started: dict[str, Any] = field(default_factory=dict)
    nodes: dict[str, NodeView] = field(default_factory=dict)
    done: dict[str, Any] | None = None
    failures: list[dict[str, Any]] = field(default_factory=list)

    @property
    def answer(self) -> str | None:
        return None if self.done is None else self.done.get("answer")

    @property
    def root(self) -> NodeView | None:
        return self.nodes.get("0")

    def walk(self) -> Iterator[NodeView]:
        """Nodes depth first, children in order."""
        stack = [self.nodes["0"]] if "0" in self.nodes else []
        while stack:
            node = stack.pop()
            yield node
            stack.extend(self.nodes[c] for c in reversed(node.children) if c in self.nodes)


def read_events(run_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Every event of a run directory's tree record, in order (a torn last line is skipped).

    Raises:
        RunLogError: there is no record, or a line other than the last is not JSON.
    """
    path = Path(run_dir)
    if path.is_dir():
        path = path / TREE_FILE
    if not path.exists():
        raise RunLogError(f"no tree record at {path}: run `maker-graph multiply ... --run-dir`")
    lines = path.read_text(encoding="utf-8").splitlines()
    events = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            events.append(json.loads(line))
        except json.JSONDecodeError as exc:
            if number == len(lines):
                break  # a run killed mid-write leaves a torn last line
            raise RunLogError(f"{path}:{number}: not a JSON line ({exc})") from exc
    return events


def load_events(events: Iterable[dict[str, Any]]) -> list[TreeView]:
    """Rebuild the recorded trees from their events, in the order they started."""
    trees: dict[str, TreeView] = {}
    for event in events:
        tid = str(event.get("tree", ""))
        tree = trees.get(tid)
        if tree is None:
            tree = trees[tid] = TreeView(id=tid)
        kind = event.get("event")
        if kind == "tree":
            tree.problem = str(event.get("problem", ""))
            tree.started = event
            continue
        if kind == "done":
            tree.done = event
            continue
        node_id = event.get("node")
        if node_id is None:
            continue
        node = tree.nodes.get(node_id)
        if node is None:
            node = tree.nodes[node_id] = NodeView(id=node_id)
        if kind == "node":
            node.parent = event.get("parent")
            node.depth = int(event.get("depth", 0))
            node.problem = str(event.get("problem", ""))
            parent = tree.nodes.get(node.parent) if node.parent is not None else None
            if parent is not None and node_id not in parent.children:
                parent.children.append(node_id)
        elif kind == "proposals":
            node.proposals = event
        elif kind == "choice":
            node.choice = event
        elif kind == "answer":
            node.answer_event = event
        elif kind == "failure":
            node.failure = event
            tree.failures.append(event)
    for tree in trees.values():
        for node in tree.nodes.values():
            node.children.sort(key=_order)
    return list(trees.values())


def load_trees(run_dir: str | os.PathLike[str]) -> list[TreeView]:
    """The trees recorded in a run directory (or a `tree.jsonl` path)."""
    return load_events(read_events(run_dir))


def _order(node_id: str) -> tuple[int, ...]:
    try:
        return tuple(int(p) for p in node_id.split("."))
    except ValueError:
        return (1 << 30,)
