"""The first-to-ahead-by-k decision rule and the tally."""

from __future__ import annotations

from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import BaseModel

from maker_graph.voting import (
    Tally,
    canonical_key,
    first_to_ahead_by_k,
    lead,
    plurality,
    samples_needed,
)

counts_st = st.dictionaries(st.sampled_from("abcdef"), st.integers(0, 30), max_size=6)


def test_winner_needs_k_lead() -> None:
    assert first_to_ahead_by_k({"a": 3}, 3) == "a"
    assert first_to_ahead_by_k({"a": 3, "b": 1}, 3) is None
    assert first_to_ahead_by_k({"a": 4, "b": 1}, 3) == "a"
    assert first_to_ahead_by_k({}, 1) is None


def test_k_must_be_positive() -> None:
    with pytest.raises(ValueError, match="k must be >= 1, got 0"):
        first_to_ahead_by_k({"a": 1}, 0)
    with pytest.raises(ValueError):
        samples_needed({}, 0)


def test_samples_needed_is_k_minus_lead() -> None:
    assert samples_needed({}, 3) == 3
    assert samples_needed({"a": 2, "b": 1}, 3) == 2
    assert samples_needed({"a": 5, "b": 1}, 3) == 0


@given(counts_st, st.integers(1, 8))
def test_decision_matches_definition(counts: dict[str, int], k: int) -> None:
    winner = first_to_ahead_by_k(counts, k)
    for key, n in counts.items():
        others = max((m for other, m in counts.items() if other != key), default=0)
        if n - others >= k:
            assert winner == key
    if winner is not None:
        assert all(counts[winner] - m >= k for o, m in counts.items() if o != winner)


@given(counts_st, st.integers(1, 8))
def test_needed_votes_for_leader_decide_exactly(counts: dict[str, int], k: int) -> None:
    """Giving the leader exactly `samples_needed` votes decides; one fewer never does."""
    need = samples_needed(counts, k)
    leader = plurality(counts)
    if need == 0:
        assert first_to_ahead_by_k(counts, k) is not None
        return
    if leader is None or counts.get(leader, 0) == 0:
        leader = "z"
    more = Counter(counts)
    more[leader] += need
    assert first_to_ahead_by_k(dict(more), k) == leader
    fewer = Counter(counts)
    fewer[leader] += need - 1
    # No answer can lead by k with fewer votes than needed.
    assert first_to_ahead_by_k(dict(fewer), k) is None


@given(st.lists(st.sampled_from("abc"), max_size=40), st.integers(1, 5))
def test_tally_agrees_with_counter(votes: list[str], k: int) -> None:
    tally = Tally(votes)
    assert tally.counts == dict(Counter(votes))
    assert tally.total == len(votes)
    assert tally.winner_key(k) == first_to_ahead_by_k(Counter(votes), k)
    assert tally.needed(k) == samples_needed(Counter(votes), k)
    assert lead(tally.counts) >= 0


def test_plurality_breaks_ties_by_first_seen() -> None:
    assert plurality({"b": 2, "a": 2}) == "b"
    assert plurality({}) is None


class Answer(BaseModel):
    label: str
    score: int


def test_canonical_key_collides_equal_structures() -> None:
    assert canonical_key(Answer(label="x", score=1)) == canonical_key(Answer(score=1, label="x"))
    assert canonical_key({"b": 1, "a": [1, 2]}) == canonical_key({"a": [1, 2], "b": 1})
    assert canonical_key(("a", 1)) == ("a", 1)
    assert canonical_key("x") == "x"


def test_tally_keeps_first_value_per_key() -> None:
    tally = Tally()
    tally.add({"a": 1})
    tally.add({"a": 1})
    tally.add({"a": 1})
    assert tally.winner(3) == {"a": 1}
