"""Action keys: what a chat model's answer *does*, as a vote key.

A tool-calling message acts through its tool calls, so two samples agree when
they call the same tools with the same arguments, whatever the order of the
calls and whatever ids the provider gave them. A text answer agrees with
another when the texts match after trimming and collapsing whitespace.

Duck-typed on `.tool_calls` and `.content` (text read by `sampling.message_text`),
so this module needs neither langchain nor langgraph.

Example:
    >>> from types import SimpleNamespace as M
    >>> a = M(content="", tool_calls=[{"name": "refund", "args": {"order_id": "A1"}, "id": "1"}])
    >>> b = M(content="", tool_calls=[{"name": "cancel", "args": {"order_id": "A1"}, "id": "1"}])
    >>> tool_call_key(a) == tool_call_key(b)
    False
"""

from __future__ import annotations

import json
import re
from collections.abc import Hashable, Mapping
from typing import Any

from .sampling import message_text

__all__ = ["is_chat_message", "tool_call_key", "tool_call_problem", "valid_tool_calls"]

_SPACE = re.compile(r"\s+")


def is_chat_message(value: Any) -> bool:
    """True for objects shaped like a chat message (content plus response metadata)."""
    return hasattr(value, "content") and hasattr(value, "response_metadata")


def _call_key(call: Any) -> str:
    if isinstance(call, Mapping):
        name, args = call.get("name"), call.get("args", {})
    else:
        name, args = getattr(call, "name", None), getattr(call, "args", {})
    # The call id is a provider's bookkeeping, not part of the action: never key on it.
    return json.dumps(
        {"name": name, "args": args}, sort_keys=True, separators=(",", ":"), default=repr
    )


def tool_call_key(message: Any) -> Hashable:
    """The vote key of a chat message (or a bare list of tool calls).

    Tool-calling messages key as the sorted canonical JSON of `(name, args)` per
    call: a multiset, so call order does not matter while repeated calls still
    count. Messages without tool calls key as their normalised text.

    Example:
        >>> calls = [{"name": "b", "args": {"x": 1}, "id": "9"}, {"name": "a", "args": {}}]
        >>> tool_call_key(calls) == tool_call_key(list(reversed(calls)))
        True
        >>> from types import SimpleNamespace as M
        >>> tool_call_key(M(content="  Hello \\n world ", tool_calls=[]))
        'Hello world'
    """
    calls = message if isinstance(message, list) else getattr(message, "tool_calls", None)
    if calls:
        return "tools:" + json.dumps(sorted(_call_key(c) for c in calls), separators=(",", ":"))
    return _SPACE.sub(" ", message_text(message)).strip()


# --------------------------------------------------------------------------- tool-call checks


def _tool_name(tool: Any) -> str | None:
    if isinstance(tool, Mapping):
        fn = tool.get("function")
        return fn.get("name") if isinstance(fn, Mapping) else tool.get("name")
    return getattr(tool, "name", None)


def _args_problem(tool: Any, args: Any) -> str | None:
    """Why `args` do not fit `tool`'s argument schema, or None (also when it has none)."""
    # `tool_call_schema` leaves out injected arguments (state, runtime), which the model
    # never supplies; `args_schema` would demand them.
    schema = getattr(tool, "tool_call_schema", None) or getattr(tool, "args_schema", None)
    validate = getattr(schema, "model_validate", None)
    if not callable(validate):
        return None  # a dict schema or a provider tool: nothing local to check against
    try:
        validate(args)
    except Exception as exc:  # noqa: BLE001 - any validation failure is the answer
        first = str(exc).strip().splitlines()
        return first[0] if first else type(exc).__name__
    return None


def tool_call_problem(
    message: Any, tools: Any = None, *, also_allowed: Any = ()
) -> tuple[str, str] | None:
    """`(reason, detail)` when a chat message's tool calls cannot be right, else None.

    Reasons: `"invalid_tool_call"` (the provider could not parse a call, e.g. malformed
    argument JSON, reported in `invalid_tool_calls`; or arguments that are not an
    object), `"unknown_tool"` (a tool not in `tools`), `"invalid_tool_args"` (arguments
    failing the tool's schema). With `tools=None` only the first check runs.
    `also_allowed` names tools that exist without being in `tools` (structured-output
    tools).

    Example:
        >>> from types import SimpleNamespace as M
        >>> msg = M(content="", tool_calls=[{"name": "nuke", "args": {}}], invalid_tool_calls=[])
        >>> tool_call_problem(msg, [{"name": "refund"}])[0]
        'unknown_tool'
    """
    invalid = getattr(message, "invalid_tool_calls", None) or []
    if invalid:
        bad = invalid[0]
        name = bad.get("name") if isinstance(bad, Mapping) else getattr(bad, "name", None)
        error = bad.get("error") if isinstance(bad, Mapping) else getattr(bad, "error", None)
        return "invalid_tool_call", f"the provider could not parse a call of {name!r}: {error}"
    calls = getattr(message, "tool_calls", None) or []
    by_name: dict[str, Any] | None = None
    if tools is not None:
        by_name = {n: t for t in tools if (n := _tool_name(t)) is not None}
    allowed = set(also_allowed)
    for call in calls:
        name = call.get("name") if isinstance(call, Mapping) else getattr(call, "name", None)
        args = call.get("args") if isinstance(call, Mapping) else getattr(call, "args", None)
        if not isinstance(args, Mapping):
            return "invalid_tool_call", f"arguments of {name!r} are not an object: {args!r}"
        if by_name is None or name in allowed:
            continue
        if name not in by_name:
            return "unknown_tool", f"{name!r} is not one of the tools {sorted(by_name)}"
        problem = _args_problem(by_name[name], dict(args))
        if problem is not None:
            return "invalid_tool_args", f"{name}: {problem}"
    return None


class valid_tool_calls:  # noqa: N801 - used like a function: valid_tool_calls(tools)
    """A red flag: a sample whose tool calls `tool_call_problem` rejects never votes.

    Reads the message from the sample's parsed value (or its raw output), so it fits
    `maker_node` and every other chat-model surface.

    Example:
        >>> flag = valid_tool_calls([{"name": "refund"}])
    """

    reason = "invalid_tool_call"

    def __init__(self, tools: Any = None, *, also_allowed: Any = ()) -> None:
        self.tools = list(tools) if tools is not None else None
        self.also_allowed = tuple(also_allowed)

    def __call__(self, sample: Any) -> Any:
        from .red_flags import Verdict

        message = sample.value if is_chat_message(sample.value) else sample.raw.output
        if not is_chat_message(message):
            return None
        problem = tool_call_problem(message, self.tools, also_allowed=self.also_allowed)
        return Verdict.flag(*problem) if problem else None

    def __repr__(self) -> str:
        return f"valid_tool_calls({[_tool_name(t) for t in self.tools or []]})"
