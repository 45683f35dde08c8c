"""The registry of components specs may use (public alias of `maker_graph.config.registry`).

Register your own functions, tasks, parsers, red flags, vote keys and
simulated oracles with the decorators of `register`, in your own module, and
import that module before loading a spec that names them.

Example:
    >>> from maker_graph.registry import register
    >>> @register.function
    ... def add_signature(state, name="Support"):
    ...     return {"reply": f"{state['reply']}\\n-- {name}"}
    >>> "add_signature" in register.names("function")
    True
"""

from .config.registry import KINDS, Entry, Kind, Registry, register, registry, resolve_import

__all__ = ["KINDS", "Entry", "Kind", "Registry", "register", "registry", "resolve_import"]
