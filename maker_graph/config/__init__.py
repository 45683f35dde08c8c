"""Declarative graph specs: YAML or JSON files that build LangGraph graphs with MAKER steps.

A spec declares the state, the models, the nodes (voted maker steps, plain
prompt calls, decomposition runs over registered tasks, registered functions)
and how they connect. `load_graph` checks it (every problem, located, in one
`SpecError`) and returns an uncompiled `StateGraph`; `spec_json_schema()` is
the JSON Schema editors use to check and complete specs. Specs run no code:
components come from `maker_graph.registry`.

Example:
    >>> from maker_graph.config import load_graph
    >>> greet = {"kind": "function", "function": "format_text",
    ...          "params": {"template": "hi {who}", "output": "out"}}
    >>> graph = load_graph({"name": "hi", "state": {"who": "str", "out": "str"},
    ...                     "nodes": {"greet": greet}, "entry": "greet", "finish": ["greet"]})
    >>> graph.compile().invoke({"who": "Ada"})["out"]
    'hi Ada'
"""

from ..errors import SpecError
from .loader import Limits, load_graph, load_spec
from .registry import Registry, register, registry
from .spec import GraphSpec, spec_json_schema

__all__ = [
    # loading
    "Limits",
    "load_graph",
    "load_spec",
    # the spec
    "GraphSpec",
    "spec_json_schema",
    # the registry
    "Registry",
    "register",
    "registry",
    # errors
    "SpecError",
]
