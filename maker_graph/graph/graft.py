"""`add_maker_step`: graft the voting sub-graph's nodes into your own builder.

The step is drawn in your graph sample by sample: `name` (dispatch) fans out a
`Send` per sample to `name_sample`, whose red-flag guard edge loops back to
itself, and `name_tally` joins the votes and ends the step (going on to
`then`) or sends the next round. Every finished sample is checkpointed on its
own, so a resume after a crash mid-vote redraws only unfinished samples.

Edges *into* `name` start the vote. What follows the vote is `then`: a LangGraph
node's edges fire every time it runs, and `name` runs before its samples (and
`name_tally` once per round), so an edge or conditional edge added from any of
the step's nodes would leave before the winner exists. The step refuses to run
with one and says so; put your edges on the `then` node instead.

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

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple, get_type_hints

from langgraph import types as langgraph_types
from langgraph.graph import END, StateGraph
from typing_extensions import Unpack

from ..errors import ConfigurationError
from ._options import (
    StepOptions,
    VotedStep,
    check_input_keys,
    checked_input,
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


def _edges_from(builder: StateGraph[Any, Any, Any, Any], node: str) -> list[str]:
    """The destinations of edges the user added from `node` (plain, joined, conditional)."""
    found = [end for start, end in builder.edges if start == node]
    found += [end for starts, end in builder.waiting_edges if node in starts]
    found += [f"{branch}()" for branch in builder.branches.get(node, {})]
    return sorted(found)


class _GraftedVote(VoteNodes):
    """The voting nodes, refusing to start while an edge leaves one of them early."""

    def __init__(
        self, *args: Any, builder: StateGraph[Any, Any, Any, Any], then: str, **kwargs: Any
    ) -> None:
        super().__init__(*args, **kwargs)
        self.builder = builder
        self.then = then

    def dispatch(self, state: Mapping[str, Any]) -> dict[str, Any]:
        # Checked here, not in `add_maker_step`: the user adds edges after it
        # returns. The compiled graph keeps this builder, so what is read is
        # what was compiled (unless the builder changed after `compile()`).
        names = self.names
        own = {(names.escalate, self.then)}
        for node in (names.dispatch, names.sample, names.tally, names.escalate):
            early = [end for end in _edges_from(self.builder, node) if (node, end) not in own]
            if early:
                raise ConfigurationError(
                    f"add_maker_step({names.dispatch!r}): the edge(s) from {node!r} to "
                    f"{early} would run before the vote is decided ({node!r} is one of "
                    "the step's own nodes and runs before its samples or once per "
                    f"round). Route after the vote with add_maker_step(..., then=<node>) "
                    "and add your edges or conditional edges from that node "
                    f"(now then={self.then!r})."
                )
        return super().dispatch(state)


def add_maker_step(
    builder: StateGraph[Any, Any, Any, Any],
    name: str,
    step: Any,
    *,
    then: str = END,
    input_keys: str | Sequence[str] | None = None,
    output_key: str = "answer",
    stats_key: str | None = None,
    votes_key: str | None = None,
    retry_policy: langgraph_types.RetryPolicy | Sequence[langgraph_types.RetryPolicy] | None = None,
    cache_policy: langgraph_types.CachePolicy[Any] | None = None,
    metadata: dict[str, Any] | None = None,
    **options: Unpack[StepOptions],
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

    Edges from `name` (or any of the step's nodes) would run before the vote is
    decided, so the step raises `ConfigurationError` when it meets one: put them on
    `then` instead, e.g. `then="route"` and
    `builder.add_conditional_edges("route", ...)`.

    `input_keys`, `output_key`, `stats_key` and the step options (`StepOptions`)
    are those of `maker_node`, plus `then` (the node after the step), `votes_key`,
    and LangGraph's own node options:

    - `retry_policy`: a `langgraph.types.RetryPolicy` for `name_sample` (the only
      node that calls the model; `retry=` already retries the provider call inside
      it, this retries the whole sample task).
    - `cache_policy`: a `langgraph.types.CachePolicy` for `name_sample`: a sample of
      the same input and index is taken from the graph's cache (`compile(cache=...)`)
      instead of being drawn again. The dispatch and tally nodes read the state and
      are not cached.
    - `metadata`: given to every node of the step (it reaches tracing callbacks).

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
    check_input_keys("add_maker_step", input_keys)
    voted = VotedStep("add_maker_step", step, options)
    _check_retry_policy(retry_policy)
    names = NodeNames(name, f"{name}_sample", f"{name}_tally", f"{name}_escalate")
    taken = [
        n for n in (names.dispatch, names.sample, names.tally, names.escalate) if n in builder.nodes
    ]
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
    check_input = voted.check_input
    votes_schema = typed_dict(f"MakerVotes_{name}", {votes: votes_channel(voted.k)})
    keys = input_keys if input_keys is None or isinstance(input_keys, str) else list(input_keys)
    nodes = _GraftedVote(
        voted.voter(decides=False),
        builder=builder,
        then=then,
        names=names,
        votes_key=votes,
        output_key=output_key,
        stats_key=stats_key,
        read_input=lambda state: checked_input(pick(state, keys), check_input),
        on_no_consensus=voted.action,
        escalate=voted.escalate,
        label=name,
        to_message=is_messages_key(builder.state_schema, output_key),
    )
    nodes.attach(builder, then=then, votes_schema=votes_schema)
    _set_node_options(
        builder, names, retry_policy=retry_policy, cache_policy=cache_policy, metadata=metadata
    )
    return MakerStepNodes(
        names.dispatch,
        names.sample,
        names.tally,
        names.escalate if voted.action == "escalate" else None,
        votes,
    )


def _check_retry_policy(retry_policy: Any) -> None:
    # LangGraph's RetryPolicy and maker_graph's sample retry are different types;
    # the wrong one would build and then fail inside a run.
    # (LangGraph's RetryPolicy is a NamedTuple, itself a Sequence.)
    single = (
        retry_policy is None
        or isinstance(retry_policy, langgraph_types.RetryPolicy)
        or not isinstance(retry_policy, Sequence)
    )
    policies = [retry_policy] if single else list(retry_policy)
    wrong = [
        p for p in policies if p is not None and not isinstance(p, langgraph_types.RetryPolicy)
    ]
    if wrong:
        raise ConfigurationError(
            f"add_maker_step: retry_policy= takes langgraph.types.RetryPolicy (it retries "
            f"the sample node), not {type(wrong[0]).__name__}; maker_graph's own policy "
            "for the provider call goes to retry="
        )


def _set_node_options(
    builder: StateGraph[Any, Any, Any, Any],
    names: NodeNames,
    *,
    retry_policy: Any,
    cache_policy: Any,
    metadata: dict[str, Any] | None,
) -> None:
    # The nodes are added by `VoteNodes.attach`; their LangGraph options are set on
    # the specs it left, which is what `add_node(..., retry_policy=...)` would store.
    step_nodes = [
        n for n in (names.dispatch, names.sample, names.tally, names.escalate) if n in builder.nodes
    ]
    for node in step_nodes:
        spec = builder.nodes[node]
        changes: dict[str, Any] = {}
        if metadata is not None:
            changes["metadata"] = {**(spec.metadata or {}), **metadata}
        if node == names.sample:
            if retry_policy is not None:
                changes["retry_policy"] = retry_policy
            if cache_policy is not None:
                changes["cache_policy"] = cache_policy
        if changes:
            builder.nodes[node] = dataclasses.replace(spec, **changes)
