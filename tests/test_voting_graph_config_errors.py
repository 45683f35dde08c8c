"""A provider that refuses the configuration (401/403, a wrong model name) fails the
voting sub-graph at once: the refused call is not sent again through the guard edge."""

from __future__ import annotations

from typing import Any

import pytest

from maker_graph.errors import ConfigurationError
from maker_graph.graph import create_voting_graph


async def test_a_configuration_error_is_raised_without_a_second_request() -> None:
    calls: list[Any] = []

    async def refused(step_input: Any, index: int) -> str:
        calls.append(index)
        raise ConfigurationError("the provider refused the API key (401)")

    graph = create_voting_graph(refused, k=1, max_samples=1).compile()
    with pytest.raises(ConfigurationError, match="401"):
        await graph.ainvoke({"step_input": "q"})
    assert calls == [0]  # sent once; the guard edge used to re-send it
