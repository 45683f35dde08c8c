"""The LangGraph surfaces: voted steps and decomposed runs as graph building blocks.

- `maker_node`: a node for any existing `StateGraph` that decides its step by
  k-ahead voting with red flags and a budget (the fast engine in one node).
- `add_maker_step`: the voting sub-graph's nodes grafted into your builder, so
  every sample is a visible, checkpointed `Send` branch.
- `create_voting_graph`: one voted step as an uncompiled sub-graph
  (dispatch → sample ⇄ red-flag guard → tally → escalate).
- `create_decomposition_graph`: the maximal-decomposition loop over a `Task`,
  a chunk of steps per superstep (or one step through the voting nodes).
- `decomposition_node`: a decomposed run as one node of a larger pipeline.
- `MakerMiddleware`: votes the model call of a LangChain `create_agent` agent.
- `maker_task`: a voted step for the Functional API (`@entrypoint`); each sample a task.

The voted-step surfaces share their step options (`StepOptions`: `k`, `parser`,
`key`, `red_flags`, the budget, the chat-model options, `retry`) and their state
keys: `input_keys` (one key: its value; a list: a dict), `output_key`,
`stats_key` (None unless asked for).

Example:
    >>> from maker_graph.graph import maker_node
    >>> node = maker_node(lambda inputs: "yes", k=2, input_keys=["q"], output_key="a")
    >>> node.invoke({"q": "ok?"})
    {'a': 'yes'}
"""

from ._options import StepOptions
from .agent_middleware import MakerMiddleware
from .decomposition import (
    DEFAULT_CHUNK,
    DecompositionState,
    continue_condition,
    create_decomposition_graph,
)
from .events import EVENT_NAMES
from .functional import MakerTask, maker_task
from .graft import MakerStepNodes, add_maker_step
from .hybrid import decomposition_node
from .routers import dispatch_condition, red_flag_condition, tally_condition
from .tally import k_ahead_reducer, new_tally
from .voting_graph import STATS_KEY, VOTES_KEY, create_voting_graph
from .wrapper import MakerNode, maker_node

__all__ = [
    # wrap a step of an existing graph
    "MakerMiddleware",
    "MakerNode",
    "MakerStepNodes",
    "MakerTask",
    "StepOptions",
    "add_maker_step",
    "maker_node",
    "maker_task",
    # the voting sub-graph
    "STATS_KEY",
    "VOTES_KEY",
    "create_voting_graph",
    "dispatch_condition",
    "k_ahead_reducer",
    "new_tally",
    "red_flag_condition",
    "tally_condition",
    # decomposition
    "DEFAULT_CHUNK",
    "DecompositionState",
    "continue_condition",
    "create_decomposition_graph",
    "decomposition_node",
    # progress events
    "EVENT_NAMES",
]
