"""`create_voting_graph`: one voted step as a LangGraph sub-graph you can see.

```
START ─▶ dispatch ══Send × k══▶ sample ──vote──▶ tally ──decided──▶ END
                                 ▲    │            │  ╲
                        red_flag └────┘  next_round ╲  no_consensus ─▶ escalate ─▶ END
                                 ▲                 │
                                 └═══Send × needed═┘
```

- `dispatch` resets the step's tally (an `Overwrite`, so votes never leak from one
  step into the next) and fans out one `Send` per sample, k in the first round.
- Each `sample` branch draws one sample, retrying provider failures inside the
  branch (a raising branch would cancel its siblings), then parses, keys and
  red-flags it with the engine's own `Voter.check`.
- The **red-flag guard edge** (`red_flag_condition`) sends a flagged sample straight
  back to `sample` under a fresh sample index, as long as the step's budget allows;
  only valid votes go on to `tally`.
- Votes join through a **k-ahead reducer** (`k_ahead_reducer`), which records the
  first answer to get k votes ahead.
- `tally` waits while samples are in flight, then ends with the winner, fans out
  only `samples_needed()` more samples, or — budget spent — raises
  `NoConsensusError`, takes the plurality, or routes to `escalate`, which asks a
  human through `interrupt()` (resume with `Command(resume=answer)`) or calls an
  escalation handler.

Progress goes to the `custom` stream (`stream_mode="custom"`, with
`subgraphs=True` from a parent graph): see `maker_graph.graph.events`.

The same nodes are grafted into a user's own graph by
`maker_graph.graph.add_maker_step`.

Example:
    >>> from maker_graph.graph import create_voting_graph
    >>> graph = create_voting_graph(lambda q: "4", k=2).compile()
    >>> graph.invoke({"step_input": "2+2?"})["answer"]
    '4'
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langgraph.graph import START, StateGraph
from typing_extensions import Unpack

from ..errors import ConfigurationError
from ..vote import EscalationHandler, NoConsensusAction, Voter
from ._options import StepOptions, VotedStep, check_input_keys, deprecated_alias
from ._schema import typed_dict, votes_channel
from ._vote_nodes import NodeNames, VoteNodes
from .routers import dispatch_condition, red_flag_condition, tally_condition
from .tally import k_ahead_reducer, new_tally

__all__ = [
    "MESSAGE_KEY",
    "STATS_KEY",
    "VOTES_KEY",
    "create_voting_graph",
    "voting_builder",
    # the pieces, re-exported from their modules
    "dispatch_condition",
    "k_ahead_reducer",
    "new_tally",
    "red_flag_condition",
    "tally_condition",
]

VOTES_KEY = "maker_votes"
"""Default state key of the step's tally (joined by the k-ahead reducer)."""
STATS_KEY = "maker_stats"
"""A state key for the decided step's statistics (`StepResult.to_dict()`) when you ask
for them (`stats_key=STATS_KEY`; no surface writes statistics by default)."""
MESSAGE_KEY = "maker_message"
"""Key of the winning sample's own message, when `voting_builder(message_key=...)` asks
for it (`maker_node(durable=True)` does: a messages key gets that message)."""


