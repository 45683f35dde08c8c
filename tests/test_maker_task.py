"""`maker_task`: a voted step for the Functional API whose samples survive a resume.

Checked here: the winner and tally are the engine's (same seeded samples, same
decision); a crash in sample 4 or an `interrupt()` resumes under a real
checkpointer (InMemorySaver, SQLite) drawing only the samples that had not
finished; sync and async entrypoints; accuracy against the closed form.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.func import entrypoint, task
from langgraph.types import Command

import maker_graph
from maker_graph import ConfigurationError, NoConsensusError, ProviderRetry, SamplerError
from maker_graph.graph import MakerTask, maker_task
from maker_graph.scaling import p_step
from maker_graph.testing import ErrorModel, SimulatedSampler
from maker_graph.vote import vote_step

# One attempt per sample: a raised "crash" is not retried away inside the sample's task.
ONCE = ProviderRetry(max_attempts=1)

# Sample i answers SCRIPT[i]. With k=2: round 1 draws 0,1 (a, b), round 2 draws 2,3
# (a, b), round 3 draws 4,5 (a, a) and "a" wins 4-2 after six samples.
SCRIPT = ["a", "b", "a", "b", "a", "a", "b", "b", "b", "b"]


class Scripted:
    """A step function that counts its calls per sample index and can crash at one."""

    def __init__(self, crash_at: int | None = None) -> None:
        self.calls: collections.Counter[int] = collections.Counter()
        self.crash_at = crash_at
        self._lock = threading.Lock()

    def __call__(self, step_input: str, index: int) -> str:
        with self._lock:
            self.calls[index] += 1
        if index == self.crash_at:
            raise RuntimeError(f"process died while drawing sample {index}")
        return SCRIPT[index]


def _cfg(thread: str) -> dict[str, Any]:
    return {"configurable": {"thread_id": thread}}


def _summary(result: Any) -> dict[str, Any]:
    return {
        "winner": result.winner,
        "tally": dict(result.tally),
        "drawn": result.samples_drawn,
        "by": result.decided_by,
    }


EXPECTED = {"winner": "a", "tally": {"a": 4, "b": 2}, "drawn": 6, "by": "vote"}


# ---------------------------------------------------------------- checkpointers


@pytest.fixture(params=["memory", "sqlite"])
def saver_factory(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Any]:
    """Makes a sync checkpointer; each call is a fresh "process" over the same storage."""
    if request.param == "memory":
        shared = InMemorySaver()
        yield lambda: shared
        return
    sqlite = pytest.importorskip("langgraph.checkpoint.sqlite")
    import sqlite3

    path = tmp_path / "checkpoints.sqlite"
    conns: list[sqlite3.Connection] = []

    def make() -> Any:
        conn = sqlite3.connect(path, check_same_thread=False)
        conns.append(conn)
        return sqlite.SqliteSaver(conn)

    yield make
    for conn in conns:
        conn.close()


# ---------------------------------------------------------------- the decision


def test_winner_and_tally_sync_and_async() -> None:
    step = Scripted()
    voted = maker_task(step, k=2)

    @entrypoint()
    def sync_flow(question: str) -> dict[str, Any]:
        return _summary(voted.with_result(question).result())

    @entrypoint()
    async def async_flow(question: str) -> dict[str, Any]:
        return _summary(await voted.with_result(question))

    assert sync_flow.invoke("q") == EXPECTED
    assert asyncio.run(async_flow.ainvoke("q")) == EXPECTED
    # a sync entrypoint run by ainvoke calls the sync variant from a worker thread
    assert asyncio.run(sync_flow.ainvoke("q")) == EXPECTED
    assert step.calls == {i: 3 for i in range(6)}


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_same_decision_as_the_engine_on_seeded_samples(seed: int) -> None:
    sampler = SimulatedSampler(
        lambda q: f"answer-{q}", errors=ErrorModel(error_rate=0.35, rivals=2, seed=seed)
    )
    voted = maker_task(sampler, k=3)

    @entrypoint()
    def flow(question: int) -> dict[str, Any]:
        return _summary(voted.with_result(question).result())

    for question in range(8):
        engine = asyncio.run(vote_step(sampler, question, k=3))
        assert flow.invoke(question) == _summary(engine), (seed, question)


def test_call_returns_the_winner_and_the_decorator_form_names_the_task() -> None:
    @maker_task(k=2, parser=str.upper)
    def label(ticket: str) -> str:
        return "billing" if "charged" in ticket else "other"

    assert isinstance(label, MakerTask)
    assert label.name == "label"

    @entrypoint()
    def flow(ticket: str) -> str:
        return label(ticket).result()

    assert flow.invoke("charged twice") == "BILLING"
    assert maker_graph.maker_task is maker_task


def test_plurality_and_no_consensus() -> None:
    def alternate(step_input: str, index: int) -> str:
        return "ab"[index % 2]

    plural = maker_task(alternate, k=2, max_samples=5, on_no_consensus="plurality")
    strict = maker_task(alternate, k=2, max_samples=5)

    @entrypoint()
    def flow(which: str) -> dict[str, Any]:
        return _summary((plural if which == "plural" else strict).with_result("q").result())

    assert flow.invoke("plural") == {
        "winner": "a",
        "tally": {"a": 3, "b": 2},
        "drawn": 5,
        "by": "plurality",
    }
    with pytest.raises(NoConsensusError):
        flow.invoke("strict")


def test_chat_model_step_with_a_prompt() -> None:
    from maker_graph.testing import SimulatedChatModel

    model = SimulatedChatModel(
        oracle=lambda msgs: "billing",
        choices=["billing", "bug", "other"],
        errors=ErrorModel(error_rate=0.2, seed=3),
    )
    voted = maker_task(model, k=3, prompt=lambda ticket: f"Label this ticket: {ticket}")

    @entrypoint(checkpointer=InMemorySaver())
    def flow(ticket: str) -> dict[str, Any]:
        return _summary(voted.with_result(ticket).result())

    out = flow.invoke("charged twice", _cfg("chat"))
    assert out["winner"] == "billing" and out["by"] == "vote"
    assert (
        out["tally"]["billing"] - max([0, *(n for a, n in out["tally"].items() if a != "billing")])
        >= 3
    )


def test_setup_mistakes_fail_when_built() -> None:
    with pytest.raises(ConfigurationError, match="only apply when the step is a chat model"):
        maker_task(lambda q: "x", prompt=lambda q: q)
    with pytest.raises(ConfigurationError, match="on_no_consensus='escalate'"):
        maker_task(lambda q: "x", escalate=lambda result: "y")
    with pytest.raises(ConfigurationError, match="max_samples"):
        maker_task(lambda q: "x", k=3, max_samples=2)


# ---------------------------------------------------------------- crash and resume


def test_crash_in_sample_4_resumes_drawing_only_the_missing_sample(saver_factory: Any) -> None:
    step = Scripted(crash_at=4)
    voted = maker_task(step, k=2, retry=ONCE)

    def build(saver: Any) -> Any:
        @entrypoint(checkpointer=saver)
        def flow(question: str) -> dict[str, Any]:
            return _summary(voted.with_result(question).result())

        return flow

    with pytest.raises(SamplerError, match="sample 4"):
        build(saver_factory()).invoke("q", _cfg("crash"))
    # Round 3 drew 4 and 5 together: 5 finished although 4 failed.
    assert step.calls == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}

    step.crash_at = None  # the provider is back; a new process resumes the thread
    assert build(saver_factory()).invoke(None, _cfg("crash")) == EXPECTED
    assert step.calls == {0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 5: 1}


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_crash_in_sample_4_resumes_async(kind: str, tmp_path: Path) -> None:
    if kind == "sqlite":
        aio = pytest.importorskip("langgraph.checkpoint.sqlite.aio")
    shared = InMemorySaver()
    path = str(tmp_path / "async.sqlite")

    @contextlib.asynccontextmanager
    async def process() -> AsyncIterator[Any]:
        """A fresh process: a new connection to the same storage."""
        if kind == "memory":
            yield shared
        else:
            async with aio.AsyncSqliteSaver.from_conn_string(path) as saver:
                yield saver

    step = Scripted(crash_at=4)
    voted = maker_task(step, k=2, retry=ONCE)

    def build(saver: Any) -> Any:
        @entrypoint(checkpointer=saver)
        async def flow(question: str) -> dict[str, Any]:
            return _summary(await voted.with_result(question))

        return flow

    async with process() as saver:
        with pytest.raises(SamplerError, match="sample 4"):
            await build(saver).ainvoke("q", _cfg("crash"))
    assert step.calls == {0: 1, 1: 1, 2: 1, 3: 1, 4: 1, 5: 1}
    step.crash_at = None
    async with process() as saver:
        assert await build(saver).ainvoke(None, _cfg("crash")) == EXPECTED
    assert step.calls == {0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 5: 1}


def test_a_decided_vote_is_not_redone_when_the_entrypoint_fails_later(
    saver_factory: Any,
) -> None:
    step = Scripted()
    voted = maker_task(step, k=2)
    fail = {"now": True}

    @task
    def after(winner: str) -> str:
        if fail["now"]:
            raise RuntimeError("the next step failed")
        return winner.upper()

    def build(saver: Any) -> Any:
        @entrypoint(checkpointer=saver)
        def flow(question: str) -> str:
            return after(voted(question).result()).result()

        return flow

    with pytest.raises(RuntimeError, match="next step failed"):
        build(saver_factory()).invoke("q", _cfg("later"))
    fail["now"] = False
    assert build(saver_factory()).invoke(None, _cfg("later")) == "A"
    assert step.calls == {i: 1 for i in range(6)}


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_escalation_interrupts_and_the_resume_draws_nothing(mode: str) -> None:
    calls: collections.Counter[int] = collections.Counter()

    def alternate(step_input: str, index: int) -> str:
        calls[index] += 1
        return "ab"[index % 2]

    voted = maker_task(alternate, k=2, max_samples=6, on_no_consensus="escalate")
    saver = InMemorySaver()

    if mode == "sync":

        @entrypoint(checkpointer=saver)
        def flow(question: str) -> dict[str, Any]:
            return _summary(voted.with_result(question).result())

        first = flow.invoke("q", _cfg("hitl"))
    else:

        @entrypoint(checkpointer=saver)
        async def flow(question: str) -> dict[str, Any]:
            return _summary(await voted.with_result(question))

        first = asyncio.run(flow.ainvoke("q", _cfg("hitl")))
    request = first["__interrupt__"][0].value
    assert request["tally"] == [["a", 3], ["b", 3]] and request["samples_drawn"] == 6
    assert calls == {i: 1 for i in range(6)}

    resume = Command(resume="c")
    out = (
        flow.invoke(resume, _cfg("hitl"))
        if mode == "sync"
        else asyncio.run(flow.ainvoke(resume, _cfg("hitl")))
    )
    assert out == {"winner": "c", "tally": {"a": 3, "b": 3}, "drawn": 6, "by": "escalation"}
    assert calls == {i: 1 for i in range(6)}, "the resume redrew samples"


# ---------------------------------------------------------------- accuracy


def test_accuracy_matches_the_closed_form() -> None:
    """p = 0.75 per sample, one rival (all errors agree), k = 2: the vote is right with
    probability p_step(0.75, 2) = 0.9. Over 400 seeded steps the observed rate must be
    within 4 binomial standard errors (4 * 0.015 = 0.06) of it, and above the single
    sample's 0.75 by far more than that."""
    n, k = 400, 2
    sampler = SimulatedSampler(
        lambda q: "right",
        wrong=lambda q, rival: "wrong",
        errors=ErrorModel(error_rate=0.25, rivals=1, seed=11),
    )
    voted = maker_task(sampler, k=k)

    @entrypoint()
    async def flow(question: int) -> str:
        return await voted(question)

    async def run_all() -> list[str]:
        return [await flow.ainvoke(q) for q in range(n)]

    right = sum(answer == "right" for answer in asyncio.run(run_all())) / n
    expected = p_step(0.75, k)
    tolerance = 4 * math.sqrt(expected * (1 - expected) / n)
    assert abs(right - expected) <= tolerance, (right, expected, tolerance)
    assert right > 0.75 + tolerance


