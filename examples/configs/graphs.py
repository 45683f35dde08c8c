"""The example specs as LangGraph graphs, for `langgraph dev` (see langgraph.json).

Each graph is loaded from its spec and left uncompiled: the LangGraph server
compiles it with its own checkpointer. The hybrid pipeline's order tool is a
plain Python function, registered here so that the spec can name it.

Run the server from this directory::

    langgraph dev --no-browser

`langgraph.json` is complete for a deployment (Python version, dependencies,
strict checkpoint serializer): see docs/deploy.md. Or run a spec on the command
line::

    maker-graph run triage.yaml --input '{"ticket": "I was charged twice"}'
    maker-graph run hybrid.yaml --import graphs.py --input '{"request": "Where is order AB-123?"}'
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from maker_graph.config import load_graph
from maker_graph.registry import register
from maker_graph.tokens import count_tokens

HERE = Path(__file__).resolve().parent

_ORDERS = {
    "AB-123": {"status": "shipped", "eta": "2 days"},
    "CD-456": {"status": "packed", "eta": "4 days"},
}


@register.function
def lookup_order(state: Mapping[str, Any]) -> dict[str, Any]:
    """Look the extracted order up (a stand-in for a real order service)."""
    order_id = (state.get("order_query") or {}).get("order_id", "")
    record = _ORDERS.get(order_id, {"status": "unknown", "eta": "unknown"})
    return {"order": {"id": order_id, **record}}


# Load the tokenizer now rather than inside the first run: the dev server flags
# file reads on its event loop.
count_tokens("warm up")

triage = load_graph(HERE / "triage.yaml")
hanoi = load_graph(HERE / "hanoi.yaml")
hybrid = load_graph(HERE / "hybrid.yaml")
