"""Building a spec's models: simulated chat models, and providers' `PROVIDER:MODEL`.

Provider models go through `maker_graph.providers.resolve_chat_model`
(LangChain's `init_chat_model`; keys only from the environment). Simulated
models are `SimulatedChatModel`s whose oracle is the spec's rules, a
registered function or a constant answer.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Sequence
from typing import Any

from .._bounded_regex import RegexTimeout, compile_bounded
from ..errors import ConfigurationError
from ..sampling import message_text
from .registry import Registry
from .spec import (
    ConstantOracle,
    FunctionOracle,
    ModelSpec,
    ProviderModel,
    RulesOracle,
    SimulatedErrors,
    SimulatedModel,
)

__all__ = ["ModelFactory", "error_model", "oracle_function"]


def error_model(errors: SimulatedErrors) -> Any:
    """The `ErrorModel` of a spec's `errors` block."""
    from ..testing import ErrorModel

    return ErrorModel(**errors.model_dump())


def _last_user_text(messages: Sequence[Any]) -> str:
    for message in reversed(messages):
        if getattr(message, "type", None) == "human":
            return message_text(message)
    return message_text(messages[-1]) if messages else ""


def oracle_function(
    model: SimulatedModel, *, registry: Registry, allow_imports: Sequence[str] = ()
) -> Callable[[list[Any]], str]:
    """The simulated model's oracle: prompt messages -> the correct answer's text."""
    oracle = model.oracle
    if isinstance(oracle, ConstantOracle):
        answer = oracle.answer
        return lambda messages: answer
    if isinstance(oracle, FunctionOracle):
        entry = registry.resolve("oracle", oracle.function, allow_imports=allow_imports)
        fn = entry.obj() if entry.factory else entry.obj

        def call_oracle(messages: list[Any]) -> str:
            return str(fn(_last_user_text(messages)))

        return call_oracle
    if not isinstance(oracle, RulesOracle):
        raise ConfigurationError("this simulated model has no oracle")
    # The spec's patterns run on prompt text built from the state: bounded, like every
    # user pattern, so a backtracking rule fails this call instead of stalling the run.
    rules = [(compile_bounded(rule.match, re.IGNORECASE), rule.answer) for rule in oracle.rules]
    default = oracle.default

    def rule_oracle(messages: list[Any]) -> str:
        text = _last_user_text(messages)
        for i, (pattern, answer) in enumerate(rules):
            try:
                found = pattern.search(text)
            except RegexTimeout:
                raise ValueError(
                    f"oracle rule {i} ({pattern.pattern!r}) took over {pattern.timeout:g} s "
                    "on this prompt (it backtracks); refused"
                ) from None
            if found:
                return str(found.expand(answer))
        if default is None:
            raise ValueError(
                f"no oracle rule matches this prompt and the oracle has no default: {text[:80]!r}"
            )
        return default

    return rule_oracle


class ModelFactory:
    """Builds (once) the chat models a spec's nodes name."""

    def __init__(
        self, models: dict[str, ModelSpec], *, registry: Registry, allow_imports: Sequence[str]
    ) -> None:
        self.specs = models
        self.registry = registry
        self.allow_imports = tuple(allow_imports)
        self._built: dict[tuple[str, tuple[str, ...] | None], Any] = {}

    def spec_of(self, ref: str) -> ModelSpec:
        """The spec a node's model reference names (a bare `PROVIDER:MODEL` gets defaults)."""
        if ref in self.specs:
            return self.specs[ref]
        if ref == "simulated":
            return SimulatedModel(model="simulated")
        return ProviderModel(model=ref)

    def chat_model(self, ref: str, *, choices: Sequence[str] | None = None) -> Any:
        """The chat model for a maker or prompt node.

        Args:
            ref: the node's model reference.
            choices: a labels parser's labels, used as the wrong answers of a simulated
                model that declares no choices of its own.
        """
        spec = self.spec_of(ref)
        if isinstance(spec, SimulatedModel):
            labels = tuple(choices) if choices and not spec.choices else None
            cache_key = (ref, labels)
        else:
            cache_key = (ref, None)
        built = self._built.get(cache_key)
        if built is None:
            built = self._build(ref, spec, labels if isinstance(spec, SimulatedModel) else None)
            self._built[cache_key] = built
        return built

    def _build(self, ref: str, spec: ModelSpec, labels: Sequence[str] | None) -> Any:
        if isinstance(spec, SimulatedModel):
            from ..testing import SimulatedChatModel

            return SimulatedChatModel(
                oracle=oracle_function(
                    spec, registry=self.registry, allow_imports=self.allow_imports
                ),
                choices=list(spec.choices or labels or []) or None,
                errors=error_model(spec.errors),
                model_name=f"simulated:{ref}",
            )
        from ..providers import ProviderOptions, resolve_chat_model

        options = ProviderOptions(
            base_url=spec.base_url,
            temperature=spec.temperature,
            max_tokens=spec.max_tokens,
            timeout=spec.timeout,
            requests_per_second=spec.requests_per_second,
            api_key_env=spec.api_key_env,
            extra=dict(spec.options),
        )
        return resolve_chat_model(spec.model, options)

    def task_sampler(
        self,
        refs: Sequence[str],
        task: Any,
        simulator: Callable[[Any, Any], Any] | None,
        task_name: str,
    ) -> Any:
        """What samples a decomposition's micro-steps: a task simulator or chat models."""
        specs = [self.spec_of(ref) for ref in refs]
        simulated = [s for s in specs if isinstance(s, SimulatedModel)]
        if simulated:
            if len(specs) > 1:
                raise ConfigurationError(
                    "a decomposition node samples one simulated model, or a rotation of "
                    "provider models, not a mix"
                )
            if simulator is None:
                raise ConfigurationError(
                    f"task {task_name!r} has no simulator, so it cannot run on a simulated "
                    "model: register it with @register.task(simulator=...) or use a "
                    "provider model"
                )
            return simulator(task, error_model(simulated[0].errors))
        return [self.chat_model(ref) for ref in refs]
