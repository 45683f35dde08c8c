"""The run log interface: an append-only record of every committed step of a run.

A run log holds one run: its metadata (task name, task parameters, run id),
the decided steps in order, and a checkpoint written with every batch (the
state after the batch's last step, the previous action and the running
totals), so that a restarted run continues exactly where the last committed
batch left off. Batches are atomic: after a crash a log holds whole batches or
nothing of them, and every batch carries a checksum that `verify` rechecks.

Backends implement `RunLog` (SQLite in `maker_graph.runlog.sqlite`, PostgreSQL
in `maker_graph.runlog.postgres`); `maker_graph.runlog.open_run_log` picks one
from a directory or a `postgresql://` URL.

Example:
    >>> import tempfile
    >>> from maker_graph.runlog import open_run_log
    >>> with open_run_log(tempfile.mkdtemp()) as log:
    ...     meta = log.start("countdown", {"from": 3})
    ...     log.append([StepRecord(0, "2", "x", "[3]", 3, 3, None, 1, 0, 0, "vote")],
    ...                Checkpoint(next_step=1, state=2, previous_action=2, totals={}))
    ...     log.last_step()
    0
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, NamedTuple

from ..errors import RunLogError

__all__ = [
    "Checkpoint",
    "RunLog",
    "RunMeta",
    "SampleReservations",
    "StepRecord",
    "batch_checksum",
    "check_batch",
    "check_same_task",
    "iter_steps",
    "merge_settings",
    "settings_json",
]

_log = logging.getLogger("maker_graph.runlog")

_STEP_PAGE = 10_000
"""Rows per page when `iter_steps` reads steps back."""
_NO_STOP = 2**62
"""The `stop` of an open-ended `iter_steps`: beyond any step index."""


class StepRecord(NamedTuple):
    """One committed step, as stored. Plain values only, so a backend can write it as is.

    A `NamedTuple` rather than a dataclass: a million of them are built on the
    hot path, and a backend can hand them to its driver without conversion.

    Attributes:
        step: the 0-based step index.
        action: the chosen action as JSON text (for Hanoi `[disk, from, to]`).
        state_hash: a fingerprint of the state after the step.
        tally: vote counts as JSON text, the winner's first (`"[3]"`, `"[4, 1]"`).
        samples: samples drawn, red-flagged ones included.
        valid: samples that voted.
        red_flags: red-flagged samples by reason as JSON text, or None when there were none.
        rounds: rounds of parallel sampling.
        input_tokens: prompt tokens over the step's samples.
        output_tokens: completion tokens over the step's samples.
        decided_by: `"vote"`, `"plurality"` or `"escalation"`.
    """

    step: int
    action: str
    state_hash: str
    tally: str
    samples: int
    valid: int
    red_flags: str | None
    rounds: int
    input_tokens: int
    output_tokens: int
    decided_by: str

    def to_dict(self, action_name: str = "action") -> dict[str, Any]:
        """The record as JSON-ready data; `action` and `tally` decoded."""
        return {
            "step": self.step,
            action_name: json.loads(self.action),
            "state_hash": self.state_hash,
            "tally": json.loads(self.tally),
            "samples": self.samples,
            "valid": self.valid,
            "red_flagged": self.samples - self.valid,
            "red_flags": json.loads(self.red_flags) if self.red_flags else {},
            "rounds": self.rounds,
            "input_tokens": self.input_tokens,
            "output_tokens": self.output_tokens,
            "decided_by": self.decided_by,
        }


@dataclass(frozen=True, kw_only=True)
class Checkpoint:
    """Where a run stands after a committed batch: enough to continue it.

    Example:
        >>> Checkpoint(next_step=10, state=[1], previous_action=None, totals={}).next_step
        10
    """

    next_step: int
    """The index of the first step not yet committed."""
    state: Any
    """The state after the last committed step, as JSON data (the task's `dump_state`)."""
    previous_action: Any
    """The last committed action, as JSON data (None before the first step)."""
    totals: Mapping[str, Any] = field(default_factory=dict)
    """Running totals of the run (samples, tokens, histograms, wall time), JSON data."""
    done: bool = False
    """True once the task reported itself complete."""

    def to_json(self) -> str:
        return json.dumps(
            {
                "next_step": self.next_step,
                "state": self.state,
                "previous_action": self.previous_action,
                "totals": dict(self.totals),
                "done": self.done,
            },
            sort_keys=True,
            separators=(",", ":"),
        )

    @classmethod
    def from_json(cls, text: str) -> Checkpoint:
        data = json.loads(text)
        return cls(
            next_step=int(data["next_step"]),
            state=data["state"],
            previous_action=data["previous_action"],
            totals=data.get("totals", {}),
            done=bool(data.get("done", False)),
        )


@dataclass(frozen=True, kw_only=True)
class RunMeta:
    """Who a run log belongs to.

    Example:
        >>> RunMeta(run_id="r1", task="hanoi", params={"disks": 3}, created=0.0).task
        'hanoi'
    """

    run_id: str
    """A unique identifier of the run."""
    task: str
    """The task's name; a log is never continued by another task."""
    params: Mapping[str, Any]
    """The task's parameters (e.g. `{"disks": 20}`); a log is never continued with others."""
    created: float
    """Creation time, seconds since the epoch."""
    settings: Mapping[str, Any] = field(default_factory=dict)
    """How the run was started (model, k, seed, ...): informational, may change on resume."""

    @classmethod
    def new(
        cls,
        run_id: str,
        task: str,
        params: Mapping[str, Any],
        settings: Mapping[str, Any] | None,
    ) -> RunMeta:
        """The metadata of a run created now, as a backend's `start` stores it."""
        return cls(
            run_id=run_id,
            task=task,
            params=dict(params),
            created=time.time(),
            settings=dict(settings or {}),
        )

    @classmethod
    def from_stored(
        cls, run_id: str, task: str, params_json: str, created: Any, settings_json: str
    ) -> RunMeta:
        """The metadata as a backend reads it back: params and settings as JSON text."""
        return cls(
            run_id=run_id,
            task=task,
            params=json.loads(params_json),
            created=float(created),
            settings=json.loads(settings_json),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "task": self.task,
            "params": dict(self.params),
            "created": self.created,
            "settings": dict(self.settings),
        }


def settings_json(settings: Mapping[str, Any]) -> str:
    """Run settings as stored: sorted JSON, anything not JSON written as its `str`."""
    return json.dumps(dict(settings), sort_keys=True, default=str)


def iter_steps(
    fetch: Callable[[int, int, int], Sequence[Sequence[Any]]], start: int, stop: int | None
) -> Iterator[StepRecord]:
    """Stream the steps with `start <= step < stop` in step order, one page at a time.

    `fetch(at, end, limit)` is the backend's query: at most `limit` step rows with
    `at <= step < end`, ordered by step, each in `StepRecord` field order.

    Keyset pages instead of one long-lived cursor: memory stays flat, and a reader
    holds no cursor (nor, in SQLite, a WAL snapshot) for the length of a
    million-row export.
    """
    at = start
    end = stop if stop is not None else _NO_STOP
    while at < end:
        rows = fetch(at, end, _STEP_PAGE)
        if not rows:
            return
        for row in rows:
            yield StepRecord._make(row)
        at = int(rows[-1][0]) + 1


def batch_checksum(records: Sequence[StepRecord], checkpoint_json: str) -> str:
    """The checksum stored with a batch: BLAKE2b over its records and its checkpoint.

    Records hold only ints, strings and None, whose `repr` is stable, so the
    checksum can be recomputed from the rows read back.
    """
    digest = hashlib.blake2b(digest_size=16)
    digest.update(repr([tuple(r) for r in records]).encode())
    digest.update(b"\x00")
    digest.update(checkpoint_json.encode())
    return digest.hexdigest()


def check_batch(
    records: Sequence[StepRecord], checkpoint: Checkpoint, expected: int
) -> tuple[int, int]:
    """Check that a batch continues the log at step `expected` and matches its checkpoint.

    Returns:
        The batch's first and last step (`expected, expected - 1` for an empty batch).

    Raises:
        RunLogError: the batch leaves a gap, overlaps, or disagrees with its checkpoint.
    """
    if records:
        first, last = records[0].step, records[-1].step
        if first != expected or last - first + 1 != len(records):
            raise RunLogError(
                f"batch of steps {first}..{last} ({len(records)} records) does not "
                f"continue the run log at step {expected}"
            )
    else:
        first, last = expected, expected - 1
    if checkpoint.next_step != last + 1:
        raise RunLogError(f"checkpoint says next step {checkpoint.next_step}, batch ends at {last}")
    return first, last


def check_same_task(meta: RunMeta, task: str, params: Mapping[str, Any], where: str) -> None:
    """Refuse to continue a run with another task or other task parameters."""
    if meta.task != task:
        raise RunLogError(
            f"{where} holds a run of task {meta.task!r}, not {task!r}; "
            "use another run directory, or start over with --fresh"
        )
    stored = json.loads(json.dumps(dict(meta.params), sort_keys=True))
    wanted = json.loads(json.dumps(dict(params), sort_keys=True))
    if stored != wanted:
        raise RunLogError(
            f"{where} holds a {task} run with parameters {stored}, not {wanted}; "
            "use another run directory, or start over with --fresh"
        )


FIXED_SETTINGS = ("k",)
"""Settings that give a run its meaning: a resume with other values is refused once
steps are committed (a run decided at k = 3 and continued at k = 1 is neither)."""


def merge_settings(
    stored: Mapping[str, Any], settings: Mapping[str, Any], next_step: int, where: str
) -> dict[str, Any]:
    """The settings to store when a run resumes at `next_step` with `settings`.

    A fixed setting (`FIXED_SETTINGS`) that differs is refused once steps are
    committed; any other change is recorded as a segment (`{"from_step": n,
    "changed": {...}}` under `"segments"`), so the log keeps what each part of
    the run was decided with instead of silently overwriting it.

    Raises:
        RunLogError: a fixed setting differs from the stored one.
    """
    old = json.loads(settings_json({k: v for k, v in stored.items() if k != "segments"}))
    new = json.loads(settings_json({k: v for k, v in settings.items() if k != "segments"}))
    if next_step > 0:
        for name in FIXED_SETTINGS:
            if name in old and name in new and old[name] != new[name]:
                raise RunLogError(
                    f"{where} holds a run decided with {name} = {old[name]} up to step "
                    f"{next_step}; resuming with {name} = {new[name]} would change what the "
                    f"run means. Resume with {name} = {old[name]}, or start over with --fresh"
                )
    segments = list(stored.get("segments", []))
    changed = {k: v for k, v in new.items() if old.get(k) != v}
    gone = sorted(k for k in old if k not in new)
    if changed or gone:
        segment: dict[str, Any] = {"from_step": next_step, "changed": changed}
        if gone:
            segment["dropped"] = gone
        if segments and segments[-1].get("from_step") == next_step:
            segments[-1] = segment  # the last segment decided nothing: it is replaced
        else:
            segments.append(segment)
    merged = dict(new)
    if segments:
        merged["segments"] = segments
    return merged


class SampleReservations:
    """Samples reserved in a run log before they are requested: budgets exact across crashes.

    A run under a sample budget calls `need(n)` before asking the provider for its
    session's n-th sample; the log then holds, durably, an upper bound of the
    samples the run has ever requested. A run that resumes after a crash counts
    `log.reserved()` as spent (`resume_total`), so the samples of steps that were
    decided but not committed when the process died are counted (and the budget
    holds) instead of silently drawn again for free. A clean stop `release`s what
    was reserved but not drawn (failed calls that were not retried).

    Example:
        >>> import tempfile
        >>> from maker_graph.runlog import open_run_log
        >>> log = open_run_log(tempfile.mkdtemp()); _ = log.start("t", {})
        >>> r = SampleReservations(log, base=10)
        >>> r.need(3); log.reserved()
        13
        >>> SampleReservations.resume_total(log, committed=11)
        13
        >>> log.close()
    """

    __slots__ = ("base", "log", "total")

    def __init__(self, log: RunLog, base: int) -> None:
        self.log = log
        self.base = base
        self.total = base
        log.reserve(base)

    def need(self, drawn: int) -> None:
        """Make sure `drawn` samples of this session are reserved before they are requested."""
        total = self.base + drawn
        if total > self.total:
            self.log.reserve(total)
            self.total = total

    def release(self, drawn: int) -> None:
        """At a clean stop: the reservation becomes exactly what was drawn."""
        self.total = self.base + drawn
        self.log.reserve(self.total)

    @staticmethod
    def resume_total(log: RunLog, committed: int) -> int:
        """Samples a resumed run has spent: the committed count, or more if more were reserved."""
        return max(committed, log.reserved())


class RunLog(ABC):
    """An append-only log of one run's committed steps.

    The life of a log: `start` (create a run, or reopen it for the same task),
    then `append` batches, each atomic together with its `Checkpoint`; `close`
    at the end (or use it as a context manager). Readers use `meta`,
    `checkpoint`, `last_step` and `steps`. Only one process may write a run at a
    time; a second writer gets `RunLogError`.
    """

    #: Where the log lives, for messages.
    location: str
    #: Set by a backend that uses `_verify_batch`: what to do with a corrupt log
    #: besides starting over ("keep the file for inspection and ...").
    _corrupt_advice: str

    @abstractmethod
    def start(
        self,
        task: str,
        params: Mapping[str, Any],
        *,
        run_id: str | None = None,
        settings: Mapping[str, Any] | None = None,
    ) -> RunMeta:
        """Create the run, or reopen it if it exists, taking the writer's lock.

        Raises:
            RunLogError: the log holds another task or other parameters, another
                process is writing it, or its last batch is corrupt.
        """

    @abstractmethod
    def append(self, records: Sequence[StepRecord], checkpoint: Checkpoint) -> None:
        """Commit a batch of consecutive steps and the checkpoint after them, atomically.

        Raises:
            RunLogError: the batch does not continue the log (a gap or a repeat).
        """

    @abstractmethod
    def meta(self) -> RunMeta | None:
        """The run's metadata, or None if the log holds no run yet."""

    @abstractmethod
    def checkpoint(self) -> Checkpoint | None:
        """The checkpoint of the last committed batch, or None before the first."""

    @abstractmethod
    def steps(self, start: int = 0, stop: int | None = None) -> Iterator[StepRecord]:
        """The committed steps with `start <= step < stop`, in step order, streamed."""

    def verify(self) -> int:
        """Recheck every batch's checksum; returns the number of steps checked.

        Raises:
            RunLogError: a batch's rows do not match its checksum, or batches leave a
                gap or overlap.
        """
        return sum(1 for _ in self.verified_steps())

    def verified_steps(self) -> Iterator[StepRecord]:
        """Every committed step in order, each batch checked against its checksum first.

        What `log export` prints: a reader never passes on a row of a batch that does
        not match its checksum (a changed byte, a changed step number, a lost row).

        Raises:
            RunLogError: naming the first bad batch; nothing of it is yielded.
        """
        expected = 0
        for batch, first, last, cp_json, checksum in self._batches():
            if last >= first and first != expected:
                raise self._corrupt(batch, first, last, f"it should start at step {expected}")
            yield from self._verify_batch(batch, first, last, cp_json, checksum)
            if last >= first:
                expected = last + 1

    def _corrupt(self, batch: int, first: int, last: int, why: str) -> RunLogError:
        return RunLogError(
            f"the run log {self.location} is corrupt: batch {batch} (steps {first}..{last}): "
            f"{why}. Start over with --fresh, or {self._corrupt_advice}"
        )

    def _batches(self) -> Sequence[Sequence[Any]]:
        """Every batch row `(batch, first_step, last_step, checkpoint, checksum)`, in order.

        A backend that keeps no batches overrides `verify` and `verified_steps` instead.
        """
        raise NotImplementedError(f"{type(self).__name__} keeps no checksummed batches")

    def reserve(self, total: int) -> None:
        """Durably record that the run may have drawn up to `total` samples in all.

        Called before samples are requested (see `SampleReservations`), so that a
        crash cannot hide samples that were paid for but never committed. The
        default keeps nothing: a log without it counts only committed samples.
        """
        return None

    def reserved(self) -> int:
        """The last `reserve`d total (0 if none)."""
        return 0

    @abstractmethod
    def drop(self) -> None:
        """Delete the run and everything in it (taking the writer's lock first), then close.

        Raises:
            RunLogError: another process is writing the run.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the writer's lock and the connection. Safe to call twice."""

    def _verify_batch(
        self, batch: int, first: int, last: int, cp_json: str, checksum: str
    ) -> list[StepRecord]:
        """One batch's steps, rechecked against its stored checksum.

        Raises:
            RunLogError: the batch's rows are missing or do not match its checksum.
        """
        records = list(self.steps(first, last + 1)) if last >= first else []
        if len(records) != max(0, last - first + 1) or batch_checksum(records, cp_json) != checksum:
            raise self._corrupt(batch, first, last, "it does not match its checksum")
        return records

    def _recover_torn_tail(
        self,
        tail: Sequence[Sequence[Any]],
        *,
        batch_before: Callable[[int], Sequence[Any] | None],
        drop_batches_from: Callable[[int, int], None],
        drop_steps_after: Callable[[int], int],
    ) -> None:
        """Check the log's tail before writing to it, and recover from a torn write.

        The tail is the last batch that holds steps and the step-less batches after it
        (a session that ends right after a commit adds one). A tail batch with rows
        missing, and step rows after the last batch, are what a torn write leaves: they
        are dropped, with a warning, and those steps are decided again. A tail batch
        with all its rows that does not match its checksum (a changed row or
        checkpoint), and a bad batch before the tail, are corruption, not a torn
        write: they raise and nothing is dropped.

        The backend supplies the queries, on the connection that holds the writer's lock:

        Args:
            tail: the tail's batch rows `(batch, first_step, last_step, checkpoint,
                checksum)`, in batch order.
            batch_before: the row of the batch just before the given batch, or None.
            drop_batches_from: delete, in one transaction, the given batch and the
                batches after it and the steps from the given step on.
            drop_steps_after: delete the step rows after the given step; returns how many.
        """
        last = tail[-1] if tail else None
        for row in tail:
            try:
                self._verify_batch(*row)
            except RunLogError:
                batch, first, last_step = int(row[0]), int(row[1]), int(row[2])
                if last_step >= first and sum(1 for _ in self.steps(first, last_step + 1)) == (
                    last_step - first + 1
                ):
                    # Every row is there but the content differs: a commit is atomic, so
                    # this is a changed byte, not a torn write. Refuse; drop nothing.
                    raise self._corrupt(
                        batch, first, last_step, "its rows do not match its checksum"
                    ) from None
                before = batch_before(row[0])
                if before is not None:
                    self._verify_batch(*before)  # bad too: corruption, not a torn write
                drop_batches_from(row[0], row[1])
                _log.warning(
                    "%s: dropped the torn last batch %s (steps %s..%s), which did not match "
                    "its checksum; those steps will be decided again",
                    self.location,
                    *row[:3],
                )
                last = before
                break
        committed = -1 if last is None else int(last[2])
        extra = drop_steps_after(committed)
        if extra:
            _log.warning(
                "%s: dropped %s step rows after the last committed batch (a torn write); "
                "those steps will be decided again",
                self.location,
                extra,
            )

    def last_step(self) -> int | None:
        """The index of the last committed step, or None when none is committed."""
        cp = self.checkpoint()
        return None if cp is None or cp.next_step == 0 else cp.next_step - 1

    def __enter__(self) -> RunLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
