"""maker_graph: MAKER's voting, red flags and decomposition as LangGraph nodes.

MAKER makes a long LLM process reliable by cutting it into tiny steps, sampling
each step several times until one answer leads by k votes, and discarding
samples that look unreliable. This package provides that as a pure core, a
fast engine and LangGraph nodes.

Example:
    >>> from maker_graph import vote_step_sync
    >>> vote_step_sync(lambda question: "4", "2 + 2 = ?", k=3).winner
    '4'
"""

from .actions import tool_call_key, valid_tool_calls
from .errors import (
    BudgetExhaustedError,
    ConfigurationError,
    MakerGraphError,
    MakerRuntimeError,
    NoConsensusError,
    RunLogError,
    SamplerError,
    SpecError,
)
from .records import RawSample, Sample, StepResult
from .red_flags import Verdict, matches, max_output_tokens, predicate, truncated
from .sampling import (
    ChatModelSampler,
    FunctionSampler,
    ProviderRetry,
    RunnableSampler,
    Sampler,
    TemperatureSchedule,
    as_sampler,
)
from .semantic_keys import EmbeddingClusterKey, normalise_text, normalised_text_key
from .tasks.base import StepAnswer, Task, TaskWithTruth
from .vote import VotePolicy, Voter, vote_step, vote_step_sync
from .voting import Tally, canonical_key, first_to_ahead_by_k, samples_needed

__version__ = "0.1.0"

# The LangGraph surfaces load on first use: importing langgraph costs about a second,
# which the pure core and the engine should not pay.
_LAZY = {
    "maker_node": "maker_graph.graph",
    "maker_task": "maker_graph.graph",
    "MakerMiddleware": "maker_graph.graph",
    "add_maker_step": "maker_graph.graph",
    "create_voting_graph": "maker_graph.graph",
    "red_flag_condition": "maker_graph.graph",
    "create_decomposition_graph": "maker_graph.graph",
    "decomposition_node": "maker_graph.graph",
    "create_recursive_graph": "maker_graph.recursive",
    "load_graph": "maker_graph.config",
    "run_task": "maker_graph.run",
    "run_task_sync": "maker_graph.run",
    "RunReport": "maker_graph.run",
}


def __getattr__(name: str) -> object:
    if name == "RetryPolicy":  # the deprecated name of ProviderRetry (it warns)
        from . import sampling

        return sampling.__getattr__(name)
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'maker_graph' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_LAZY))


__all__ = [
    # LangGraph surfaces (loaded on first use)
    "add_maker_step",
    "create_decomposition_graph",
    "create_recursive_graph",
    "create_voting_graph",
    "decomposition_node",
    "load_graph",
    "MakerMiddleware",
    "maker_node",
    "maker_task",
    "red_flag_condition",
    # long runs
    "RunReport",
    "run_task",
    "run_task_sync",
    # voting core
    "Tally",
    "canonical_key",
    "first_to_ahead_by_k",
    "tool_call_key",
    "samples_needed",
    # free-text vote keys
    "EmbeddingClusterKey",
    "normalise_text",
    "normalised_text_key",
    # red flags
    "Verdict",
    "matches",
    "max_output_tokens",
    "predicate",
    "truncated",
    "valid_tool_calls",
    # sampling
    "ChatModelSampler",
    "FunctionSampler",
    "ProviderRetry",
    "RunnableSampler",
    "Sampler",
    "TemperatureSchedule",
    "as_sampler",
    # engine
    "VotePolicy",
    "Voter",
    "vote_step",
    "vote_step_sync",
    # records
    "RawSample",
    "Sample",
    "StepResult",
    # tasks
    "StepAnswer",
    "Task",
    "TaskWithTruth",
    # errors
    "BudgetExhaustedError",
    "ConfigurationError",
    "MakerGraphError",
    "MakerRuntimeError",
    "NoConsensusError",
    "RunLogError",
    "SamplerError",
    "SpecError",
]
