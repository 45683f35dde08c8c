"""Semantic vote keys (issue 13): free-text normalisers and the embedding clustering key."""

from __future__ import annotations

import threading
import time
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.embeddings import Embeddings
from langchain_core.messages import AIMessage

from maker_graph import NoConsensusError, canonical_key, tool_call_key, vote_step_sync
from maker_graph.errors import ConfigurationError
from maker_graph.semantic_keys import (
    EmbeddingClusterKey,
    normalise_text,
    normalised_text_key,
)

# ----------------------------------------------------------------------------- normalisers


@pytest.mark.parametrize(
    "group",
    [
        ["1,000", "1000", "1000.0", "1e3", "1E3", "+1000", "01000", "1.0e3", "1,000.00"],
        ["0.50", ".5", "0.5", "5e-1"],
        ["Paris", "paris.", "  PARIS!  ", "\tparis\n"],
        ["It costs $1,000.", "it costs $1000", "It  costs $1e3!"],
        ["-0", "0", "0.0", "+0"],
    ],
)
def test_equivalent_spellings_share_a_key(group: list[str]) -> None:
    assert len({normalise_text(s) for s in group}) == 1, [normalise_text(s) for s in group]


@pytest.mark.parametrize(
    "a,b",
    [
        ("1.5", "15"),
        ("1,5", "15"),
        ("-5", "5"),
        (".5", "5"),
        ("1.5", "1.50001"),
        ("a+b", "a-b"),
        ("$5", "5"),
        ("1.2.3", "123"),
        ("3rd", "3"),
        ("1e25", "1e24"),
        ("(-5)", "(5)"),
        ("(.5)", "(5)"),
    ],
)
def test_different_answers_keep_different_keys(a: str, b: str) -> None:
    assert normalise_text(a) != normalise_text(b)


def test_each_folding_can_be_switched_off() -> None:
    assert normalised_text_key(case=False)("Paris") != normalised_text_key(case=False)("paris")
    assert normalised_text_key(whitespace=False)("a  b") != normalised_text_key()("a b")
    no_punct = normalised_text_key(punctuation=False)
    assert no_punct("paris.") != no_punct("paris")
    assert no_punct("1,000") == no_punct("1000")  # numbers still fold
    no_numbers = normalised_text_key(numbers=False)
    assert no_numbers("1,000") == "1,000"  # a number is kept as written, commas included
    assert no_numbers("1e3") != no_numbers("1000")
    assert no_numbers("-5") != no_numbers("5")


@settings(max_examples=200, derandomize=True)
@given(
    a=st.decimals(
        allow_nan=False, allow_infinity=False, places=None, min_value=-(10**30), max_value=10**30
    ),
    b=st.decimals(
        allow_nan=False, allow_infinity=False, places=None, min_value=-(10**30), max_value=10**30
    ),
)
def test_numbers_share_a_key_exactly_when_their_values_are_equal(a: Decimal, b: Decimal) -> None:
    ka, kb = normalise_text(str(a)), normalise_text(str(b))
    assert (ka == kb) == (a == b), (str(a), str(b), ka, kb)
    assert normalise_text(f"{a:f}") == ka  # plain and scientific spellings agree


@settings(max_examples=100, derandomize=True)
@given(n=st.integers(min_value=-(10**40), max_value=10**40))
def test_thousands_separators_and_trailing_zeros_fold(n: int) -> None:
    key = normalise_text(str(n))
    assert normalise_text(f"{n:,}") == key
    assert normalise_text(f"{n}.000") == key
    assert normalise_text(f"{n}e0") == key


def test_chat_messages_key_on_text_and_tool_calls_keep_their_action_key() -> None:
    key = normalised_text_key()
    assert key(AIMessage(content=" Paris. ")) == key("paris") == "paris"
    calls = [{"name": "refund", "args": {"order": "A1"}, "id": "1"}]
    message = AIMessage(content="", tool_calls=calls)
    assert key(message) == tool_call_key(message)
    assert key(3) == canonical_key(3)
    assert key({"b": 1, "a": 2}) == canonical_key({"a": 2, "b": 1})


def _elapsed(fn: Any, text: str) -> float:
    best = float("inf")
    for _ in range(2):
        start = time.perf_counter()
        fn(text)
        best = min(best, time.perf_counter() - start)
    return best