def test_a_thread_crashed_under_invoke_resumes_under_ainvoke() -> None:
    step = Scripted(crash_at=4)
    voted = maker_task(step, k=2, retry=ONCE)

    @entrypoint(checkpointer=InMemorySaver())
    def flow(question: str) -> dict[str, Any]:
        return _summary(voted.with_result(question).result())

    with pytest.raises(SamplerError, match="sample 4"):
        flow.invoke("q", _cfg("mixed"))
    step.crash_at = None
    assert asyncio.run(flow.ainvoke(None, _cfg("mixed"))) == EXPECTED
    assert step.calls == {0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 5: 1}


CHILD = """
import os, sqlite3, sys, time
from langgraph.checkpoint.sqlite import SqliteSaver
from langgraph.func import entrypoint
from maker_graph.graph import maker_task
from maker_graph.sampling import ProviderRetry

db, log, crash = sys.argv[1], sys.argv[2], sys.argv[3] == "crash"
SCRIPT = {script!r}

def step(question, index):
    with open(log, "a") as f:
        f.write(f"{{index}}\\n")
    if index == 4 and crash:
        time.sleep(0.5)  # sample 5, drawn in the same round, finishes and is saved first
        os._exit(17)     # the process dies: no exception, no cleanup, no final checkpoint
    return SCRIPT[index]

voted = maker_task(step, k=2, retry=ProviderRetry(max_attempts=1))

@entrypoint(checkpointer=SqliteSaver(sqlite3.connect(db, check_same_thread=False)))
def flow(question):
    result = voted.with_result(question).result()
    return [result.winner, result.samples_drawn]

print(flow.invoke("q" if crash else None, {{"configurable": {{"thread_id": "killed"}}}}))
"""


