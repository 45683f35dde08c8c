"""How a run speaks to its task: vote keys, the log's encoding of states and actions, samplers.

A task may bring its own `dump_state`/`load_state`, `dump_action`/`load_action`
and `state_hash`; `task_codec` fills in the defaults (JSON data as it is, actions
as compact JSON, a BLAKE2 fingerprint of the dumped state).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

from .._util import compact_json, identity
from ..tasks.base import Task


def answer_key(answer: Any) -> Hashable:
    """The vote key of a step answer: the answer itself when hashable, else its `key()`.

    Hanoi's answers are tuples all the way down, so they key as themselves at the
    cost of one hash; answers holding lists fall back to `StepAnswer.key()`.
    """
    try:
        hash(answer)
    except TypeError:
        key = getattr(answer, "key", None)
        if callable(key):
            return key()  # type: ignore[no-any-return]
        return json.dumps(answer, sort_keys=True, default=repr)
    return answer  # type: ignore[no-any-return]


def _default_state_hash(dump: Callable[[Any], Any]) -> Callable[[Any], str]:
    def state_hash(state: Any) -> str:
        return hashlib.blake2b(compact_json(dump(state)).encode(), digest_size=8).hexdigest()

    return state_hash


def task_sampler(task: Task, sampler: Any) -> Any:
    """A bare chat model samples the task's prompt (the step input is not a prompt)."""
    try:
        from langchain_core.language_models import BaseChatModel
    except ImportError:  # pragma: no cover - langchain-core is a dependency
        return sampler
    if isinstance(sampler, BaseChatModel) or (
        isinstance(sampler, (list, tuple))
        and sampler
        and all(isinstance(m, BaseChatModel) for m in sampler)
    ):
        from ..sampling import ChatModelSampler

        return ChatModelSampler(sampler, prompt=task.prompt)
    return sampler


class TaskCodec(NamedTuple):
    """A task's states and actions as the run log writes and reads them."""

    dump_state: Callable[[Any], Any]
    load_state: Callable[[Any], Any]
    dump_action: Callable[[Any], str]
    load_action: Callable[[Any], Any]
    state_hash: Callable[[Any], str]


def task_codec(task: Any) -> TaskCodec:
    """The task's own encoders where it has them, else the defaults."""
    dump_state = getattr(task, "dump_state", identity)
    return TaskCodec(
        dump_state,
        getattr(task, "load_state", identity),
        getattr(task, "dump_action", compact_json),
        getattr(task, "load_action", identity),
        getattr(task, "state_hash", None) or _default_state_hash(dump_state),
    )
