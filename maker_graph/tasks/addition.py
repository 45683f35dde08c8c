"""Long addition, one column a step: a second `TaskWithTruth` beside Hanoi.

Two random `digits`-digit numbers are added right to left. Step `i` sees only
column `i`'s two digits and the incoming carry, and answers with the column,
the sum digit and the outgoing carry:

    column = 3, digit = 7, carry = 1

The column is part of the answer (as Hanoi's answer carries its next state),
so the next step's state, `(column + 1, carry)`, comes from the voted answer
alone and `true_step` knows which digits the step adds. This is the micro-step
task of issue 13's real-model trial (a 200-column sum).

Example:
    >>> task = LongAdditionTask(4, seed=1)
    >>> task.parse(task.format_answer(task.true_step(task.initial_state(), None))).key()
    ((0, 3), (1, 0))
"""

from __future__ import annotations

import random
import re
from collections.abc import Hashable
from typing import Any, NamedTuple

from .base import StepAnswer

__all__ = ["AdditionStep", "LongAdditionTask", "simulated_sampler"]

State = tuple[int, int]  # (column to add next, carry into it)

_ANSWER = re.compile(
    r"\s*column\s*=\s*(\d{1,6})\s*,\s*digit\s*=\s*(\d)\s*,\s*carry\s*=\s*([01])\s*", re.I
)


class AdditionStep(NamedTuple):
    """What the samples of one column see."""

    column: int
    a: int
    b: int
    carry: int


class LongAdditionTask:
    """`a + b` for two random numbers of `digits` digits, one voted column a step."""

    name = "long_addition"

    def __init__(self, digits: int = 200, seed: int = 0) -> None:
        if digits < 1:
            raise ValueError(f"digits must be >= 1, got {digits}")
        rng = random.Random(seed)
        self.digits = digits
        self.seed = seed
        # Least significant digit first: column i adds a[i] and b[i].
        self.a = [rng.randint(0, 9) for _ in range(digits)]
        self.b = [rng.randint(0, 9) for _ in range(digits)]
        self.params = {"digits": digits, "seed": seed}
        self._carries = [0]
        for i in range(digits):
            self._carries.append((self.a[i] + self.b[i] + self._carries[-1]) // 10)

    @property
    def total_steps(self) -> int:
        return self.digits

    def initial_state(self) -> State:
        return (0, 0)

    def state_at(self, step: int) -> tuple[State, Any]:
        """The state before `step` and the action that led there (jumps, no replay)."""
        previous = (
            None if step == 0 else self.true_step((step - 1, self._carries[step - 1]), None).action
        )
        return (step, self._carries[step]), previous

    def step_input(self, state: State, previous_action: Any, step: int) -> AdditionStep:
        column, carry = state
        return AdditionStep(column, self.a[column], self.b[column], carry)

    def prompt(self, step_input: AdditionStep) -> str:
        s = step_input
        return (
            f"Long addition, column {s.column} (counted from the right, from 0). Add the "
            f"digits {s.a} and {s.b} and the incoming carry {s.carry}. Reply with exactly "
            f"one line: column = {s.column}, digit = <last digit of the sum>, carry = <0 or 1>"
        )

    def parse(self, output: Any) -> StepAnswer:
        """Strict: the one answer line and nothing else (anything more is a red flag)."""
        text = str(getattr(output, "content", output))
        match = _ANSWER.fullmatch(text)
        if match is None:
            raise ValueError(f"not 'column = C, digit = D, carry = K': {text[:80]!r}")
        column, digit, carry = (int(g) for g in match.groups())
        return StepAnswer((column, digit), (column + 1, carry))

    def is_done(self, state: State) -> bool:
        return state[0] >= self.digits

    def true_step(self, state: State, previous_action: Any) -> StepAnswer:
        column, carry = state
        total = self.a[column] + self.b[column] + carry
        return StepAnswer((column, total % 10), (column + 1, total // 10))

    @staticmethod
    def format_answer(answer: StepAnswer) -> str:
        (column, digit), (_, carry) = answer.action, answer.next_state
        return f"column = {column}, digit = {digit}, carry = {carry}"

    def total(self) -> int:
        """The right sum, to check a run's digits against."""
        a = int("".join(map(str, reversed(self.a))))
        b = int("".join(map(str, reversed(self.b))))
        return a + b

    def __repr__(self) -> str:
        return f"LongAdditionTask(digits={self.digits}, seed={self.seed})"


def simulated_sampler(
    task: LongAdditionTask, errors: Any = None, *, model_name: str = "simulated"
) -> Any:
    """A simulated model of `task`: the true column sum, or a wrong digit that still parses.

    Rival `r` is off by `r + 1` in the digit (carry kept), so wrong answers agree
    when the `ErrorModel` has one rival, as on its hard (stuck) steps.

    Example:
        >>> import asyncio
        >>> from maker_graph.testing import ErrorModel
        >>> task = LongAdditionTask(3, seed=2)
        >>> s = simulated_sampler(task, ErrorModel(error_rate=0.0))
        >>> asyncio.run(s.sample(task.step_input((0, 0), None, 0), 0)).text
        'column = 0, digit = 5, carry = 0'
    """
    from ..testing import ErrorModel, SimulatedSampler

    def truth(step_input: AdditionStep) -> StepAnswer:
        return task.true_step((step_input.column, step_input.carry), None)

    def answer(step_input: AdditionStep) -> str:
        return task.format_answer(truth(step_input))

    def wrong(step_input: AdditionStep, rival: int) -> str:
        right = truth(step_input)
        (column, digit), nxt = right.action, right.next_state
        return task.format_answer(StepAnswer((column, (digit + rival + 1) % 10), nxt))

    def key(step_input: AdditionStep) -> Hashable:
        return step_input.column

    return SimulatedSampler(
        answer,
        wrong=wrong,
        errors=errors if errors is not None else ErrorModel(),
        step_key=key,
        tokens=lambda text: max(1, len(text) // 4),
        input_tokens=60,
        model_name=model_name,
    )
