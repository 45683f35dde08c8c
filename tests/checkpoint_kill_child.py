"""A child process for the checkpointer kill tests: runs a counting graph, then hangs mid-write.

    python tests/checkpoint_kill_child.py STORE MARKS N STALL

runs `loop_graph(N)` (below) with `open_checkpointer(STORE)` and durability="sync".
Marks go to MARKS, unbuffered, one line each: `ran I` when the node runs for I,
`committed I` when the checkpoint holding I (the state after the node for I-1)
has been written and committed. For the checkpoint written after the node for
STALL, the saver's write runs its SQL and then, inside the still-open
transaction, writes `mid I <in-transaction> <backend pid>` and sleeps until the
test kills it with SIGKILL.

The parent tests (tests/test_store.py, tests/postgres/test_checkpointer_postgres.py)
then read the store from a fresh connection.
"""

from __future__ import annotations

import operator
import os
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph

STALL_SECONDS = 120  # far past any test's wait; the test kills the child long before


class LoopState(TypedDict):
    i: int
    seen: Annotated[list[int], operator.add]


def loop_graph(n: int, on_step: Any = None) -> StateGraph[Any, Any, Any, Any]:
    """i -> i + 1 until n; `seen` accumulates every i a node has finished."""

    def step(state: LoopState) -> dict[str, Any]:
        if on_step is not None:
            on_step(state["i"])
        return {"i": state["i"] + 1, "seen": [state["i"]]}

    builder: StateGraph[Any, Any, Any, Any] = StateGraph(LoopState)
    builder.add_node("step", step)
    builder.add_edge(START, "step")
    builder.add_conditional_edges("step", lambda s: END if s["i"] >= n else "step")
    return builder


def _stall_inside(saver: Any, mark: Any, armed: dict[str, Any]) -> None:
    """Hold the armed checkpoint write open after its SQL ran, before its COMMIT."""
    sqlite = hasattr(saver, "cursor") and not hasattr(saver, "_cursor")
    if not sqlite:
        # LangGraph's non-pipeline path runs each statement at once inside
        # conn.transaction(); in pipeline mode they could still sit in the client
        # buffer when the kill lands, and nothing would be half-written server-side.
        saver.supports_pipeline = False
    name = "cursor" if sqlite else "_cursor"
    real = getattr(saver, name)

    def hold(conn: Any) -> None:
        if sqlite:
            in_tx, pid = conn.in_transaction, 0
        else:
            in_tx = conn.info.transaction_status.name == "INTRANS"
            pid = conn.info.backend_pid
        mark(f"mid {armed['i']} {in_tx} {pid}")
        time.sleep(STALL_SECONDS)

    @contextmanager
    def cursor(*args: Any, **kwargs: Any) -> Iterator[Any]:
        with real(*args, **kwargs) as cur:
            yield cur
            if armed.get("writer") == threading.get_ident():
                hold(cur.connection)

    setattr(saver, name, cursor)
    put = saver.put

    def armed_put(config: Any, checkpoint: Any, metadata: Any, versions: Any) -> Any:
        i = checkpoint["channel_values"].get("i")
        if i is not None and i == armed["stall"] + 1:
            # put_writes runs on other threads meanwhile: only this thread stalls.
            armed["writer"], armed["i"] = threading.get_ident(), i
        out = put(config, checkpoint, metadata, versions)
        if i is not None:
            mark(f"committed {i}")
        return out

    saver.put = armed_put


def kill_mid_write(store: str, marks: Any, n: int, stall: int, wait: float = 60.0) -> list[str]:
    """Run this file as a child on `store`, SIGKILL it inside the armed write; its marks.

    Every wait is bounded: the child must reach the stalled write within `wait`
    seconds (it needs about 2 s: imports and a few small commits).
    """
    import signal
    import subprocess
    from pathlib import Path

    marks = Path(marks)
    with subprocess.Popen(
        [sys.executable, __file__, store, str(marks), str(n), str(stall)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    ) as child:
        deadline = time.monotonic() + wait
        try:
            while not (marks.exists() and "\nmid " in f"\n{marks.read_text()}"):
                if child.poll() is not None:
                    raise AssertionError(
                        f"child exited {child.returncode}: {child.stderr.read()!r}"
                    )
                if time.monotonic() > deadline:
                    raise AssertionError(f"no stalled write within {wait} s")
                time.sleep(0.02)
        finally:
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)
    assert child.returncode == -signal.SIGKILL
    return marks.read_text().splitlines()


def check_resume_after_kill(store: str, thread_id: str = "killed") -> None:
    """What a kill inside checkpoint 4's write of a `loop_graph(8)` run must leave.

    Every committed checkpoint survives and the half-written one is not visible; the
    resumed graph lands each node's effect exactly once.
    """
    from maker_graph.checkpointers import open_checkpointer

    cfg = {"configurable": {"thread_id": thread_id}}
    calls: list[int] = []
    with open_checkpointer(store) as saver:
        held = [c.checkpoint["channel_values"].get("i") for c in saver.list(cfg)]
        assert held == [3, 2, 1, 0, None]  # newest first; none holds i=4
        latest = saver.get_tuple(cfg)
        assert latest.checkpoint["channel_values"]["seen"] == [0, 1, 2]
        writes = {w[1]: w[2] for w in latest.pending_writes if w[1] in LoopState.__annotations__}
        out = loop_graph(8, calls.append).compile(checkpointer=saver).invoke(None, cfg)
    assert out["seen"] == list(range(8))
    # LangGraph writes the node's result (put_writes) and the next checkpoint from
    # background threads: if the node for 3 had its write committed before the kill,
    # it survives and the node does not run again; if not, nothing of it is visible
    # and the node reruns. Either way each node's effect lands exactly once.
    if writes:
        assert writes == {"i": 4, "seen": [3]}
        assert calls == [4, 5, 6, 7]
    else:
        assert calls == [3, 4, 5, 6, 7]


def main(store: str, marks_path: str, n: int, stall: int) -> None:
    from maker_graph.checkpointers import open_checkpointer

    fd = os.open(marks_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)

    def mark(line: str) -> None:
        os.write(fd, f"{line}\n".encode())

    cfg = {"configurable": {"thread_id": "killed"}}
    with open_checkpointer(store) as saver:
        _stall_inside(saver, mark, {"stall": stall})
        graph = loop_graph(n, lambda i: mark(f"ran {i}")).compile(checkpointer=saver)
        graph.invoke({"i": 0, "seen": []}, cfg, durability="sync")
    mark("finished")  # only reached if the stall was never armed


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
