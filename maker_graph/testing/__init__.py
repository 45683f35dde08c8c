"""Test doubles for maker_graph and for users' own tests.

- `SimulatedSampler`: a fast simulated model for long runs and statistics.
- `SimulatedChatModel`: the same error model as a real LangChain chat model.
- `ScriptedSampler`, `ScriptedChatModel`: exact scripted answers with `.calls`.
- `ErrorModel`: how the simulated models err.
- `FaultySampler`: wraps any sampler with answer-level faults (empty, wrong shape, truncated,
  slow tails).
"""

from .chat import SimulatedChatModel
from .errors_model import (
    ErrorModel,
    SimulatedProviderError,
    SimulatedRateLimitError,
    SimulatedTimeoutError,
)
from .faults import Faults, FaultySampler
from .scripted import ScriptedChatModel, ScriptedSampler, ScriptExhaustedError
from .simulated import SimulatedSampler

__all__ = [
    # simulated models
    "ErrorModel",
    "SimulatedChatModel",
    "SimulatedSampler",
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
