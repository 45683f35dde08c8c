"""The pilot's error tables: error rate against answer length, and collisions.

Pure functions of the stored `SampleRecord`s: where long answers go wrong (the
error-vs-length bins) and how often two samples of one step are both wrong,
against what independent errors would give, at each length cap worth trying.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from ._estimate_sampling import FrozenModel, SampleRecord

LENGTH_EDGES: tuple[int, ...] = (0, 25, 50, 100, 200, 300, 500, 700, 1000, 1500, 2500, 5000)
"""Lower edges of the output-length bins of the error-vs-length table (tokens)."""


class LengthBin(FrozenModel):
    """Error rate of the samples whose output length falls in `[low, high)` tokens."""

    low: int
    high: int | None
    samples: int
    """Samples in the bin (failed calls excluded)."""
    wrong: int
    """Parsed but wrong."""
    malformed: int
    """Did not parse."""

    @property
    def error_rate(self) -> float:
        return (self.wrong + self.malformed) / self.samples if self.samples else 0.0

    @property
    def wrong_rate(self) -> float:
        parsed = self.samples - self.malformed
        return self.wrong / parsed if parsed else 0.0


class CollisionPoint(FrozenModel):
    """Collisions when answers longer than `cap` tokens are red-flagged."""

    cap: int | None
    collisions: int
    """Steps with at least two valid samples that are both wrong."""
    same_answer: int
    """Steps with at least two valid samples giving the same wrong answer."""
    expected: float
    """Collisions expected if errors were independent at the measured error rate."""
    v: float
    """Share of samples that pass the red flags at this cap."""


def length_bins(records: Iterable[SampleRecord]) -> list[LengthBin]:
    counts: dict[int, list[int]] = {}
    for r in records:
        if r.outcome == "failed":
            continue
        i = max(j for j, edge in enumerate(LENGTH_EDGES) if r.output_tokens >= edge)
        c = counts.setdefault(i, [0, 0, 0])
        c[0] += 1
        c[1] += r.outcome == "wrong"
        c[2] += r.outcome == "malformed"
    return [
        LengthBin(
            low=LENGTH_EDGES[i],
            high=LENGTH_EDGES[i + 1] if i + 1 < len(LENGTH_EDGES) else None,
            samples=c[0],
            wrong=c[1],
            malformed=c[2],
        )
        for i, c in sorted(counts.items())
    ]


def collision_counts(
    records: Sequence[SampleRecord], cap: int | None
) -> tuple[int, int, float, float]:
    by_step: dict[int, list[SampleRecord]] = {}
    drawn = 0
    for r in records:
        drawn += r.outcome != "failed"
        if r.valid(cap):
            by_step.setdefault(r.step, []).append(r)
    valid = sum(len(v) for v in by_step.values())
    wrong_total = sum(1 for v in by_step.values() for r in v if r.outcome == "wrong")
    q = wrong_total / valid if valid else 0.0
    collisions = same = 0
    expected = 0.0
    for rs in by_step.values():
        m = len(rs)
        expected += m * (m - 1) / 2 * q * q
        wrong = [r.answer for r in rs if r.outcome == "wrong"]
        if len(wrong) >= 2:
            collisions += 1
            if len(set(wrong)) < len(wrong):
                same += 1
    return collisions, same, expected, valid / drawn if drawn else 0.0


def caps_to_try(records: Sequence[SampleRecord], cap: int | None) -> list[int | None]:
    longest = max((r.output_tokens for r in records), default=0)
    nice = [
        25,
        50,
        75,
        100,
        150,
        200,
        300,
        400,
        500,
        600,
        700,
        750,
        800,
        1000,
        1200,
        1500,
        2000,
        3000,
        5000,
    ]
    caps = {c for c in nice if c <= longest * 1.25}
    if cap is not None:
        caps.add(cap)
    return [*sorted(caps), None]  # None: no length flag at all
