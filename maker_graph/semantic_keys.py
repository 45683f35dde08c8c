"""Vote keys for free-text answers: equivalent phrasings of one answer count as one vote.

Two keys, both usable as `key=` wherever a `KeyFunction` goes (`Voter`, `vote_step`,
`maker_node`):

- `normalised_text_key(...)` folds surface differences that never change a text's
  meaning: letter case, whitespace, punctuation and the spelling of numbers.
- `EmbeddingClusterKey(embeddings, threshold=...)` goes further: any LangChain
  `Embeddings` maps each normalised text to a vector, and a text whose cosine
  similarity to an earlier representative reaches the threshold takes that
  representative's key.

Both keep the library's default for everything that is not free text: a chat message
that calls tools keys on its action (`tool_call_key`), and a non-text answer (a number,
a dict, a pydantic model) keys by `canonical_key`. A chat message without tool calls is
keyed on its text.

What the normaliser folds, exactly (each part can be switched off):

- case: `str.casefold()` ("Paris", "PARIS", "paris" are one key; "Straße" is "strasse").
- whitespace: every run of Unicode whitespace becomes one space; ends are trimmed.
- punctuation: characters in Unicode's punctuation categories (P*: `. , ; : ! ? ' "
  ( ) [ ] { } - _ …` and the like) outside numbers. A run of them between two
  non-space characters becomes one space, so "1,5" stays apart from "15" and
  "well-known" reads "well known"; a run at either end of the text or next to a space
  is dropped ("Paris." is "paris"). Symbols (S*: `$ % + = < > ^ | ~`) are kept: they
  change meaning ("a+b" is not "a-b"). A sign or decimal point that starts a number
  is part of the number, never punctuation, so "-5" and ".5" stay apart from "5".
- numbers: a number is a whole token (not touching a letter, a digit, a `.` or a `,`
  on its left, nor a letter or a `.`/`,` followed by a digit on its right) of ASCII
  digits, optionally signed, with commas only as thousands separators in strict groups
  of three ("1,000,000"), an optional fraction and an optional exponent of at most six
  digits. Each number is rewritten as its exact decimal value, so "1,000", "1000",
  "1000.0", "1e3", "+1000" and "01000" are one key, "0.50" and ".5" are one key, and
  "1.5", "15", "1,5" and "1.50001" all differ. Rounding never happens: two spellings
  share a key only if they denote the same exact value. Version strings ("1.2.3") and
  digits glued to letters ("3rd", "v2") are not numbers. With `numbers=False` a number
  token is left exactly as written (and still protected from punctuation folding).

Every step is linear in the length of the answer (no pattern here backtracks more than
a bounded amount per character), because model output is hostile input.

Example:
    >>> key = normalised_text_key()
    >>> key("The answer is 1,000.") == key("the answer is 1e3")
    True
    >>> key("1.5") == key("15")
    False
"""

from __future__ import annotations

import math
import re
import threading
import unicodedata
from collections import OrderedDict
from collections.abc import Hashable, Sequence
from decimal import Decimal, InvalidOperation
from typing import TYPE_CHECKING, Any

from .actions import is_chat_message, tool_call_key
from .errors import ConfigurationError, MakerRuntimeError
from .sampling import message_text
from .voting import canonical_key

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings

__all__ = [
    "EmbeddingClusterKey",
    "TextNormaliser",
    "normalise_text",
    "normalised_text_key",
]

# A number starts here: the lookbehind keeps digits inside words, versions and
# comma-separated lists from being read as separate numbers.
_NUM_START = r"(?<![\w.,])[+-]?\.?[0-9]"
_NUMBER = (
    r"(?<![\w.,])[+-]?"
    r"(?:(?:[0-9]{1,3}(?:,[0-9]{3})+|[0-9]+)(?:\.[0-9]+)?|\.[0-9]+)"
    r"(?:[eE][+-]?[0-9]+)?"
    r"(?![\w]|[.,][0-9])"
)
# A run of non-word, non-space characters that does not swallow the start of a number.
_SYMBOLS = rf"(?:(?!{_NUM_START})[^\w\s])+"
_TOKENS = re.compile(rf"(?P<num>{_NUMBER})|(?P<sym>{_SYMBOLS})")
_NUMBERS_ONLY = re.compile(rf"(?P<num>{_NUMBER})")

