"""The components every registry starts with (private; see `maker_graph.registry`)."""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

from ..red_flags import matches, max_output_tokens, truncated

if TYPE_CHECKING:  # the registry imports this module to fill itself; no cycle at run time
    from .registry import Registry

__all__ = ["install"]

_NUMBER = re.compile(r"[-+]?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?")
_INTEGER = re.compile(r"[-+]?\d+")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


def format_text(state: Mapping[str, Any], template: str, output: str) -> dict[str, Any]:
    """Write `template` with `{key}` filled from the state to the state key `output`."""
    from .spec import placeholders

    names = placeholders(template)
    missing = [name for name in names if name not in state]
    if missing:
        raise KeyError(f"format_text: state key(s) {', '.join(missing)} have no value yet")
    return {output: template.format_map({name: _text(state[name]) for name in names})}


def _check_format_text(params: Mapping[str, Any], state_keys: Collection[str] | None) -> str | None:
    """Refuse at load time what `format_text` would refuse (or misuse) at run time."""
    from .spec import placeholders

    template, output = params.get("template"), params.get("output")
    if not isinstance(template, str) or not isinstance(output, str):
        return "template and output must be text"
    try:
        names = placeholders(template)
    except ValueError as exc:
        return f"template {template[:80]!r}: {exc}"
    if state_keys is None:
        return None
    unknown = [name for name in [*names, output] if name not in state_keys]
    if unknown:
        return (
            f"template or output names {', '.join(map(repr, unknown))}, not a state key "
            f"(state keys: {', '.join(sorted(state_keys)) or 'none'}); declare it under state"
        )
    return None


def set_values(state: Mapping[str, Any], **values: Any) -> dict[str, Any]:
    """Set state keys to fixed values: `params: {status: done}`."""
    return dict(values)


def copy_value(state: Mapping[str, Any], source: str, target: str) -> dict[str, Any]:
    """Copy the state key `source` to the state key `target`."""
    return {target: state.get(source)}


def integer(output: Any) -> int:
    """The only integer in the reply (a reply with none or several is red-flagged)."""
    from ._parsers import output_text

    found = _INTEGER.findall(output_text(output))
    if len(found) != 1:
        raise ValueError(f"expected exactly one integer, found {len(found)}")
    return int(found[0])


def number(output: Any) -> float:
    """The only number in the reply (a reply with none or several is red-flagged)."""
    from ._parsers import output_text

    found = _NUMBER.findall(output_text(output))
    if len(found) != 1:
        raise ValueError(f"expected exactly one number, found {len(found)}")
    return float(found[0])


def hanoi(disks: int = 3) -> Any:
    """Towers of Hanoi with `disks` disks: 2**disks - 1 voted moves."""
    from ..tasks.hanoi import HanoiTask

    return HanoiTask(disks)


def _hanoi_simulator(task: Any, errors: Any) -> Any:
    from ..tasks.hanoi import simulated_sampler

    return simulated_sampler(task, errors)


def long_addition(digits: int = 200, seed: int = 0) -> Any:
    """Long addition of two random `digits`-digit numbers, one voted column a step."""
    from ..tasks.addition import LongAdditionTask

    return LongAdditionTask(digits, seed)


def _addition_simulator(task: Any, errors: Any) -> Any:
    from ..tasks.addition import simulated_sampler

    return simulated_sampler(task, errors)


def casefold(answer: Any) -> Any:
    """Text answers compared without case or repeated spaces."""
    from ..voting import canonical_key

    if isinstance(answer, str):
        return " ".join(answer.casefold().split())
    return canonical_key(answer)


def install(registry: Registry) -> None:
    """Register the built-ins into `registry`."""
    registry.add("function", "format_text", format_text, params_check=_check_format_text)
    registry.add("function", "set_values", set_values)
    registry.add("function", "copy_value", copy_value)
    registry.add("parser", "integer", integer)
    registry.add("parser", "number", number)
    registry.add(
        "red_flag",
        "max_output_tokens",
        max_output_tokens,
        factory=True,
        description="Red-flag replies longer than `limit` output tokens.",
    )
    registry.add(
        "red_flag",
        "truncated",
        truncated,
        factory=True,
        description="Red-flag replies cut off at the token cap.",
    )
    registry.add(
        "red_flag",
        "matches",
        matches,
        factory=True,
        description="Red-flag replies matching `pattern` (recorded as `reason`).",
    )
    registry.add("key", "casefold", casefold)
    registry.add("task", "hanoi", hanoi, factory=True, simulator=_hanoi_simulator)
    registry.add(
        "task", "long_addition", long_addition, factory=True, simulator=_addition_simulator
    )
