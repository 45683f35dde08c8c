"""Deprecated name of `maker_graph.checkpointers` (kept so old imports work).

The module opens LangGraph checkpointers; "store" read as LangGraph's `Store`
(the cross-thread memory), which it has nothing to do with. Import from
`maker_graph.checkpointers` instead; every name here warns once per use.
"""

from __future__ import annotations

import warnings
from typing import Any

from . import checkpointers as _checkpointers

# The names the module had when it moved; new names live only in the new module.
_MOVED = ("CHECKPOINT_DB_NAME", "open_async_checkpointer", "open_checkpointer", "store_kind")


def __getattr__(name: str) -> Any:
    if name in _MOVED:
        warnings.warn(
            f"maker_graph.store.{name} moved to maker_graph.checkpointers.{name}",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(_checkpointers, name)
    raise AttributeError(f"module 'maker_graph.store' has no attribute {name!r}")