_MAX_EXPONENT_DIGITS = 6
"""Longer exponents are left as written: their exact value could not be printed in
bounded space, and no real answer needs them."""
_PLAIN_ZEROS = 20
"""Numbers print in plain notation while that needs at most this many padding zeros,
else in scientific notation; the choice depends only on the value, so it is canonical."""


def _canonical_number(token: str) -> str:
    """The exact value of a number token as one canonical string (see the module doc)."""
    mantissa, _, exponent = token.lower().partition("e")
    if len(exponent.lstrip("+-")) > _MAX_EXPONENT_DIGITS:
        return token
    try:
        value = Decimal(token.replace(",", ""))
    except InvalidOperation:  # pragma: no cover - the pattern only admits valid numbers
        return token
    sign, digit_tuple, exp = value.as_tuple()
    assert isinstance(exp, int)
    digits = "".join(map(str, digit_tuple)).lstrip("0")
    if not digits:
        return "0"  # every zero, signed or not, is one value
    stripped = digits.rstrip("0")
    exp += len(digits) - len(stripped)
    digits = stripped
    point = len(digits) + exp  # where the decimal point falls, counted from the left
    if 0 <= exp <= _PLAIN_ZEROS:
        text = digits + "0" * exp
    elif exp < 0 and point > 0:
        text = f"{digits[:point]}.{digits[point:]}"
    elif exp < 0 and -point <= _PLAIN_ZEROS:
        text = "0." + "0" * -point + digits
    else:
        rest = f".{digits[1:]}" if len(digits) > 1 else ""
        text = f"{digits[0]}{rest}e{point - 1}"
    return "-" + text if sign else text


def _is_punctuation(char: str) -> bool:
    return unicodedata.category(char).startswith("P")


class TextNormaliser:
    """A text normaliser and the vote key built on it (see the module doc for the rules).

    Call `normalise(text)` for the folded text; call the object itself on a parsed
    answer to get its vote key. Build one with `normalised_text_key(...)`.
    """

    __slots__ = ("case", "numbers", "punctuation", "whitespace")

    def __init__(
        self,
        *,
        case: bool = True,
        whitespace: bool = True,
        punctuation: bool = True,
        numbers: bool = True,
    ) -> None:
        self.case = bool(case)
        self.whitespace = bool(whitespace)
        self.punctuation = bool(punctuation)
        self.numbers = bool(numbers)

    def normalise(self, text: str) -> str:
        """The folded text: one linear pass per enabled part."""
        if self.case:
            text = text.casefold()
        if self.punctuation:
            text = _TOKENS.sub(self._replace, text)
        elif self.numbers:
            text = _NUMBERS_ONLY.sub(self._replace, text)
        if self.whitespace:
            text = " ".join(text.split())
        return text

    def _replace(self, match: re.Match[str]) -> str:
        number = match.group("num")
        if number is not None:
            return _canonical_number(number) if self.numbers else number
        run = match.group(0)
        if not self.punctuation:  # pragma: no cover - the numbers-only pattern has no sym
            return run
        source, start, end = match.string, match.start(), match.end()
        out: list[str] = []
        i, n = 0, len(run)
        while i < n:
            if not _is_punctuation(run[i]):
                out.append(run[i])
                i += 1
                continue
            j = i
            while j < n and _is_punctuation(run[j]):
                j += 1
            # Neighbours of this stretch of punctuation, in the original text.
            before = run[i - 1] if i > 0 else (source[start - 1] if start > 0 else "")
            after = run[j] if j < n else (source[end] if end < len(source) else "")
            if before and after and not before.isspace() and not after.isspace():
                out.append(" ")
            i = j
        return "".join(out)

    def text_of(self, value: Any) -> str | None:
        """The text a value is keyed on: a string, a chat message's text, else None."""
        if isinstance(value, str):
            return value
        if is_chat_message(value):
            return message_text(value)
        return None

    def __call__(self, value: Any) -> Hashable:
        """The vote key of a parsed answer (tool calls and non-text as the default key)."""
        if is_chat_message(value) and getattr(value, "tool_calls", None):
            return tool_call_key(value)
        text = self.text_of(value)
        if text is None:
            return canonical_key(value)
        return self.normalise(text)

    def __repr__(self) -> str:
        return (
            f"normalised_text_key(case={self.case}, whitespace={self.whitespace}, "
            f"punctuation={self.punctuation}, numbers={self.numbers})"
        )


