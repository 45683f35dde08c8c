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

from ..errors import ConfigurationError
from ..red_flags import RedFlag
from ..sampling import ProviderRetry
from ..vote import EscalationHandler, NoConsensusAction, Parser, Voter
from ..voting import KeyFunction
from ._options import Temperature, build_sampler, build_voter, check_no_consensus
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
"""Default state key of the decided step's statistics (`StepResult.to_dict()`)."""
MESSAGE_KEY = "maker_message"
"""Key of the winning sample's own message, when `voting_builder(message_key=...)` asks
for it (`maker_node(durable=True)` does: a messages key gets that message)."""


def create_voting_graph(
    step: Any,
    *,
    k: int = 3,
    parser: Parser | None = None,
    key: KeyFunction | None = None,
    red_flags: Sequence[RedFlag] = (),
    max_samples: int | None = None,
    on_no_consensus: NoConsensusAction = "raise",
    escalate: EscalationHandler | None = None,
    prompt: Any = None,
    models: Sequence[Any] = (),
    temperature: Temperature = None,
    max_tokens: int | None = None,
    structured: Any = None,
    retry: ProviderRetry | None = None,
    input_key: str = "step_input",
    output_key: str = "answer",
    stats_key: str | None = STATS_KEY,
    votes_key: str = VOTES_KEY,
) -> StateGraph[Any, Any, Any, Any]:
    """Build one voted step as an uncompiled LangGraph `StateGraph`.

    The graph reads the step input from `input_key`, draws samples in parallel
    `Send` branches, resamples red-flagged ones through the `red_flag_condition`
    guard edge, joins votes with a k-ahead reducer and writes the winner to
    `output_key` (and the step's statistics to `stats_key`). Compile it yourself,
    with or without a checkpointer; add it to a parent graph as a node (keys with
    equal names are shared), once per step: each run starts from a fresh tally.

    Args:
        step: a chat model (or a list of them, rotated per sample), any `Runnable`,
            a sync or async function of the step input, or a `Sampler`.
        k: the margin: an answer wins once it has k more votes than any other.
        parser: raw output (an `AIMessage` for chat models) -> answer; raising
            red-flags the sample. Default: the message text, or the output as is.
        key: answer -> vote key (default: `canonical_key`).
        red_flags: checks that discard samples (see `maker_graph.red_flags`).
        max_samples: samples the step may draw, red-flagged ones included
            (default 10 * k + 20).
        on_no_consensus: budget spent: `"raise"` (`NoConsensusError` with the tally),
            `"plurality"`, or `"escalate"` (an `escalate` node).
        escalate: the escalation handler (`StepResult` -> answer, sync or async; e.g.
            a stronger model). Without one, escalation calls `interrupt()` with the
            tally and candidates; resume with `Command(resume=answer)`.
        prompt: for chat models: builds the model input from the step input.
        models: more chat models to rotate with `step` (decorrelates errors).
        temperature: a `TemperatureSchedule`, a function of the sample index, or
            one temperature (default: 0 for the first sample, 0.1 after).
        max_tokens: caps each chat sample's output tokens.
        structured: a schema for `with_structured_output`.
        retry: how provider failures are retried inside a sample branch.
        input_key: state key of the step input.
        output_key: state key the winner is written to.
        stats_key: state key for the step's statistics (None: not written).
        votes_key: state key of the tally.

    Returns:
        The uncompiled `StateGraph`; its input schema is `{input_key}` and its
        output schema `{output_key, stats_key}`.

    Raises:
        ConfigurationError: options that cannot work (k < 1, max_samples < k, an
            unknown on_no_consensus, chat options on a non-chat step, clashing keys).

    Example:
        >>> from langgraph.checkpoint.memory import InMemorySaver
        >>> graph = create_voting_graph(lambda q: q.upper(), k=2, input_key="q",
        ...                             output_key="a").compile(checkpointer=InMemorySaver())
        >>> graph.invoke({"q": "yes"}, {"configurable": {"thread_id": "1"}})["a"]
        'YES'
    """
    action = check_no_consensus(on_no_consensus, escalate)
    keys = [input_key, output_key, votes_key] + ([stats_key] if stats_key else [])
    if len(set(keys)) != len(keys):
        raise ConfigurationError(
            f"input_key, output_key, votes_key and stats_key must differ, got {keys}"
        )
    sampler = build_sampler(
        step,
        prompt=prompt,
        models=models,
        temperature=temperature,
        max_tokens=max_tokens,
        structured=structured,
    )
    voter = build_voter(
        sampler,
        k=k,
        parser=parser,
        key=key,
        red_flags=red_flags,
        max_samples=max_samples,
        on_no_consensus="raise",
        escalate=None,
        retry=retry,
    )
    return voting_builder(
        voter,
        on_no_consensus=action,
        escalate=escalate,
        input_key=input_key,
        output_key=output_key,
        stats_key=stats_key,
        votes_key=votes_key,
    )


def voting_builder(
    voter: Voter,
    *,
    on_no_consensus: NoConsensusAction,
    escalate: EscalationHandler | None,
    input_key: str = "step_input",
    output_key: str = "answer",
    stats_key: str | None = STATS_KEY,
    votes_key: str = VOTES_KEY,
    label: str = "voting_graph",
    message_key: str | None = None,
) -> StateGraph[Any, Any, Any, Any]:
    """The voting sub-graph around an already built `Voter` (see `create_voting_graph`).

    `label` names the step in events and sample runs (`{label}.sample[i]`);
    `message_key` (an extra output key) receives the winning sample's own message,
    or None when the winner had none (a non-message output, an escalated answer).
    """
    # Key names are the caller's choice, so the schemas are built at run time.
    fields: dict[str, Any] = {
        input_key: Any,
        output_key: Any,
        votes_key: votes_channel(voter.policy.k),
    }
    outputs: dict[str, Any] = {output_key: Any}
    if stats_key:
        outputs[stats_key] = dict[str, Any]
    if message_key:
        outputs[message_key] = Any
    fields.update(outputs)
    state = typed_dict("VotingState", fields)
    input_schema = typed_dict("VotingInput", {input_key: Any})
    output_schema = typed_dict("VotingOutput", outputs)
    builder: StateGraph[Any, Any, Any, Any] = StateGraph(
        state, input_schema=input_schema, output_schema=output_schema
    )

    def read_input(values: Mapping[str, Any]) -> Any:
        if input_key not in values:
            raise ConfigurationError(
                f"the voting graph needs the step input under {input_key!r}; "
                f"the state has {sorted(values)}"
            )
        return values[input_key]

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
    )
    builder.add_edge(START, "dispatch")
    nodes.attach(builder)
    return builder
