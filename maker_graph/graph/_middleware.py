"""A `MakerNode` as a LangChain agent middleware (private; see `MakerNode.as_middleware`).

`langchain.agents.create_agent` builds its own graph; middleware hooks are the
way to put a node inside it. The hook runs the voted step on the agent state
and writes the winner to a key the middleware adds to that state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from ..errors import ConfigurationError

if TYPE_CHECKING:
    from .wrapper import MakerNode

__all__ = ["maker_middleware"]

_HOOKS = ("before_agent", "before_model", "after_model", "after_agent")


def maker_middleware(node: MakerNode, *, hook: str, state_schema: type[Any] | None) -> Any:
    """An `AgentMiddleware` whose `hook` runs `node` (sync and async)."""
    if hook not in _HOOKS:
        raise ConfigurationError(f"hook must be one of {list(_HOOKS)}, got {hook!r}")
    try:
        from langchain.agents.middleware import AgentMiddleware, AgentState
    except ImportError as exc:  # pragma: no cover - the providers extra
        raise ConfigurationError(
            "as_middleware() needs the `langchain` package: pip install 'maker-graph[providers]'"
        ) from exc
    from typing_extensions import NotRequired  # noqa: UP035 - as LangGraph reads schemas on < 3.12

    if state_schema is None:
        fields: dict[str, Any] = {node.output_key: NotRequired[Any]}
        if node.stats_key is not None:
            fields[node.stats_key] = NotRequired[dict[str, Any]]
        # AgentState is a TypedDict; its metaclass builds the extended schema.
        state_schema = cast(Any, type(AgentState))(
            f"MakerAgentState_{node.name}",
            (AgentState,),
            {"__annotations__": fields, "__module__": __name__},
        )

    def run(self: Any, state: Any, runtime: Any) -> dict[str, Any]:
        return cast(dict[str, Any], node.invoke(state))

    async def arun(self: Any, state: Any, runtime: Any) -> dict[str, Any]:
        return await node.ainvoke(state)  # type: ignore[no-any-return]

    cls = type(
        f"MakerMiddleware_{node.name}",
        (AgentMiddleware,),
        {
            "state_schema": state_schema,
            hook: run,
            f"a{hook}": arun,
            "name": property(lambda self: node.name),
            "__module__": __name__,
        },
    )
    return cls()
