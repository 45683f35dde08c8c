"""The errors maker_graph raises.

Setup errors (the graph, spec or arguments cannot work) are kept apart from
runtime errors (a step could not be decided, a budget ran out, a provider kept
failing). Runtime errors carry structured fields so callers can inspect what
happened instead of parsing messages::

    MakerGraphError
    ├── ConfigurationError          bad arguments, graph or spec; raised at build time
    │   └── SpecError               a declarative spec with one or more located problems
    └── MakerRuntimeError
        ├── NoConsensusError        the per-step sample budget ran out without a winner
        ├── BudgetExhaustedError    a run-level budget (samples, tokens, cost) ran out
        ├── SamplerError            a provider kept failing after all retries
        └── RunLogError             the run log is corrupt, locked or holds another task
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "BudgetExhaustedError",
    "ConfigurationError",
    "MakerGraphError",
    "MakerRuntimeError",
    "NoConsensusError",
    "RunLogError",
    "SamplerError",
    "SpecError",
]


class MakerGraphError(Exception):
    """Base class of every error raised by maker_graph."""

    def __reduce__(self) -> tuple[Any, ...]:
        # Subclasses take structured fields, not their message, so the default (calling
        # the class with `args`) cannot rebuild them: an error raised in a process pool
        # or a multiprocessing worker would arrive as a TypeError instead.
        return (_rebuilt, (type(self), self.args, self.__dict__))


def _rebuilt(cls: type[MakerGraphError], args: tuple[Any, ...], fields: dict[str, Any]) -> Any:
    error = cls.__new__(cls)
    error.args = args
    error.__dict__.update(fields)
    return error


class ConfigurationError(MakerGraphError, ValueError):
    """Arguments, a graph or a spec that cannot work. Raised before anything runs."""


class SpecError(ConfigurationError):
    """A declarative spec with problems; `problems` lists every one as `(location, message)`."""

    def __init__(self, problems: Sequence[tuple[str, str]], source: str | None = None) -> None:
        self.problems = list(problems)
        self.source = source
        head = f"invalid graph spec{f' {source}' if source else ''}"
        lines = [f"{head}: {len(self.problems)} problem(s)"]
        lines += [f"  {loc}: {msg}" if loc else f"  {msg}" for loc, msg in self.problems]
        super().__init__("\n".join(lines))


class MakerRuntimeError(MakerGraphError, RuntimeError):
    """Something went wrong while running; nothing committed before it is lost."""


class NoConsensusError(MakerRuntimeError):
    """No answer got k votes ahead within the step's sample budget.

    Attributes:
        tally: votes per answer key among valid samples.
        samples_drawn: all samples drawn for the step, red-flagged ones included.
        red_flags: red-flagged samples by reason.
        max_samples: the budget that was spent.
        step: the step's identifier, when known.
        stopped: why the step stopped before its budget was spent, if it did:
            `"hopeless"` (no answer could still get k ahead within it) or `"stuck"`
            (the same red-flagged answer kept coming back with nothing left to vary).
        provider_failures: the step's failed provider calls by kind (`"rate_limit"`,
            `"timeout"`, `"exception"`), retried and never votes: a run that stops
            here still counts them in its report.
        input_tokens, output_tokens, cached_input_tokens: what the step's samples were
            billed, so a step that failed is not free in a run's or a graph's totals.
        spares_unused: samples billed but never voted (spares of an `n` request, and
            replacements thrown away when the step proved stuck), on top of
            `samples_drawn`.
        unmetered_samples: of those billed, the ones cancelled in flight: no usage came
            back, so their tokens are missing from the token counts above.
    """

    def __init__(
        self,
        tally: Mapping[Any, int],
        samples_drawn: int,
        max_samples: int,
        red_flags: Mapping[str, int] | None = None,
        step: Any = None,
        k: int | None = None,
        stopped: str | None = None,
        provider_failures: Mapping[str, int] | None = None,
        input_tokens: int = 0,
        output_tokens: int = 0,
        cached_input_tokens: int = 0,
        spares_unused: int = 0,
        unmetered_samples: int = 0,
    ) -> None:
        self.tally = dict(tally)
        self.samples_drawn = samples_drawn
        self.max_samples = max_samples
        self.red_flags = dict(red_flags or {})
        self.step = step
        self.k = k
        self.stopped = stopped
        self.provider_failures = dict(provider_failures or {})
        self.input_tokens = input_tokens
        self.output_tokens = output_tokens
        self.cached_input_tokens = cached_input_tokens
        self.spares_unused = spares_unused
        self.unmetered_samples = unmetered_samples
        where = f"step {step}: " if step is not None else ""
        top = sorted(self.tally.items(), key=lambda kv: -kv[1])[:3]
        shown = ", ".join(f"{_short(key)}: {n}" for key, n in top) or "no valid votes"
        flags = f"; red flags {self.red_flags}" if self.red_flags else ""
        why = {
            "hopeless": " stopped early: no answer could still get there within the budget.",
            "stuck": " stopped early: the same red-flagged answer kept coming back at every "
            "temperature and model there was to try.",
        }.get(stopped or "", "")
        super().__init__(
            f"{where}no answer got {k if k is not None else 'k'} votes ahead within "
            f"max_samples={max_samples} ({samples_drawn} drawn; tally {shown}{flags}).{why} "
            "Raise max_samples, or choose on_no_consensus='plurality' or 'escalate'."
        )


class BudgetExhaustedError(MakerRuntimeError):
    """A run-level budget ran out. Everything decided so far has been committed.

    Attributes:
        budget: which budget (`"samples"`, `"tokens"`, `"cost"`).
        limit: its value.
        spent: how much had been spent when the run stopped.
        flag: the CLI flag or argument that raises it.
        steps_done: steps committed before stopping.
    """

    def __init__(
        self, budget: str, limit: float, spent: float, flag: str, steps_done: int | None = None
    ) -> None:
        self.budget = budget
        self.limit = limit
        self.spent = spent
        self.flag = flag
        self.steps_done = steps_done
        done = f" after {steps_done} committed steps" if steps_done is not None else ""
        super().__init__(
            f"{budget} budget spent ({spent:g} of {limit:g}){done}; "
            f"everything decided so far is saved. Raise it with {flag} and resume."
        )


class SamplerError(MakerRuntimeError):
    """A provider kept failing after every retry.

    Attributes:
        failures: failed calls by kind (`"exception"`, `"timeout"`, `"rate_limit"`).
        last: the last exception raised by the provider.
    """

    def __init__(self, message: str, failures: Mapping[str, int], last: BaseException | None):
        self.failures = dict(failures)
        self.last = last
        super().__init__(message)


class RunLogError(MakerRuntimeError):
    """The run log cannot be used: corrupt, locked by another process, or another task's."""


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."
