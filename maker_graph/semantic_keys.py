"""Vote keys for free-text answers: equivalent phrasings of one answer count as one vote.

Two keys, both usable as `key=` wherever a `KeyFunction` goes (`Voter`, `vote_step`,
`maker_node`):

- `normalised_text_key(...)` folds surface differences that never change a text's
  meaning: letter case, whitespace, punctuation and the spelling of numbers.
- `EmbeddingClusterKey(embeddings, threshold=...)` goes further: any LangChain
  `Embeddings` maps each normalised text to a vector, and a text whose cosine
  similarity to an earlier representative reaches the threshold takes that
  representative's key. It also offers `await key.akey(value)`, which embeds with
  `aembed_documents`; the vote awaits that form, so an embedding never blocks the
  event loop on the async path.

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

import asyncio
import contextlib
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


class _Pending:
    """One text being embedded: threads wait on `event`, coroutines on their futures.

    `loop` is the owner's event loop when a coroutine embeds (None for a thread), so a
    synchronous caller on that same loop knows waiting would only hold the owner up.
    """

    __slots__ = ("event", "loop", "waiters")

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.event = threading.Event()
        self.loop = loop
        self.waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []


def _wake(woken: asyncio.Future[None]) -> None:
    if not woken.done():  # a waiter that timed out or was cancelled has moved on
        woken.set_result(None)


def _running_loop() -> asyncio.AbstractEventLoop | None:
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class EmbeddingClusterKey:
    """A vote key that clusters free-text answers by embedding similarity.

    Each answer's text is normalised (`normaliser`, default `normalised_text_key()`),
    then embedded once. The first text of a cluster is its representative and its
    normalised text is the cluster's key; a later text joins the most similar
    representative whose cosine similarity is >= `threshold`, else it starts a cluster
    of its own. Clustering is greedy and order dependent (two answers may share a
    representative while being less similar to each other than the threshold), so pick
    the threshold on your model's real answers. New texts embedded at the same time
    (threads, or coroutines of one vote) are assigned in the order their embeddings
    return.

    Two forms: calling the key embeds with `embeddings.embed_documents` and blocks
    until it returns; `await key.akey(value)` embeds with `embeddings.aembed_documents`
    and leaves the event loop free meanwhile (LangChain's default `aembed_documents`
    runs `embed_documents` in an executor, so any `Embeddings` works; an object with
    only `embed_documents` is run in a worker thread). The vote (`Voter.vote`,
    `Voter.check`, hence `vote_step`, `maker_node` and the voting sub-graph) awaits
    `akey`, so on the async path a remote embedding never stalls the other samples and
    graphs on the loop. Both forms give the same key for the same text and share the
    caches.

    Memory is bounded: at most `max_cache` normalised texts keep their key and at most
    `max_cache` representatives keep their vector, each least recently used first out.
    A text pushed out is embedded again if it comes back, and may then join a different
    cluster; keep `max_cache` above the distinct answers one step can produce (the
    default, 4096, is far above any vote's budget). One key object may serve many
    steps, threads, coroutines and event loops at once: a lock guards the caches (never
    held during an embedding), and a text being embedded by one caller is waited for
    (up to `wait_seconds`; a coroutine waits without blocking its loop) by the others,
    so each distinct normalised text costs one embedding call while it stays cached. A
    caller that stops waiting embeds the text itself (one extra call at worst), as does
    a synchronous call made on the loop whose coroutine is embedding that text (waiting
    there would only hold that coroutine up). An embedding that fails, or whose
    coroutine is cancelled, caches nothing and wakes its waiters at once; the next of
    them embeds the text. Empty text keys as "" without an embedding call; a vector with
    no direction (all zeros) is a cluster of its own.

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
        >>> import asyncio
        >>> asyncio.run(key.akey("A a")) == key("aa")
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
        self._pending: dict[str, _Pending] = {}
        self._dimension: int | None = None

    def _text(self, value: Any) -> tuple[Hashable, str | None]:
        """(the default key, None) for tool calls and non-text, else (None, normalised text)."""
        if is_chat_message(value) and getattr(value, "tool_calls", None):
            return tool_call_key(value), None
        text = self.normaliser.text_of(value)
        if text is None:
            return canonical_key(value), None
        return None, self.normaliser.normalise(text)

    def __call__(self, value: Any) -> Hashable:
        """The vote key of a parsed answer (a new text is embedded synchronously)."""
        default, text = self._text(value)
        return default if text is None else self.cluster(text)

    async def akey(self, value: Any) -> Hashable:
        """The vote key of a parsed answer, a new text embedded without blocking the loop.

        Args:
            value: the parsed answer.

        Returns:
            The same key calling the key object gives.
        """
        default, text = self._text(value)
        return default if text is None else await self.acluster(text)

    @property
    def representatives(self) -> list[str]:
        """The clusters' keys currently remembered, least recently used first."""
        with self._lock:
            return list(self._representatives)

    def _cached(self, text: str) -> str | None:
        """The cached key of `text` (marked recently used), else None; under the lock."""
        key = self._keys.get(text)
        if key is not None:
            self._keys.move_to_end(text)
        return key

    def cluster(self, text: str) -> str:
        """The cluster key of an already normalised text (embedding it if it is new)."""
        if not text:
            return ""
        here = _running_loop()
        while True:
            with self._lock:
                key = self._cached(text)
                if key is not None:
                    return key
                pending = self._pending.get(text)
                owner = pending is None
                if pending is None:
                    pending = self._pending[text] = _Pending(None)
            if owner:
                try:
                    return self._store(text, self._checked(self.embeddings.embed_documents([text])))
                finally:
                    self._release(text, pending)
            # The owner's call is stuck, or is a coroutine of the loop this call blocks:
            # embedding ourselves costs one extra call at worst, and never waits without
            # bound.
            if (here is not None and pending.loop is here) or not pending.event.wait(
                self.wait_seconds
            ):
                return self._store(text, self._checked(self.embeddings.embed_documents([text])))
            # Either the key is cached now, or the owner failed and we take over.

    async def acluster(self, text: str) -> str:
        """`cluster`, the embedding awaited (`aembed_documents`) instead of blocking.

        Args:
            text: an already normalised text.

        Returns:
            Its cluster key, the same `cluster` gives.
        """
        if not text:
            return ""
        loop = asyncio.get_running_loop()
        while True:
            with self._lock:
                key = self._cached(text)
                if key is not None:
                    return key
                pending = self._pending.get(text)
                owner = pending is None
                if pending is None:
                    pending = self._pending[text] = _Pending(loop)
                else:
                    woken: asyncio.Future[None] = loop.create_future()
                    pending.waiters.append((loop, woken))
            if owner:
                # On cancellation too, `_release` drops the pending entry and wakes the
                # waiters, so none of them waits on an embedding nobody is making.
                try:
                    return self._store(text, await self._aembed(text))
                finally:
                    self._release(text, pending)
            try:
                await asyncio.wait_for(woken, self.wait_seconds)
            except TimeoutError:
                # The owner's call is stuck: embed ourselves (one extra call at worst).
                return self._store(text, await self._aembed(text))
            finally:
                with self._lock:  # a waiter cancelled or timed out leaves no future behind
                    if (loop, woken) in pending.waiters:
                        pending.waiters.remove((loop, woken))
            # Either the key is cached now, or the owner failed and we take over.

    async def _aembed(self, text: str) -> list[float]:
        """The vector of one text from `aembed_documents` (a worker thread without it)."""
        aembed = getattr(self.embeddings, "aembed_documents", None)
        if callable(aembed):
            vectors = await aembed([text])
        else:
            vectors = await asyncio.to_thread(self.embeddings.embed_documents, [text])
        return self._checked(vectors)

    @staticmethod
    def _checked(vectors: Sequence[Sequence[float]]) -> list[float]:
        if len(vectors) != 1:
            raise MakerRuntimeError(f"embed_documents returned {len(vectors)} vectors for one text")
        return list(vectors[0])

    def _store(self, text: str, vector: list[float]) -> str:
        """Assign a new text's vector to a cluster and cache its key."""
        with self._lock:
            self.embedding_calls += 1
            key = self._assign(text, vector)
            self._keys[text] = key
            self._keys.move_to_end(text)
            while len(self._keys) > self.max_cache:
                self._keys.popitem(last=False)
        return key

    def _release(self, text: str, pending: _Pending) -> None:
        """The owner is done (cached, failed or cancelled): wake every waiter."""
        with self._lock:
            if self._pending.get(text) is pending:
                del self._pending[text]
            waiters, pending.waiters = pending.waiters, []
        pending.event.set()
        for loop, woken in waiters:
            # A waiter on a loop that has closed since is gone with its loop.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(_wake, woken)

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