@pytest.mark.parametrize(
    "filler",
    [
        "1",
        "1,",
        "1,000",
        "1.",
        ".5",
        "-1",
        "-",
        "(-",
        " ",
        "1e",
        "1e1",
        "9,99",
        "a1",
        "…!",
        "1,000,",
        "-.",
        "$.",
        "\u00a0.",
    ],
)
def test_normalising_is_linear_in_the_answer(filler: str) -> None:
    key = normalised_text_key()
    small = (filler * (10_000 // len(filler) + 1))[:10_000] + "x"
    large = (filler * (100_000 // len(filler) + 1))[:100_000] + "x"
    t_small, t_large = _elapsed(key, small), _elapsed(key, large)
    # Linear: x10; quadratic: x100. The additive slack absorbs timer noise.
    assert t_large <= 30 * t_small + 0.02, (filler, t_small, t_large)
    # ~10 µs per token (a number or a punctuation run): 100 kB of "-1" is ~1 s here.
    assert t_large < 3.0, (filler, t_large)


# ----------------------------------------------------------------------------- embeddings

VOCABULARY = {"paris": 0, "lutetia": 0, "lyon": 1, "city": 2, "capital": 3}
"""Bag-of-words axes; synonyms share an axis and words outside it carry no meaning."""


class BagOfWords(Embeddings):
    """A deterministic embeddings double that records every text it embeds."""

    def __init__(self, delay: float = 0.0, fail_first: int = 0) -> None:
        self.calls: list[str] = []
        self.delay = delay
        self.fail_first = fail_first
        self._lock = threading.Lock()

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * 4
        for word in text.split():
            if word in VOCABULARY:
                vector[VOCABULARY[word]] += 1.0
        return vector

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self._lock:
            self.calls.extend(texts)
            failing = self.fail_first > 0
            self.fail_first -= 1
        if self.delay:
            time.sleep(self.delay)
        if failing:
            raise RuntimeError("embedding service down")
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def test_phrasings_of_one_answer_cluster_and_other_answers_do_not() -> None:
    double = BagOfWords()
    key = EmbeddingClusterKey(double, threshold=0.9)
    paris = key("Paris")
    assert key("paris.") == paris
    assert key("It is Paris") == paris
    assert key("Lutetia!") == paris  # a synonym on the same axis
    assert key("Lyon") != paris
    assert key(AIMessage(content="PARIS")) == paris
    # One embedding call per distinct normalised text ("Paris", "paris.", "PARIS" are one).
    assert double.calls == ["paris", "it is paris", "lutetia", "lyon"]
    assert key("It is Paris") == paris and len(double.calls) == 4  # cached
    assert key.representatives == ["lyon", "paris"] or key.representatives == ["paris", "lyon"]


def test_the_threshold_decides_what_is_near_enough() -> None:
    # "paris city" is at cosine 0.707 from "paris".
    loose, strict = (
        EmbeddingClusterKey(BagOfWords(), threshold=0.7),
        EmbeddingClusterKey(BagOfWords(), threshold=0.9),
    )
    assert loose("Paris") == loose("Paris, the city")
    assert strict("Paris") != strict("Paris, the city")


@pytest.mark.parametrize("bad", [0, 0.0, -0.5, 1.5, float("nan"), float("inf"), True, "0.9", None])
def test_a_bad_threshold_is_a_configuration_error(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="threshold must be a cosine similarity"):
        EmbeddingClusterKey(BagOfWords(), threshold=bad)


def test_bad_embeddings_or_cache_size_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="Embeddings"):
        EmbeddingClusterKey(object())
    with pytest.raises(ConfigurationError, match="max_cache"):
        EmbeddingClusterKey(BagOfWords(), max_cache=0)


def test_the_cache_is_bounded_least_recently_used_first() -> None:
    double = BagOfWords()
    key = EmbeddingClusterKey(double, threshold=0.9, max_cache=2)
    key("paris"), key("lyon"), key("paris"), key("capital")  # "lyon" is least recent
    assert len(double.calls) == 3
    key("paris")
    assert len(double.calls) == 3  # still cached
    key("lyon")
    assert len(double.calls) == 4  # pushed out, embedded again
    assert len(key.representatives) <= 2


def test_non_text_and_tool_calls_keep_the_default_keys() -> None:
    double = BagOfWords()
    key = EmbeddingClusterKey(double)
    message = AIMessage(content="", tool_calls=[{"name": "refund", "args": {}, "id": "7"}])
    assert key(message) == tool_call_key(message)
    assert key(42) == 42
    assert key("") == "" and key("!!") == ""
    assert double.calls == []


def test_concurrent_threads_embed_each_text_once_and_agree() -> None:
    double = BagOfWords(delay=0.02)
    key = EmbeddingClusterKey(double, threshold=0.9)
    texts = ["Paris", "paris.", "It is Paris", "Lyon", "lyon!", "capital city"]
    results: list[dict[str, Any]] = []

    def work() -> None:
        results.append({t: key(t) for t in texts * 5})

    threads = [threading.Thread(target=work) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert len(results) == 8
    assert all(r == results[0] for r in results)
    assert sorted(double.calls) == sorted(["paris", "it is paris", "lyon", "capital city"])
    assert results[0]["Paris"] == results[0]["It is Paris"] != results[0]["Lyon"]


def test_a_failed_embedding_raises_and_the_next_call_retries() -> None:
    double = BagOfWords(fail_first=1)
    key = EmbeddingClusterKey(double)
    with pytest.raises(RuntimeError, match="down"):
        key("Paris")
    assert key("Paris") == "paris"
    assert double.calls == ["paris", "paris"]


def test_three_phrasings_win_a_vote_that_canonical_key_cannot_decide() -> None:
    phrasings = ["Paris", "It is Paris", "paris.", "Lyon"]

    def model(question: str, index: int) -> str:
        return phrasings[index % len(phrasings)]

    key = EmbeddingClusterKey(BagOfWords(), threshold=0.9)
    result = vote_step_sync(model, "capital of France?", k=3, key=key, max_samples=8)
    assert result.winner == "Paris"
    assert result.winner_key == "paris"
    for other in (canonical_key, normalised_text_key()):
        with pytest.raises(NoConsensusError):
            vote_step_sync(model, "capital of France?", k=3, key=other, max_samples=8)
