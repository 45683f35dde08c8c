"""Argument checks shared by the scaling laws: each names the bad value and the range.

The laws are used to size runs worth real money, so a bad input (p <= 0.5, k=True,
NaN) fails loudly here instead of returning a plausible-looking number.
"""

from __future__ import annotations

import math


def check_p(p: float, m: int = 1) -> None:
    # `not (a < p <= b)` instead of `p <= a or p > b` so that NaN is rejected too.
    if not (0.5 < p <= 1.0):
        raise ValueError(
            f"p must be in (0.5, 1], got p={p!r}: voting cannot converge on the right "
            "answer when p <= 0.5 (and p > 1 is not a probability)"
        )
    if m > 1 and not p**m > 0.5:
        raise ValueError(
            f"p**m must be above 0.5, got p={p!r}, m={m!r} (p**m={p**m!r}): a block of m "
            "steps is right less often than wrong, so voting cannot converge; use a smaller m"
        )


def check_positive_int(name: str, value: int) -> None:
    # bool is an int subclass, but `k=True` is almost certainly a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an int, got {name}={value!r} ({type(value).__name__})")
    if value < 1:
        raise ValueError(f"{name} must be >= 1, got {name}={value!r}")


def check_target(target: float) -> None:
    # t = 1 would need an infinite margin and t = 0 needs no voting at all.
    if not (0.0 < target < 1.0):
        raise ValueError(f"target must be in the open interval (0, 1), got target={target!r}")


def check_v(v: float) -> None:
    if not (0.0 < v <= 1.0):
        raise ValueError(
            f"v (share of samples that pass the red flags) must be in (0, 1], got v={v!r}"
        )


def check_non_negative(name: str, value: float) -> None:
    if not (0.0 <= value < math.inf):
        raise ValueError(f"{name} must be a finite number >= 0, got {name}={value!r}")
