"""Decorrelation levers: make the samples of one step differ in how they are produced.

A model stuck on a step gives the same wrong answer at any temperature; what
can unstick it is a different question, not a different seed. `Rotation`
sends sample `i` of every step to the `i mod n`-th of `n` samplers, so a vote
mixes them:

- **prompt rotation**: sample `i` asks paraphrase `i mod n` of the prompt
  (`ChatModelSampler(model, prompt=[...])`, hence `prompt=[...]` on `maker_node`
  and `create_voting_graph`, a spec's `prompts:`; or `prompt_rotation`);
- **model rotation**: samplers of different models (a `ChatModelSampler` also
  takes a list of models);
- **input variation**: the same sampler fed a reshaped input (operands in
  another order, other few-shot examples), via `inputs`;
- **temperature escalation**: samples drawn after a step's first round failed
  to decide it are drawn hotter (`EscalatingTemperature`, a temperature
  schedule for `ChatModelSampler`).

Whether a lever helps is a property of the model and the task, so measure it:
give `maker_graph.estimate.estimate` one entry per lever (same model) and
compare their stuck shares and plans; the rows come out cheapest first, and a
lever that leaves the model stuck shows `none` for k_min.

Example:
    >>> import asyncio
    >>> from maker_graph.testing import SimulatedSampler, ErrorModel
    >>> a = SimulatedSampler(lambda q: "a", errors=ErrorModel(error_rate=0.0))
    >>> b = SimulatedSampler(lambda q: "b", errors=ErrorModel(error_rate=0.0))
    >>> rot = Rotation([a, b])
    >>> [asyncio.run(rot.sample("q", i)).text for i in range(4)]
    ['a', 'b', 'a', 'b']
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from .errors import ConfigurationError
from .records import RawSample

__all__ = ["EscalatingTemperature", "Rotation", "prompt_rotation"]


class Rotation:
    """A sampler that draws sample `i` from `samplers[i % len(samplers)]`, its input
    first passed through `inputs[i % len(inputs)]` when given."""

    def __init__(
        self,
        samplers: Sequence[Any],
        *,
        inputs: Sequence[Callable[[Any], Any]] | None = None,
    ) -> None:
        if not samplers:
            raise ConfigurationError("Rotation needs at least one sampler")
        if inputs is not None and not inputs:
            raise ConfigurationError("Rotation's inputs, when given, need at least one entry")
        self.samplers = list(samplers)
        self.inputs = list(inputs) if inputs is not None else None

    async def sample(self, step_input: Any, index: int) -> RawSample:
        sampler = self.samplers[index % len(self.samplers)]
        if self.inputs is not None:
            step_input = self.inputs[index % len(self.inputs)](step_input)
        result: RawSample = await sampler.sample(step_input, index)
        return result

    def __repr__(self) -> str:
        return f"Rotation({len(self.samplers)} samplers)"


@dataclass(frozen=True, kw_only=True)
class EscalatingTemperature:
    """A temperature schedule that heats up a step once its first round did not decide it.

    A vote's first round draws samples `0 .. k-1`; a sample with index `k` or more is
    drawn only when those disagreed or some were red-flagged. Those later samples are
    drawn at `hotter[0]`, the next `k` at `hotter[1]`, and so on, staying at the last:
    a step that agrees at once costs the usual near-greedy samples, and only a
    contested step pays for diversity. Pass it as `temperature=` to a
    `ChatModelSampler`, `maker_node` or `create_voting_graph`.

    Whether heat unsticks a model is an empirical question (a model stuck on a step
    often keeps its wrong answer at any temperature): measure it with `estimate`,
    one entry with and one without.

    Example:
        >>> schedule = EscalatingTemperature(k=3, hotter=(0.5, 1.0))
        >>> [schedule(i) for i in range(10)]
        [0.0, 0.1, 0.1, 0.5, 0.5, 0.5, 1.0, 1.0, 1.0, 1.0]
    """

    k: int
    """The vote's margin: its first round draws samples `0 .. k-1`."""
    first: float | None = 0.0
    """Temperature of sample 0 (None: the model's own)."""
    rest: float | None = 0.1
    """Temperature of samples `1 .. k-1` (None: the model's own)."""
    hotter: tuple[float, ...] = (0.5, 0.8, 1.0)
    """Temperatures of each further `k` samples after the first round, the last kept."""

    def __post_init__(self) -> None:
        if not isinstance(self.k, int) or self.k < 1:
            raise ConfigurationError(
                f"EscalatingTemperature: k must be an integer >= 1, got {self.k!r}"
            )
        if not self.hotter or any(not 0.0 <= t <= 2.0 for t in self.hotter):
            raise ConfigurationError(
                f"EscalatingTemperature: hotter needs temperatures in [0, 2], got {self.hotter!r}"
            )

    def __call__(self, index: int) -> float | None:
        if index == 0:
            return self.first
        if index < self.k:
            return self.rest
        return self.hotter[min((index - self.k) // self.k, len(self.hotter) - 1)]


def prompt_rotation(model: Any, prompts: Sequence[Any], **chat_options: Any) -> Any:
    """Prompt rotation: a `ChatModelSampler` of `model` whose sample `i` asks wording
    `prompts[i % len(prompts)]`, the same as `ChatModelSampler(model, prompt=list(prompts),
    **chat_options)` (samples of one wording at one temperature still share an `n`
    request, and a stuck step's redraw moves on to the next wording).

    `chat_options` go to the `ChatModelSampler` (temperature, max_tokens, ...).

    Raises:
        ConfigurationError: no prompt.
    """
    from .sampling import ChatModelSampler

    if not prompts:
        raise ConfigurationError("prompt_rotation needs at least one prompt")
    return ChatModelSampler(model, prompt=list(prompts), **chat_options)
