"""The registry: the only place a spec finds code.

A spec names functions, tasks, parsers, red flags, vote keys and simulated
oracles; it never carries code. Users register their own components with a
decorator in their own modules, and the loader looks names up here. Importing
a dotted path (`package.module:attribute`) is possible only when the caller of
`load_graph` allow-lists the module explicitly.

Kinds and what a registered object is called with:

- `function`: a graph node, `fn(state, **params) -> dict` (sync or async).
  With `factory=True`: `fn(**params)` returns the node function.
- `task`: a factory of `Task`s, `factory(**params) -> Task` (a class works).
- `parser`: `parser(output) -> answer`, raising to red-flag the sample.
  With `factory=True`: `parser(**params)` returns the parser.
- `red_flag`: `check(sample) -> Verdict | bool | str | None`.
  With `factory=True`: `check(**params)` returns the check.
- `key`: `key(answer) -> Hashable`, the vote key of an answer.
- `oracle`: `oracle(prompt_text) -> str`, the correct answer of a simulated model.

Example:
    >>> from maker_graph.registry import register
    >>> @register.function
    ... def shout(state, suffix="!"):
    ...     return {"reply": state["reply"].upper() + suffix}
    >>> register.get("function", "shout").obj is shout
    True
"""

from __future__ import annotations

import importlib
import inspect
import re
import threading
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Literal, TypeVar, get_args, overload

from ..errors import ConfigurationError

__all__ = [
    "KINDS",
    "Entry",
    "Kind",
    "Registry",
    "register",
    "registry",
    "resolve_import",
]

Kind = Literal["function", "task", "parser", "red_flag", "key", "oracle"]
KINDS: tuple[str, ...] = get_args(Kind)

F = TypeVar("F", bound=Callable[..., Any])

ParamsCheck = Callable[[Mapping[str, Any], Collection[str] | None], str | None]
"""`check(params, state_keys) -> why the params are wrong, or None`; `state_keys` is None
when the caller does not know the graph's state."""

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")
_DOTTED = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*:[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class Entry:
    """One registered component.

    Attributes:
        kind: what it is (`function`, `task`, `parser`, `red_flag`, `key`, `oracle`).
        name: the name specs use.
        obj: the registered object.
        factory: True when the spec's `params` build the component (`obj(**params)`)
            rather than being passed at call time.
        description: a one-line description (the docstring's first line by default).
        simulator: tasks only: `simulator(task, error_model) -> Sampler`, the simulated
            model of this task (right answers from its ground truth), used when a spec
            runs the task on a `simulated` model.
        params_check: what the signature cannot say about a spec's params (a template's
            placeholders, say), checked at load time so `validate` refuses them.
    """

    kind: str
    name: str
    obj: Any
    factory: bool = False
    description: str = ""
    simulator: Callable[[Any, Any], Any] | None = None
    params_check: ParamsCheck | None = None

    def check_params(
        self, params: dict[str, Any], state_keys: Collection[str] | None = None
    ) -> str | None:
        """Why `params` do not fit this entry, or None when they do.

        Args:
            params: the spec's params of this entry.
            state_keys: the graph's state keys, when known: an entry's `params_check`
                may refuse params naming a key the state does not have.
        """
        problem = self._check_signature(params)
        if problem is None and self.params_check is not None:
            try:
                problem = self.params_check(params, state_keys)
            except Exception as exc:  # noqa: BLE001 - a check that fails is a refusal
                problem = f"{type(exc).__name__}: {exc}"
            if problem:
                problem = f"params do not fit {self.kind} {self.name!r}: {problem}"
        return problem

    def _check_signature(self, params: dict[str, Any]) -> str | None:
        try:
            signature = inspect.signature(self.obj)
        except (TypeError, ValueError):
            return None  # builtins without a signature: let the call decide
        takes_params = self.factory or self.kind in ("function", "task")
        if not takes_params:
            if params:
                return (
                    f"{self.kind} {self.name!r} takes no params; register it with "
                    "factory=True to make it configurable"
                )
            return None
        try:
            if self.factory or self.kind == "task":
                signature.bind(**params)
            else:  # a plain node function: fn(state, **params)
                signature.bind(None, **params)
        except TypeError as exc:
            accepted = [
                p.name
                for p in signature.parameters.values()
                if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)
            ]
            if not (self.factory or self.kind == "task") and accepted:
                accepted = accepted[1:]  # the state argument is not a param
            shown = ", ".join(accepted) or "none"
            return f"params do not fit {self.kind} {self.name!r}: {exc} (accepted: {shown})"
        return None


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _same_definition(a: Any, b: Any) -> bool:
    # A module imported twice (a dev server reloading it) registers new objects
    # for the same definitions; that is not a clash.
    qualname = getattr(a, "__qualname__", None)
    if qualname is None or "<" in qualname or qualname != getattr(b, "__qualname__", None):
        return False  # lambdas and local functions are never the same definition
    file_a = getattr(getattr(a, "__code__", None), "co_filename", None)
    file_b = getattr(getattr(b, "__code__", None), "co_filename", None)
    if file_a is not None and file_a == file_b:
        return True  # one file imported under two module names (a server, the CLI)
    return getattr(a, "__module__", None) == getattr(b, "__module__", None)