def create_voting_graph(
    step: Any,
    *,
    input_keys: str | Sequence[str] | None = None,
    output_key: str = "answer",
    stats_key: str | None = None,
    votes_key: str = VOTES_KEY,
    name: str = "voting_graph",
    input_key: str | None = None,
    **options: Unpack[StepOptions],
) -> StateGraph[Any, Any, Any, Any]:
    """Build one voted step as an uncompiled LangGraph `StateGraph`.

    The graph reads the step input from `input_keys`, draws samples in parallel
    `Send` branches, resamples red-flagged ones through the `red_flag_condition`
    guard edge, joins votes with a k-ahead reducer and writes the winner to
    `output_key` (and the step's statistics to `stats_key`). Compile it yourself,
    with or without a checkpointer; add it to a parent graph as a node (keys with
    equal names are shared), once per step: each run starts from a fresh tally.

    Args:
        step: a chat model (or a list of them, rotated per sample), any `Runnable`,
            a sync or async function of the step input, or a `Sampler`.
        input_keys: the state key whose value is the step input (a str; default
            `"step_input"`), or a list of keys whose dict is.
        output_key: state key the winner is written to.
        stats_key: state key for the step's statistics (None, the default on every
            surface: not written; two sub-graphs then never write the same key).
        votes_key: state key of the tally (internal to the sub-graph).
        name: the step's name in events and sample runs when the graph runs on its
            own; as a node of a parent graph, they carry that node's name.
        input_key: deprecated spelling of `input_keys` (one key).
        options: the step options (`StepOptions`: `k`, `parser`, `key`, `red_flags`,
            `max_samples`, `on_no_consensus`, `escalate`, `temperature`, `models`,
            `prompt`, `max_tokens`, `structured`, `max_concurrency`, `retry`); an
            escalation without a handler is an `interrupt()` in the `escalate` node.

    Returns:
        The uncompiled `StateGraph`; its input schema is `input_keys` and its
        output schema `{output_key, stats_key}`.

    Raises:
        ConfigurationError: options that cannot work (k < 1, max_samples < k, an
            unknown on_no_consensus, chat options on a non-chat step, clashing keys).

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> graph = create_voting_graph(lambda q: q.upper(), k=2, input_keys="q",
        ...                             output_key="a").compile(checkpointer=InMemorySaver())
        >>> graph.invoke({"q": "yes"}, {"configurable": {"thread_id": "1"}})["a"]
        'YES'
    """
    inputs = deprecated_alias(
        "create_voting_graph", "input_key", input_key, "input_keys", input_keys
    )
    voted = VotedStep("create_voting_graph", step, options)
    return voting_builder(
        voted.voter(decides=False),
        on_no_consensus=voted.action,
        escalate=voted.escalate,
        input_keys=inputs if inputs is not None else "step_input",
        output_key=output_key,
        stats_key=stats_key,
        votes_key=votes_key,
        label=name,
    )


def voting_builder(
    voter: Voter,
    *,
    on_no_consensus: NoConsensusAction,
    escalate: EscalationHandler | None,
    input_keys: str | Sequence[str] = "step_input",
    output_key: str = "answer",
    stats_key: str | None = None,
    votes_key: str = VOTES_KEY,
    label: str = "voting_graph",
    message_key: str | None = None,
) -> StateGraph[Any, Any, Any, Any]:
    """The voting sub-graph around an already built `Voter` (see `create_voting_graph`).

    `label` names the step in events and sample runs (`{label}.sample[i]`) when the
    graph runs on its own (inside a parent: the parent's node); `message_key` (an
    extra output key) receives the winning sample's own message, or None when the
    winner had none (a non-message output, an escalated answer).
    """
    check_input_keys("create_voting_graph", input_keys)
    ins = [input_keys] if isinstance(input_keys, str) else list(input_keys)
    keys = [*ins, output_key, votes_key] + ([stats_key] if stats_key else [])
    if len(set(keys)) != len(keys):
        raise ConfigurationError(
            f"input_keys, output_key, votes_key and stats_key must differ, got {keys}"
        )
    # Key names are the caller's choice, so the schemas are built at run time.
    fields: dict[str, Any] = {key: Any for key in ins}
    fields[votes_key] = votes_channel(voter.policy.k)
    outputs: dict[str, Any] = {output_key: Any}
    if stats_key:
        outputs[stats_key] = dict[str, Any]
    if message_key:
        outputs[message_key] = Any
    fields.update(outputs)
    state = typed_dict("VotingState", fields)
    input_schema = typed_dict("VotingInput", {key: Any for key in ins})
    output_schema = typed_dict("VotingOutput", outputs)
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        state, input_schema=input_schema, output_schema=output_schema
    )

    def read_input(values: Mapping[str, Any]) -> Any:
        missing = [key for key in ins if key not in values]
        if missing:
            # The sub-graph sees only its declared input keys, never the parent's.
            raise ConfigurationError(
                f"voting graph {label!r} reads its step input from {missing}, which the "
                f"input it was given does not have: invoke it with {{{missing[0]!r}: ...}}, "
                "or, as a node of a parent graph, give the parent state that key or build "
                "it with input_keys=<the parent key that holds the input>"
            )
        if isinstance(input_keys, str):
            return values[input_keys]
        return {key: values[key] for key in ins}

    nodes = VoteNodes(
        voter,
        names=NodeNames(),
        votes_key=votes_key,
        output_key=output_key,
        stats_key=stats_key,
        read_input=read_input,
        on_no_consensus=on_no_consensus,
        escalate=escalate,
        label=label,
        message_key=message_key,
        label_from_parent=True,
    )
    builder.add_edge(START, "dispatch")
    nodes.attach(builder)
    return builder
