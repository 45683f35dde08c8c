"""LangGraph surfaces."""

from .decomposition import create_decomposition_graph, decomposition_node
from .voting_graph import create_voting_graph
from .wrapper import add_maker_step, maker_node

__all__ = [
    "add_maker_step",
    "create_decomposition_graph",
    "create_voting_graph",
    "decomposition_node",
    "maker_node",
]
