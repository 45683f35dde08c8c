"""LangGraph surfaces."""

from .voting_graph import create_voting_graph
from .wrapper import add_maker_step, maker_node

__all__ = ["add_maker_step", "create_voting_graph", "maker_node"]