class Registry:
    """Named components that specs may use, by kind.

    Use the module-level `register` (the default registry) in your own code;
    build a separate `Registry` to isolate tests or to offer a restricted set.
    `copy()` gives an independent registry starting with the same entries.

    Example:
        >>> from maker_graph.registry import Registry
        >>> reg = Registry()
        >>> @reg.parser("yes_no")
        ... def yes_no(output):
        ...     text = str(output).strip().lower()
        ...     if text not in ("yes", "no"):
        ...         raise ValueError(f"not yes/no: {text!r}")
        ...     return text == "yes"
        >>> reg.names("parser")
        ['yes_no']
    """

    def __init__(self) -> None:
        self._entries: dict[str, dict[str, Entry]] = {kind: {} for kind in KINDS}
        self._lock = threading.Lock()

    # ------------------------------------------------------------------ adding

    def add(
        self,
        kind: str,
        name: str,
        obj: Any,
        *,
        factory: bool = False,
        description: str | None = None,
        simulator: Callable[[Any, Any], Any] | None = None,
        params_check: ParamsCheck | None = None,
        replace: bool = False,
    ) -> Entry:
        """Register `obj` under `name`; returns the entry.

        `params_check(params, state_keys)` refuses params at load time beyond what
        the signature says (see `Entry.params_check`).

        Raises:
            ConfigurationError: unknown kind, bad name, not callable, or the name is
                taken by another object (pass `replace=True` to override).
        """
        _check_kind(kind)
        if not isinstance(name, str) or not _NAME.match(name):
            raise ConfigurationError(
                f"cannot register {kind} {name!r}: a name is letters, digits, '_', '.' or '-', "
                "starting with a letter or '_', at most 100 characters"
            )
        if not callable(obj):
            raise ConfigurationError(f"cannot register {kind} {name!r}: {obj!r} is not callable")
        if simulator is not None and kind != "task":
            raise ConfigurationError(f"only tasks take a simulator, not a {kind}")
        entry = Entry(
            kind, name, obj, factory, description or _first_line(obj), simulator, params_check
        )
        with self._lock:
            old = self._entries[kind].get(name)
            if old is not None and not replace and old.obj is not obj:
                if not _same_definition(old.obj, obj):
                    raise ConfigurationError(
                        f"{kind} {name!r} is already registered ({old.obj!r}); "
                        "choose another name or pass replace=True"
                    )
            self._entries[kind][name] = entry
        return entry

    def register(
        self,
        kind: str,
        name: str | Callable[..., Any] | None = None,
        *,
        factory: bool = False,
        simulator: Callable[[Any, Any], Any] | None = None,
        replace: bool = False,
    ) -> Any:
        """Decorator registering a component of `kind` (under its `__name__` by default).

        Usable bare (`@reg.register("function")`... with a name, or via the
        shortcuts `@reg.function`, `@reg.task("hanoi")`, `@reg.parser(factory=True)`).
        """
        if callable(name):
            fn = name
            self.add(kind, fn.__name__, fn, factory=factory, simulator=simulator, replace=replace)
            return fn

        def decorator(obj: F) -> F:
            self.add(
                kind,
                name or obj.__name__,
                obj,
                factory=factory,
                simulator=simulator,
                replace=replace,
            )
            return obj

        return decorator

    __call__ = register

    @overload
    def function(self, name: F, *, factory: bool = ..., replace: bool = ...) -> F: ...
    @overload
    def function(
        self, name: str | None = ..., *, factory: bool = ..., replace: bool = ...
    ) -> Callable[[F], F]: ...
    def function(self, name: Any = None, *, factory: bool = False, replace: bool = False) -> Any:
        """Register a graph node function: `fn(state, **params) -> dict` (sync or async)."""
        return self.register("function", name, factory=factory, replace=replace)

    @overload
    def task(
        self, name: F, *, simulator: Callable[[Any, Any], Any] | None = ..., replace: bool = ...
    ) -> F: ...
    @overload
    def task(
        self,
        name: str | None = ...,
        *,
        simulator: Callable[[Any, Any], Any] | None = ...,
        replace: bool = ...,
    ) -> Callable[[F], F]: ...
    def task(
        self,
        name: Any = None,
        *,
        simulator: Callable[[Any, Any], Any] | None = None,
        replace: bool = False,
    ) -> Any:
        """Register a task factory: `factory(**params) -> Task` (a class works).

        `simulator(task, error_model) -> Sampler` lets specs run the task on a
        `simulated` model (right answers from the task's ground truth).
        """
        return self.register("task", name, factory=True, simulator=simulator, replace=replace)

    @overload
    def parser(self, name: F, *, factory: bool = ..., replace: bool = ...) -> F: ...
    @overload
    def parser(
        self, name: str | None = ..., *, factory: bool = ..., replace: bool = ...
    ) -> Callable[[F], F]: ...
    def parser(self, name: Any = None, *, factory: bool = False, replace: bool = False) -> Any:
        """Register a parser `(output) -> answer` (raise to red-flag), or a factory of one."""
        return self.register("parser", name, factory=factory, replace=replace)

    @overload
    def red_flag(self, name: F, *, factory: bool = ..., replace: bool = ...) -> F: ...
    @overload
    def red_flag(
        self, name: str | None = ..., *, factory: bool = ..., replace: bool = ...
    ) -> Callable[[F], F]: ...
    def red_flag(self, name: Any = None, *, factory: bool = False, replace: bool = False) -> Any:
        """Register a red-flag check `(sample) -> Verdict | bool | str | None`, or a factory."""
        return self.register("red_flag", name, factory=factory, replace=replace)

    @overload
    def key(self, name: F, *, factory: bool = ..., replace: bool = ...) -> F: ...
    @overload
    def key(
        self, name: str | None = ..., *, factory: bool = ..., replace: bool = ...
    ) -> Callable[[F], F]: ...
    def key(self, name: Any = None, *, factory: bool = False, replace: bool = False) -> Any:
        """Register a vote key `(answer) -> Hashable`: answers with equal keys are one vote."""
        return self.register("key", name, factory=factory, replace=replace)

    @overload
    def oracle(self, name: F, *, factory: bool = ..., replace: bool = ...) -> F: ...
    @overload
    def oracle(
        self, name: str | None = ..., *, factory: bool = ..., replace: bool = ...
    ) -> Callable[[F], F]: ...
    def oracle(self, name: Any = None, *, factory: bool = False, replace: bool = False) -> Any:
        """Register a simulated model's oracle: `(prompt_text) -> correct answer text`."""
        return self.register("oracle", name, factory=factory, replace=replace)

    # ------------------------------------------------------------------ lookup

    def get(self, kind: str, name: str) -> Entry:
        """The entry of `kind` named `name`.

        Raises:
            ConfigurationError: no such entry (the message lists the known names).
        """
        _check_kind(kind)
        entry = self._entries[kind].get(name)
        if entry is None:
            known = ", ".join(self.names(kind)) or "none registered"
            hint = _did_you_mean(name, self.names(kind))
            raise ConfigurationError(
                f"unknown {kind} {name!r}{hint} (known: {known}); register yours with "
                f"@register.{kind} in a module imported before the spec is loaded"
            )
        return entry

    def resolve(self, kind: str, reference: str, *, allow_imports: Sequence[str] = ()) -> Entry:
        """Look up a name, or import `module:attribute` when its module is allow-listed.

        Raises:
            ConfigurationError: unknown name, a dotted path that is not allow-listed, or
                an import that fails.
        """
        if ":" in reference:
            obj = resolve_import(reference, allow_imports)
            return Entry(kind, reference, obj, factory=kind == "task", description=_first_line(obj))
        return self.get(kind, reference)

    def names(self, kind: str) -> list[str]:
        """Registered names of `kind`, sorted."""
        _check_kind(kind)
        return sorted(self._entries[kind])

    def __contains__(self, item: tuple[str, str]) -> bool:
        kind, name = item
        return name in self._entries.get(kind, {})

    def copy(self) -> Registry:
        """An independent registry holding the same entries."""
        new = Registry()
        with self._lock:
            for kind in KINDS:
                new._entries[kind] = dict(self._entries[kind])
        return new

    @contextmanager
    def scoped(self) -> Iterator[Registry]:
        """Register temporarily: entries added inside the block are gone after it."""
        with self._lock:
            saved = {k: dict(v) for k, v in self._entries.items()}
        try:
            yield self
        finally:
            with self._lock:
                self._entries = saved

    def __repr__(self) -> str:
        counts = ", ".join(f"{kind}={len(self.names(kind))}" for kind in KINDS)
        return f"Registry({counts})"


