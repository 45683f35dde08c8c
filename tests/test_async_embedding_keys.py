"""The async vote path awaits `EmbeddingClusterKey.akey`: an embedding never blocks the loop."""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import pytest
from langchain_core.embeddings import Embeddings

from maker_graph import VotePolicy, Voter
from maker_graph.semantic_keys import EmbeddingClusterKey

AXES = {"paris": 0, "lutetia": 0, "lyon": 1, "city": 2}


def vector(text: str) -> list[float]:
    out = [0.0] * 3
    for word in text.split():
        if word in AXES:
            out[AXES[word]] += 1.0
    return out


class Gated(Embeddings):
    """Embeddings whose calls (sync or async) wait for the test to open a gate.

    The sync form waits at most `sync_wait` seconds, so code that (wrongly) embeds
    synchronously on the loop makes a test fail rather than hang.
    """

    def __init__(self, *, gated_calls: int = 1, sync_wait: float = 2.0) -> None:
        self.entered = threading.Event()
        self.in_flight = 0  # calls started and not yet returned (samples embed concurrently)
        self.calls: list[str] = []
        self.gated_calls = gated_calls  # only the first calls wait for the gate
        self.sync_wait = sync_wait
        self.sync_gate = threading.Event()
        self.async_gate: asyncio.Event | None = None

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.extend(texts)
        self.in_flight += 1
        self.entered.set()
        if len(self.calls) <= self.gated_calls:
            self.sync_gate.wait(self.sync_wait)
        self.in_flight -= 1
        return [vector(t) for t in texts]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.extend(texts)
        self.in_flight += 1
        self.entered.set()
        try:
            if len(self.calls) <= self.gated_calls:
                assert self.async_gate is not None
                await self.async_gate.wait()
        finally:
            self.in_flight -= 1
        return [vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return vector(text)

    def open(self) -> None:
        self.sync_gate.set()
        if self.async_gate is not None:
            self.async_gate.set()


async def answer(question: str, index: int) -> str:
    return ["Paris", "It is Paris", "paris.", "Lyon"][index % 4]


async def test_the_loop_keeps_running_while_the_vote_embeds() -> None:
    emb = Gated()
    emb.async_gate = asyncio.Event()
    voter = Voter(answer, key=EmbeddingClusterKey(emb), policy=VotePolicy(k=2, max_samples=8))
    vote = asyncio.create_task(voter.vote("capital?"))
    loop = asyncio.get_running_loop()
    # Another coroutine on this loop: it resumes only if the loop is free while the
    # embedding is in flight (a sync embedding holds the loop until its gate times out).
    assert await asyncio.wait_for(loop.run_in_executor(None, emb.entered.wait, 5), 6)
    saw_in_flight = emb.in_flight
    emb.open()
    result = await asyncio.wait_for(vote, 10)
    assert saw_in_flight, "the vote blocked the event loop during the embedding"
    # "Paris" was embedded behind the gate, so a text of its cluster that returned first
    # ("It is Paris") is the representative: clusters form in the order embeddings return.
    assert result.winner in {"Paris", "It is Paris", "paris."}
    assert result.winner_key == voter.key("Paris") == voter.key("paris.")
    assert result.winner_key != voter.key("Lyon")


class Plain(Embeddings):
    """Deterministic embeddings; `aembed_documents` is LangChain's default (an executor)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        return [vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return vector(text)


@pytest.mark.parametrize("eager", [True, False])
@pytest.mark.parametrize("offset", [0, 1, 2, 3])
async def test_async_and_sync_keys_give_the_same_votes(eager: bool, offset: int) -> None:
    async def sampler(question: str, index: int) -> str:
        # One sample per round: the order samples are keyed in is the index order on
        # both paths, so greedy clustering sees the same sequence.
        return ["Lutetia", "Paris", "Lyon city", "lyon", "It is Paris"][(index + offset) % 5]

    policy = VotePolicy(k=2, max_samples=12, on_no_consensus="plurality", eager_replacement=eager)
    async_key = EmbeddingClusterKey(Plain())
    sync_only = EmbeddingClusterKey(Plain())

    def sync_key(value: Any) -> Any:  # no `akey`: the vote calls it synchronously
        return sync_only(value)

    a = await Voter(sampler, key=async_key, policy=policy).vote("q")
    s = await Voter(sampler, key=sync_key, policy=policy).vote("q")
    assert (a.winner, a.winner_key, a.tally, a.samples_drawn) == (
        s.winner,
        s.winner_key,
        s.tally,
        s.samples_drawn,
    )
    assert a.tally  # something was voted on


async def test_a_cancelled_embedding_hands_over_to_its_waiter_and_later_votes() -> None:
    emb = Gated(gated_calls=1)
    emb.async_gate = asyncio.Event()  # never opened: the first call hangs until cancelled
    key = EmbeddingClusterKey(emb, wait_seconds=60)  # a timeout is not what rescues anyone
    first = asyncio.create_task(key.akey("Paris"))
    loop = asyncio.get_running_loop()
    assert await asyncio.wait_for(loop.run_in_executor(None, emb.entered.wait, 5), 6)
    waiter = asyncio.create_task(key.akey("paris!"))
    for _ in range(100):  # bounded: until the second caller waits on the first's embedding
        if key._pending["paris"].waiters:
            break
        await asyncio.sleep(0)
    assert key._pending["paris"].waiters
    first.cancel()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await asyncio.wait_for(waiter, 5) == "paris"
    assert emb.calls == ["paris", "paris"]  # the waiter embedded once, itself
    assert not key._pending
    voter = Voter(answer, key=key, policy=VotePolicy(k=2, max_samples=8))
    result = await asyncio.wait_for(voter.vote("q"), 10)
    assert result.winner_key == "paris"


async def test_a_thread_owner_wakes_a_coroutine_waiter() -> None:
    emb = Gated(gated_calls=1, sync_wait=5.0)
    key = EmbeddingClusterKey(emb, wait_seconds=60)
    results: list[Any] = []
    thread = threading.Thread(target=lambda: results.append(key("Paris")))
    thread.start()
    loop = asyncio.get_running_loop()
    assert await asyncio.wait_for(loop.run_in_executor(None, emb.entered.wait, 5), 6)
    waiting = asyncio.create_task(key.akey("PARIS"))
    for _ in range(100):
        if key._pending["paris"].waiters:
            break
        await asyncio.sleep(0)
    emb.sync_gate.set()
    assert await asyncio.wait_for(waiting, 5) == "paris"
    await loop.run_in_executor(None, thread.join, 5)
    assert results == ["paris"] and emb.calls == ["paris"]
