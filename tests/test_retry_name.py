"""maker_graph's per-sample retry policy is not LangGraph's node retry policy.

Passing `langgraph.types.RetryPolicy` where maker_graph's is expected used to build
fine and fail at the first provider error; it is refused at once, naming the fix.
"""

from __future__ import annotations

import pytest
from langgraph.types import RetryPolicy as NodeRetryPolicy

from maker_graph import maker_node
from maker_graph.errors import ConfigurationError
from maker_graph.sampling import ProviderRetry
from maker_graph.vote import VotePolicy


def test_vote_policy_refuses_langgraphs_retry_policy() -> None:
    with pytest.raises(ConfigurationError, match=r"add_node\(retry_policy="):
        VotePolicy(retry=NodeRetryPolicy())  # type: ignore[arg-type]
    assert VotePolicy(retry=ProviderRetry(max_attempts=2)).retry.max_attempts == 2


def test_maker_node_refuses_it_when_built() -> None:
    with pytest.raises(ConfigurationError, match="LangGraph's RetryPolicy retries a whole node"):
        maker_node(lambda q: "a", input_keys=["q"], output_key="a", retry=NodeRetryPolicy())  # type: ignore[arg-type]


def test_the_old_name_still_works_and_warns() -> None:
    import maker_graph
    import maker_graph.sampling as sampling

    for module in (maker_graph, sampling):
        with pytest.warns(DeprecationWarning, match="now ProviderRetry"):
            assert module.RetryPolicy is ProviderRetry
    assert "RetryPolicy" not in maker_graph.__all__ and "ProviderRetry" in maker_graph.__all__
