"""Small helpers shared by several layers."""

from __future__ import annotations

import inspect
from typing import Any


def is_async_callable(fn: Any) -> bool:
    """True for coroutine functions and for objects whose `__call__` is one."""
    if inspect.iscoroutinefunction(fn):
        return True
    call = getattr(type(fn), "__call__", None)  # noqa: B004 - we want the method, not callability
    return call is not None and inspect.iscoroutinefunction(call)
