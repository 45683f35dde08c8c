"""Test doubles for maker_graph and for users' own tests.

- `SimulatedSampler`: a fast simulated model for long runs and statistics.
- `SimulatedChatModel`: the same error model as a real LangChain chat model.
- `SimulatedToolModel`: a tool-calling chat model that picks the wrong tool or argument.
- `ScriptedSampler`, `ScriptedChatModel`: exact scripted answers with `.calls`.
- `ErrorModel`: how the simulated models err.
- `FaultySampler`: wraps any sampler with answer-level faults (empty, wrong shape, truncated,
  slow tails).
"""

from typing import TYPE_CHECKING

from .errors_model import (
    ErrorModel,
    SimulatedProviderError,
    SimulatedRateLimitError,
    SimulatedTimeoutError,
)
from .faults import Faults, FaultySampler
from .simulated import SimulatedSampler

if TYPE_CHECKING:
    from .chat import SimulatedChatModel
    from .scripted import ScriptedChatModel, ScriptedSampler, ScriptExhaustedError
    from .tool_agent import SimulatedToolModel

# The chat-model doubles import langchain_core (about half a second); load them on first
# use so that the CLI and long runs, which need only ErrorModel and SimulatedSampler,
# start quickly.
_LAZY = {
    "SimulatedChatModel": "chat",
    "ScriptedChatModel": "scripted",
    "ScriptedSampler": "scripted",
    "ScriptExhaustedError": "scripted",
    "SimulatedToolModel": "tool_agent",
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maker_graph.testing' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    # simulated models
    "ErrorModel",
    "SimulatedChatModel",
    "SimulatedSampler",
    "SimulatedToolModel",
    # scripted doubles
    "ScriptExhaustedError",
    "ScriptedChatModel",
    "ScriptedSampler",
    # answer-level faults (empty, wrong shape, truncated, slow tails)
    "Faults",
    "FaultySampler",
    # simulated provider failures
    "SimulatedProviderError",
    "SimulatedRateLimitError",
    "SimulatedTimeoutError",
]