def test_a_killed_process_resumes_from_sqlite_drawing_only_the_missing_sample(
    tmp_path: Path,
) -> None:
    import os
    import subprocess
    import sys

    pytest.importorskip("langgraph.checkpoint.sqlite")
    script = tmp_path / "child.py"
    script.write_text(CHILD.format(script=SCRIPT))
    db, log = tmp_path / "checkpoints.sqlite", tmp_path / "calls.log"

    def run(mode: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, str(script), str(db), str(log), mode],
            capture_output=True,
            text=True,
            timeout=120,
            env=dict(os.environ),
        )

    killed = run("crash")
    assert killed.returncode == 17, killed.stderr
    resumed = run("resume")
    assert resumed.returncode == 0, resumed.stderr
    assert resumed.stdout.strip() == "['a', 6]"
    calls = collections.Counter(int(line) for line in log.read_text().split())
    assert calls == {0: 1, 1: 1, 2: 1, 3: 1, 4: 2, 5: 1}


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize(("limit", "most"), [(1, 1), (None, 3)])
def test_max_concurrency_bounds_the_sample_tasks_in_flight(
    mode: str, limit: int | None, most: int
) -> None:
    lock = threading.Lock()
    seen = {"now": 0, "most": 0}

    def slow(step_input: str) -> str:
        with lock:
            seen["now"] += 1
            seen["most"] = max(seen["most"], seen["now"])
        threading.Event().wait(0.05)
        with lock:
            seen["now"] -= 1
        return "a"

    voted = maker_task(slow, k=3, max_concurrency=limit)
    if mode == "sync":

        @entrypoint()
        def flow(question: str) -> str:
            return voted(question).result()

        assert flow.invoke("q") == "a"
    else:

        @entrypoint()
        async def flow(question: str) -> str:
            return await voted(question)

        assert asyncio.run(flow.ainvoke("q")) == "a"
    assert seen["most"] == most, seen


