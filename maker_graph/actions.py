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

__all__ = ["is_chat_message", "tool_call_key"]

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