def normalised_text_key(
    *, case: bool = True, whitespace: bool = True, punctuation: bool = True, numbers: bool = True
) -> TextNormaliser:
    """A vote key that folds case, whitespace, punctuation and number spellings.

    Each argument switches one part of the folding (module doc: exactly what each
    folds). Tool-calling chat messages keep `tool_call_key`; non-text answers keep
    `canonical_key`.

    Example:
        >>> key = normalised_text_key()
        >>> key("  Paris! ") == key("paris")
        True
        >>> normalised_text_key(case=False)("Paris") == normalised_text_key(case=False)("paris")
        False
    """
    return TextNormaliser(
        case=case, whitespace=whitespace, punctuation=punctuation, numbers=numbers
    )


def normalise_text(text: str) -> str:
    """`text` with every folding of `normalised_text_key()` applied.

    Example:
        >>> normalise_text("  It costs $1,000.00!  ")
        'it costs $1000'
    """
    return _DEFAULT.normalise(text)


_DEFAULT = TextNormaliser()


def _unit(vector: Sequence[float]) -> tuple[float, ...] | None:
    """The vector scaled to length 1, or None when it has no direction (zero, NaN, inf)."""
    values = tuple(float(x) for x in vector)
    norm = math.sqrt(math.fsum(x * x for x in values))
    if not math.isfinite(norm) or norm == 0.0:
        return None
    return tuple(x / norm for x in values)


