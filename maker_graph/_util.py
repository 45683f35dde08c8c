"""Small helpers shared by several layers."""

from __future__ import annotations

import inspect
import json
from typing import Any


def is_async_callable(fn: Any) -> bool:
    """True for coroutine functions and for objects whose `__call__` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - we want the method, not callability
    return call is not None and inspect.iscoroutinefunction(call)


def compact_json(value: Any) -> str:
    """Canonical compact JSON (sorted keys, no spaces; unknown objects as their repr).

    The form the run log stores actions and tallies in, so that equal values
    always store as equal text.
    """
    return json.dumps(value, separators=(",", ":"), sort_keys=True, default=repr)


def identity(value: Any) -> Any:
    """The default codec of task states: stored as they are."""
    return value
