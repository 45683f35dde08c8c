"""`add_maker_step`: graft the voting sub-graph's nodes into your own builder.

The step is drawn in your graph sample by sample: `name` (dispatch) fans out a
`Send` per sample to `name_sample`, whose red-flag guard edge loops back to
itself, and `name_tally` joins the votes and ends the step (going on to
`then`) or sends the next round. Every finished sample is checkpointed on its
own, so a resume after a crash mid-vote redraws only unfinished samples.

Example:
    >>> from typing import TypedDict
    >>> from langgraph.graph import START, StateGraph
    >>> class State(TypedDict, total=False):
    ...     q: str
    ...     a: str
    >>> builder = StateGraph(State)
    >>> nodes = add_maker_step(builder, "answer", lambda s: "42", k=2,
    ...                        input_keys=["q"], output_key="a")
    >>> _ = builder.add_edge(START, nodes.entry)
    >>> builder.compile().invoke({"q": "?"})["a"]
    '42'
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple, get_type_hints

from langgraph.graph import END, StateGraph

from ..errors import ConfigurationError
from ..red_flags import RedFlag
from ..sampling import RetryPolicy
from ..vote import EscalationHandler, NoConsensusAction, Parser
from ..voting import KeyFunction
from ._options import (
    Temperature,
    build_sampler,
    build_voter,
    chat_input_check,
    check_no_consensus,
    checked_input,
    default_chat_input,
    is_messages_key,
    pick,
)
from ._schema import typed_dict, votes_channel
from ._vote_nodes import NodeNames, VoteNodes

__all__ = ["MakerStepNodes", "add_maker_step"]


class MakerStepNodes(NamedTuple):
    """The nodes `add_maker_step` added; route into `entry`."""

    entry: str
    sample: str
    tally: str
    escalate: str | None
    votes_key: str


def _state_keys(builder: StateGraph[Any, Any, Any, Any]) -> set[str] | None:
    try:
        return set(get_type_hints(builder.state_schema))
    except Exception:  # noqa: BLE001 - a schema we cannot introspect is not checked
        return None


def add_maker_step(
    builder: StateGraph[Any, Any, Any, Any],
    name: str,
    step: Any,
    *,
    then: str = END,
    k: int = 3,
    parser: Parser | None = None,
    key: KeyFunction | None = None,
    red_flags: Sequence[RedFlag] = (),
    input_keys: Sequence[str] | None = None,
    output_key: str = "answer",
    max_samples: int | None = None,
    on_no_consensus: NoConsensusAction = "raise",
    escalate: EscalationHandler | None = None,
    temperature: Temperature = None,
    models: Sequence[Any] = (),
    prompt: Any = None,
    max_tokens: int | None = None,
    structured: Any = None,
    retry: RetryPolicy | None = None,
    stats_key: str | None = None,
    votes_key: str | None = None,
) -> MakerStepNodes:
    """Graft a voted step's sub-graph nodes into your own builder.

    Adds `name` (dispatch: reads the input, sends k samples), `name_sample` (one
    branch per sample, with the red-flag guard edge back to itself),
    `name_tally` (joins votes with the k-ahead reducer, ends or sends the next
    round) and, with `on_no_consensus="escalate"`, `name_escalate`. Route into
    `name` with your own edges; when the step is decided the graph goes on to
    `then`. The tally lives in one extra state key (`votes_key`, default
    `"{name}_votes"`), reset at every dispatch, so the state stays O(1) when the
    step runs again in a loop.

    Options are those of `maker_node`, plus `then` (the node after the step) and
    `votes_key`.

    Returns:
        The names of the added nodes.

    Raises:
        ConfigurationError: a node name is taken, or `output_key`/`stats_key` is not
            a key of the builder's state schema.

    Example:
        >>> from typing import TypedDict
        >>> from langgraph.graph import START, StateGraph
        >>> class State(TypedDict, total=False):
        ...     q: str
        ...     a: str
        >>> builder = StateGraph(State)
        >>> nodes = add_maker_step(builder, "answer", lambda s: "42", k=2,
        ...                        input_keys=["q"], output_key="a")
        >>> _ = builder.add_edge(START, nodes.entry)
        >>> builder.compile().invoke({"q": "?"})["a"]
        '42'
    """
    action = check_no_consensus(on_no_consensus, escalate)
    names = NodeNames(name, f"{name}_sample", f"{name}_tally", f"{name}_escalate")
    taken = [n for n in (names.dispatch, names.sample, names.tally, names.escalate)
             if n in builder.nodes]
    if taken:
        raise ConfigurationError(
            f"add_maker_step: node(s) {taken} already exist; pick another name"
        )
    known = _state_keys(builder)
    for what, state_key in (("output_key", output_key), ("stats_key", stats_key)):
        if state_key is not None and known is not None and state_key not in known:
            raise ConfigurationError(
                f"add_maker_step: {what}={state_key!r} is not a key of the graph state "
                f"{sorted(known)}; add it to your state schema, or choose another key"
            )
    votes = votes_key or f"{name}_votes"
    check_input = chat_input_check(step, prompt)
    sampler = build_sampler(step, prompt=prompt, models=models, temperature=temperature,
                            max_tokens=max_tokens, structured=structured,
                            default_prompt=default_chat_input)
    voter = build_voter(sampler, k=k, parser=parser, key=key, red_flags=red_flags,
                        max_samples=max_samples, on_no_consensus="raise", escalate=None,
                        retry=retry)
    votes_schema = typed_dict(f"MakerVotes_{name}", {votes: votes_channel(k)})
    keys = list(input_keys) if input_keys is not None else None
    nodes = VoteNodes(
        voter,
        names=names,
        votes_key=votes,
        output_key=output_key,
        stats_key=stats_key,
        read_input=lambda state: checked_input(pick(state, keys), check_input),
        on_no_consensus=action,
        escalate=escalate,
        label=name,
        to_message=is_messages_key(builder.state_schema, output_key),
    )
    nodes.attach(builder, then=then, votes_schema=votes_schema)
    return MakerStepNodes(
        names.dispatch, names.sample, names.tally,
        names.escalate if action == "escalate" else None, votes,
    )