def test_calling_it_outside_a_run_says_where_it_works() -> None:
    voted = maker_task(lambda q: "a", k=2, name="classify")
    with pytest.raises(ConfigurationError, match="'classify' was called outside a LangGraph"):
        voted("q")


class _TemperatureModel(BaseChatModel):
    """Answers "oops" (not a number: red-flagged) below 0.5 and "42" from 0.5 up."""

    calls: list[float] = []

    @property
    def _llm_type(self) -> str:
        return "temperature-test"

    def _generate(
        self, messages: Any, stop: Any = None, run_manager: Any = None, **kwargs: Any
    ) -> ChatResult:
        temperature = kwargs.get("temperature") or 0.0
        self.calls.append(temperature)
        text = "42" if temperature >= 0.5 else "oops"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=text))])


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_stuck_step_is_redrawn_hotter_inside_the_sample_tasks(mode: str) -> None:
    """The vote's variation level (a context variable) reaches the nested sample tasks."""
    model = _TemperatureModel(calls=[])
    voted = maker_task(model, k=2, parser=lambda message: int(str(message.content)))
    if mode == "sync":

        @entrypoint()
        def flow(question: str) -> dict[str, Any]:
            result = voted.with_result(question).result()
            return {"winner": result.winner, "variations": result.variations}

        out = flow.invoke("q")
    else:

        @entrypoint()
        async def flow(question: str) -> dict[str, Any]:
            result = await voted.with_result(question)
            return {"winner": result.winner, "variations": result.variations}

        out = asyncio.run(flow.ainvoke("q"))
    assert out == {"winner": 42, "variations": 1}
    assert max(model.calls) >= 0.5 and min(model.calls) == 0.0
