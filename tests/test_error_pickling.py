"""maker_graph's errors survive pickling: a step voted in a process pool or a
multiprocessing worker fails there with its structured fields intact in the parent.

Before, every error with fields of its own (NoConsensusError, BudgetExhaustedError,
SamplerError, SpecError, NodeBudgetExhaustedError) failed to unpickle: the default
rebuilds an exception by calling its class with the message alone, a TypeError."""

from __future__ import annotations

import asyncio
import multiprocessing
import pickle
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import pytest

from maker_graph import vote_step
from maker_graph.errors import (
    BudgetExhaustedError,
    ConfigurationError,
    NoConsensusError,
    RunLogError,
    SamplerError,
    SpecError,
)
from maker_graph.recursive.failures import NodeBudgetExhaustedError

ERRORS = [
    NoConsensusError(
        {"a": 3, "b": 3},
        6,
        6,
        red_flags={"too_long": 1},
        step=4,
        k=2,
        stopped="hopeless",
        provider_failures={"timeout": 2},
        input_tokens=120,
        output_tokens=30,
        cached_input_tokens=64,
        spares_unused=1,
    ),
    BudgetExhaustedError("samples", 100, 101, "--max-samples", steps_done=7),
    NodeBudgetExhaustedError(
        node="0.1", role="solve", problem="add 2 and 3", limit=10, spent=10, tally={"5": 4}
    ),
    SamplerError("the provider kept failing", {"exception": 6}, ConnectionError("refused")),
    SpecError([("nodes.step.k", "must be >= 1")], source="graph.yaml"),
    ConfigurationError("k must be an integer >= 1, got 0"),
    RunLogError("the run log is locked by another process"),
]


def _fields(error: BaseException) -> dict[str, Any]:
    # A wrapped provider exception compares by identity: compare what it says.
    return {k: repr(v) if isinstance(v, BaseException) else v for k, v in vars(error).items()}


@pytest.mark.parametrize("error", ERRORS, ids=lambda e: type(e).__name__)
def test_a_pickled_error_is_the_same_error(error: BaseException) -> None:
    copy = pickle.loads(pickle.dumps(error))
    assert type(copy) is type(error)
    assert str(copy) == str(error) and copy.args == error.args
    assert _fields(copy) == _fields(error)  # the fields too, not just the message


def _undecidable_step(_: int) -> None:
    answers = ["a", "b"] * 3
    asyncio.run(vote_step(lambda q, i: answers[i], "q", k=3, max_samples=6))


def test_a_step_that_fails_in_a_process_pool_reports_its_tally() -> None:
    # spawn, not fork: forking a process that has threads running is unsafe (and a
    # DeprecationWarning from Python 3.12, an error in this suite).
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context) as pool:
        future = pool.submit(_undecidable_step, 0)
        with pytest.raises(NoConsensusError) as info:
            future.result(timeout=120)
    # a,b,a / b,a: 3-2 after 5, and the 1 sample left cannot make 3 ahead.
    assert info.value.tally == {"a": 3, "b": 2} and info.value.stopped == "hopeless"
    assert (info.value.samples_drawn, info.value.max_samples, info.value.k) == (5, 6, 3)
