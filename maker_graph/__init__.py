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
    RetryPolicy,
    RunnableSampler,
    Sampler,
    TemperatureSchedule,
    as_sampler,
)
from .tasks.base import StepAnswer, Task, TaskWithTruth
from .vote import VotePolicy, Voter, vote_step, vote_step_sync
from .voting import Tally, canonical_key, first_to_ahead_by_k, samples_needed

__version__ = "0.1.0"

__all__ = [
    # voting core
    "Tally",
    "canonical_key",
    "first_to_ahead_by_k",
    "samples_needed",
    # red flags
    "Verdict",
    "matches",
    "max_output_tokens",
    "predicate",
    "truncated",
    # sampling
    "ChatModelSampler",
    "FunctionSampler",
    "RetryPolicy",
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