def _check_kind(kind: str) -> None:
    if kind not in KINDS:
        raise ConfigurationError(f"unknown registry kind {kind!r}; one of {', '.join(KINDS)}")


def _did_you_mean(name: str, known: Sequence[str]) -> str:
    import difflib

    close = difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _import_target(target: str) -> Any:
    module_name, _, attr = target.partition(":")
    module = importlib.import_module(module_name)
    obj = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    return obj


def resolve_import(reference: str, allow_imports: Sequence[str]) -> Any:
    """Import `package.module:attribute`, only when its module is in `allow_imports`.

    An allow-listed module also allows its sub-modules (`myapp` allows `myapp.nodes`).
    Importing runs the module's code, which is why it needs the caller's consent.

    Raises:
        ConfigurationError: malformed path, module not allowed, or the import fails.
    """
    if not _DOTTED.match(reference):
        raise ConfigurationError(
            f"{reference!r} is not an import path; write package.module:attribute"
        )
    module_name, _, attr = reference.partition(":")
    allowed = any(module_name == m or module_name.startswith(m + ".") for m in allow_imports)
    if not allowed:
        raise ConfigurationError(
            f"importing {reference!r} is not allowed: specs run no code unless the caller "
            f"allows its module (load_graph(..., allow_imports=[{module_name!r}]) or "
            f"maker-graph --import {module_name}), or register it with @register"
        )
    try:
        return _import_target(reference)
    except Exception as exc:  # noqa: BLE001 - any failure of the user's module is a setup error
        raise ConfigurationError(
            f"cannot import {reference!r}: {type(exc).__name__}: {exc}"
        ) from exc


registry = Registry()
"""The default registry that specs use unless `load_graph(..., registry=...)` names another."""

register = registry
"""The default registry, named for its decorators: `@register.function`, `@register.task(...)`."""


def _install_builtins() -> None:
    from ._builtins import install

    install(registry)


_install_builtins()
