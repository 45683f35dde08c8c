"""The voting sub-graph stops at once on a ConfigurationError (issue 11): a refused
call (a 401) is requested once, not re-sent through the guard edge."""

from __future__ import annotations

import pytest

from maker_graph.errors import ConfigurationError
from maker_graph.graph import create_voting_graph


class Unauthorized(Exception):
    status_code = 401


def test_configuration_error_is_not_resent() -> None:
    calls: list[int] = []

    def step(q: str, index: int) -> str:
        calls.append(index)
        raise Unauthorized("bad key")

    graph = create_voting_graph(step, k=1).compile()
    with pytest.raises(ConfigurationError):
        graph.invoke({"step_input": "q"})
    assert calls == [0]