class EmbeddingClusterKey:
    """A vote key that clusters free-text answers by embedding similarity.

    Each answer's text is normalised (`normaliser`, default `normalised_text_key()`),
    then embedded once with `embeddings.embed_documents`. The first text of a cluster is
    its representative and its normalised text is the cluster's key; a later text joins
    the most similar representative whose cosine similarity is >= `threshold`, else it
    starts a cluster of its own. Clustering is greedy and order dependent (two answers
    may share a representative while being less similar to each other than the
    threshold), so pick the threshold on your model's real answers.

    Memory is bounded: at most `max_cache` normalised texts keep their key and at most
    `max_cache` representatives keep their vector, each least recently used first out.
    A text pushed out is embedded again if it comes back, and may then join a different
    cluster; keep `max_cache` above the distinct answers one step can produce (the
    default, 4096, is far above any vote's budget). One key object may serve many
    steps and threads at once: a lock guards the caches, and a text being embedded by
    one thread is waited for (up to `wait_seconds`) by the others, so each distinct
    normalised text costs one embedding call while it stays cached. Empty text keys as
    "" without an embedding call; a vector with no direction (all zeros) is a cluster
    of its own. The embedding call is synchronous: with a remote embedding model it
    blocks the event loop for that call, once per distinct text.

    Tool-calling chat messages keep `tool_call_key`; non-text answers keep
    `canonical_key`.

    Attributes:
        embedding_calls: how many texts have been embedded so far.

    Example:
        >>> class Letters:  # a toy embedding: counts of a and b
        ...     def embed_documents(self, texts):
        ...         return [[t.count("a"), t.count("b")] for t in texts]
        >>> key = EmbeddingClusterKey(Letters(), threshold=0.99)
        >>> key("aa") == key("AAA!") != key("b")
        True
    """

    def __init__(
        self,
        embeddings: Embeddings | Any,
        *,
        threshold: float = 0.9,
        normaliser: TextNormaliser | None = None,
        max_cache: int = 4096,
        wait_seconds: float = 120.0,
    ) -> None:
        if (
            isinstance(threshold, bool)
            or not isinstance(threshold, (int, float))
            or not math.isfinite(threshold)
            or not 0 < threshold <= 1
        ):
            raise ConfigurationError(
                f"threshold must be a cosine similarity in (0, 1] (1 merges only identical "
                f"directions), got {threshold!r}"
            )
        if not callable(getattr(embeddings, "embed_documents", None)):
            raise ConfigurationError(
                f"embeddings must be a LangChain Embeddings (with embed_documents), got "
                f"{type(embeddings).__name__}"
            )
        if isinstance(max_cache, bool) or not isinstance(max_cache, int) or max_cache < 1:
            raise ConfigurationError(f"max_cache must be an integer >= 1, got {max_cache!r}")
        if not isinstance(wait_seconds, (int, float)) or not wait_seconds > 0:
            raise ConfigurationError(f"wait_seconds must be > 0, got {wait_seconds!r}")
        self.embeddings = embeddings
        self.threshold = float(threshold)
        self.normaliser = normaliser if normaliser is not None else TextNormaliser()
        self.max_cache = max_cache
        self.wait_seconds = float(wait_seconds)
        self.embedding_calls = 0
        self._lock = threading.Lock()
        self._keys: OrderedDict[str, str] = OrderedDict()
        self._representatives: OrderedDict[str, tuple[float, ...]] = OrderedDict()
        self._pending: dict[str, threading.Event] = {}
        self._dimension: int | None = None

    def __call__(self, value: Any) -> Hashable:
        """The vote key of a parsed answer."""
        if is_chat_message(value) and getattr(value, "tool_calls", None):
            return tool_call_key(value)
        text = self.normaliser.text_of(value)
        if text is None:
            return canonical_key(value)
        return self.cluster(self.normaliser.normalise(text))

    @property
    def representatives(self) -> list[str]:
        """The clusters' keys currently remembered, least recently used first."""
        with self._lock:
            return list(self._representatives)

    def cluster(self, text: str) -> str:
        """The cluster key of an already normalised text (embedding it if it is new)."""
        if not text:
            return ""
        while True:
            with self._lock:
                key = self._keys.get(text)
                if key is not None:
                    self._keys.move_to_end(text)
                    return key
                event = self._pending.get(text)
                owner = event is None
                if event is None:
                    event = self._pending[text] = threading.Event()
            if owner:
                return self._embed_and_assign(text, event)
            if not event.wait(self.wait_seconds):
                # The owner's call is stuck; embedding ourselves costs one extra call at
                # worst, and never waits without bound.
                return self._embed_and_assign(text, None)
            # Either the key is cached now, or the owner failed and we take over.

    def _embed_and_assign(self, text: str, event: threading.Event | None) -> str:
        try:
            vectors = self.embeddings.embed_documents([text])
            if len(vectors) != 1:
                raise MakerRuntimeError(
                    f"embed_documents returned {len(vectors)} vectors for one text"
                )
            vector = list(vectors[0])
            with self._lock:
                self.embedding_calls += 1
                key = self._assign(text, vector)
                self._keys[text] = key
                self._keys.move_to_end(text)
                while len(self._keys) > self.max_cache:
                    self._keys.popitem(last=False)
            return key
        finally:
            if event is not None:
                with self._lock:
                    if self._pending.get(text) is event:
                        del self._pending[text]
                event.set()

    def _assign(self, text: str, vector: list[float]) -> str:
        """The key of a new text's vector; called under the lock."""
        if self._dimension is None:
            self._dimension = len(vector)
        elif len(vector) != self._dimension:
            raise MakerRuntimeError(
                f"the embeddings returned a vector of length {len(vector)} for {text[:40]!r}, "
                f"earlier ones had length {self._dimension}"
            )
        unit = _unit(vector)
        if unit is None:
            return text
        best, best_similarity = None, self.threshold
        for key, rep in self._representatives.items():
            similarity = math.fsum(a * b for a, b in zip(unit, rep, strict=True))
            if similarity >= best_similarity and (best is None or similarity > best_similarity):
                best, best_similarity = key, similarity
        if best is not None:
            self._representatives.move_to_end(best)
            return best
        self._representatives[text] = unit
        while len(self._representatives) > self.max_cache:
            self._representatives.popitem(last=False)
        return text

    def __repr__(self) -> str:
        return (
            f"EmbeddingClusterKey({type(self.embeddings).__name__}, "
            f"threshold={self.threshold}, max_cache={self.max_cache})"
        )
