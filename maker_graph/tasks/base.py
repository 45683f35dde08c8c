"""The `Task` protocol: what a long, maximally decomposed run needs to know.

A task is a chain of tiny steps. Each step's sample sees only what that step
needs (the current state, the previous action and the task's fixed strategy,
never the history) and answers with the action *and* the next state, which is
the next step's input. The engine votes each step and commits it before the
next one starts.

A task is about 40 lines: see `maker_graph.tasks.hanoi` for a complete one.

Example:
    >>> class CountDown:
    ...     name = "countdown"
    ...     def initial_state(self): return 5
    ...     def step_input(self, state, previous, step): return {"n": state}
    ...     def prompt(self, step_input): return f"What is {step_input['n']} - 1? Answer: n = <int>"
    ...     def parse(self, output): n = int(str(output).split("=")[-1]); return StepAnswer(n, n)
    ...     def is_done(self, state): return state == 0
    ...     def true_step(self, state, previous): return StepAnswer(state - 1, state - 1)
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

__all__ = ["StepAnswer", "Task", "TaskWithTruth"]


@dataclass(frozen=True, slots=True)
class StepAnswer:
    """One step's answer: the action taken and the state it leads to.

    Votes compare `key()`: two samples agree when both the action and the next
    state agree.
    """

    action: Any
    next_state: Any

    def key(self) -> Hashable:
        return (_freeze(self.action), _freeze(self.next_state))


def _freeze(value: Any) -> Hashable:
    if isinstance(value, (list, tuple)):
        return tuple(_freeze(v) for v in value)
    if isinstance(value, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in value.items()))
    return value  # type: ignore[no-any-return]


@runtime_checkable
class Task(Protocol):
    """A decomposed task. Only `name` and these five methods are required.

    Attributes:
        name: a short identifier, stored in the run log so a run directory is
            never resumed with another task.
    """

    name: str

    def initial_state(self) -> Any:
        """The state before the first step."""

    def step_input(self, state: Any, previous_action: Any, step: int) -> Any:
        """What every sample of step `step` (0-based) receives: built from the current
        state and the previous action only."""

    def prompt(self, step_input: Any) -> Any:
        """The chat-model input for a step (a string or a list of messages)."""

    def parse(self, output: Any) -> StepAnswer:
        """Strictly parse one sample's raw output; raise on anything malformed (red flag)."""

    def is_done(self, state: Any) -> bool:
        """True once the task is complete."""


@runtime_checkable
class TaskWithTruth(Task, Protocol):
    """A task that knows the right answer of every step.

    Used to verify a run independently of the vote, to drive simulated models,
    and to estimate a model's per-step accuracy on random steps.
    """

    def true_step(self, state: Any, previous_action: Any) -> StepAnswer:
        """The correct answer of the step taken from `state` after `previous_action`."""
