"""Cost accounting: prices, token fallback, per-sample/step/run cost and the projection."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from maker_graph.costs import (
    DEFAULT_PRICES,
    CostMeter,
    Price,
    PriceTable,
    Spend,
    TokenCountingSampler,
    count_prompt_tokens,
    sample_cost,
    step_cost,
)
from maker_graph.errors import ConfigurationError
from maker_graph.records import RawSample, Sample, StepResult
from maker_graph.sampling import as_sampler
from maker_graph.tokens import count_tokens
from maker_graph.vote import Voter


def _step(samples: list[tuple[str | None, int, int]] = (), **kw: int) -> StepResult:  # type: ignore[assignment]
    kept = [
        Sample(i, RawSample("a", "a", input_tokens=tin, output_tokens=tout, model=model))
        for i, (model, tin, tout) in enumerate(samples)
    ]
    return StepResult(
        winner="a",
        winner_key="a",
        tally={"a": len(kept) or 3},
        decided_by="vote",
        k=3,
        samples_drawn=len(kept) or 3,
        valid_votes=len(kept) or 3,
        input_tokens=kw.get("input_tokens", sum(s[1] for s in samples)),
        output_tokens=kw.get("output_tokens", sum(s[2] for s in samples)),
        samples=kept,
    )


# --------------------------------------------------------------------------- prices


def test_price_arithmetic_is_per_million_tokens() -> None:
    price = Price(input=0.4, output=1.6)
    assert price.cost(1_000_000, 0) == pytest.approx(0.4)
    assert price.cost(300, 200) == pytest.approx(300 * 0.4e-6 + 200 * 1.6e-6)


@pytest.mark.parametrize("bad", [-1.0, float("inf"), float("nan")])
def test_bad_prices_are_rejected(bad: float) -> None:
    with pytest.raises(ConfigurationError, match="per million"):
        Price(input=bad, output=1.0)


def test_lookup_is_lenient_about_prefixes_and_snapshots() -> None:
    table = PriceTable()
    mini = DEFAULT_PRICES["gpt-4.1-mini"]
    for name in (
        "gpt-4.1-mini",
        "openai:gpt-4.1-mini",
        "GPT-4.1-mini",
        "gpt-4.1-mini-2025-04-14",
        "openai/gpt-4.1-mini",
    ):
        assert table.lookup(name) == mini, name
    # The longest family wins: a nano snapshot is not priced as gpt-4.1.
    assert table.lookup("gpt-4.1-nano-2025-04-14") == DEFAULT_PRICES["gpt-4.1-nano"]
    assert table.lookup("simulated:0.01") == Price(input=0, output=0)
    assert table.lookup("totally-unknown") is None
    assert table.lookup(None) is None
    assert "gpt-4.1" in table and "nope" not in table


def test_users_extend_and_override_the_table(tmp_path: Path) -> None:
    table = PriceTable({"gpt-4.1-mini": (1, 2), "local": {"input": 0, "output": 0}})
    assert table.lookup("gpt-4.1-mini") == Price(input=1, output=2)
    assert table.lookup("openai:local") == Price(input=0, output=0)
    more = table.with_prices({"mine": Price(input=3, output=4)})
    assert more.lookup("mine") == Price(input=3, output=4)
    assert table.lookup("mine") is None  # the original is unchanged

    json_file = tmp_path / "prices.json"
    json_file.write_text(json.dumps({"acme-1": {"input": 0.5, "output": 2.5}}))
    assert PriceTable.from_file(json_file).lookup("acme-1") == Price(input=0.5, output=2.5)
    yaml_file = tmp_path / "prices.yaml"
    yaml_file.write_text("acme-2: [0.25, 1.25]\n")
    only = PriceTable.from_file(yaml_file, defaults=False)
    assert only.lookup("acme-2") == Price(input=0.25, output=1.25)
    assert only.lookup("gpt-4.1-mini") is None


def test_bad_price_files_say_why(tmp_path: Path) -> None:
    with pytest.raises(ConfigurationError, match="cannot read"):
        PriceTable.from_file(tmp_path / "missing.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigurationError, match="not valid"):
        PriceTable.from_file(bad)
    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({"m": {"in": 1}}))
    with pytest.raises(ConfigurationError, match="must be"):
        PriceTable.from_file(wrong)
    with pytest.raises(ConfigurationError, match="--price-in"):
        PriceTable().require("who-knows")


# --------------------------------------------------------------------------- tokens


def test_prompt_token_count_adds_chat_overhead() -> None:
    text = "Move disk 1 clockwise."
    assert count_prompt_tokens(text) == count_tokens(text)
    messages = [SystemMessage("You solve Hanoi."), HumanMessage(text)]
    expected = 3 + sum(3 + count_tokens(m.content) for m in messages)  # type: ignore[arg-type]
    assert count_prompt_tokens(messages) == expected
    assert count_prompt_tokens([("user", text)]) == 6 + count_tokens(text)


def test_token_counting_sampler_fills_only_missing_counts() -> None:
    counted = TokenCountingSampler(as_sampler(lambda q: "move = [1, 0, 2]"), prompt=str.upper)
    raw = asyncio.run(counted.sample("what next?", 0))
    assert raw.output_tokens == count_tokens("move = [1, 0, 2]")
    assert raw.input_tokens == count_tokens("WHAT NEXT?")

    reported = RawSample("x", "x", input_tokens=111, output_tokens=7)
    kept = TokenCountingSampler(as_sampler(lambda q: reported), prompt=str.upper)
    raw = asyncio.run(kept.sample("q", 0))
    assert (raw.input_tokens, raw.output_tokens) == (111, 7)


def test_fallback_counts_reach_the_step_totals() -> None:
    sampler = TokenCountingSampler(as_sampler(lambda q: "four"), prompt=lambda q: q)
    result = asyncio.run(Voter(sampler).vote("What is 2 + 2?"))
    assert result.samples_drawn == 3
    assert result.output_tokens == 3 * count_tokens("four")
    assert result.input_tokens == 3 * count_tokens("What is 2 + 2?")


# --------------------------------------------------------------------------- cost


def test_sample_and_step_cost() -> None:
    price = Price(input=0.4, output=1.6)
    assert sample_cost(RawSample("x", input_tokens=1000, output_tokens=10), price) == pytest.approx(
        (1000 * 0.4 + 10 * 1.6) / 1e6
    )
    assert sample_cost(RawSample("x"), price) == 0.0
    assert sample_cost(RawSample("x", input_tokens=5), None) is None

    step = _step(input_tokens=900, output_tokens=60)
    assert step_cost(step, price) == pytest.approx((900 * 0.4 + 60 * 1.6) / 1e6)
    assert step_cost(step, None) is None


def test_step_cost_prices_each_sample_by_its_model() -> None:
    table = PriceTable({"cheap": (1, 1), "dear": (10, 10)}, defaults=False)
    step = _step([("cheap", 100, 10), ("dear", 100, 10), ("cheap", 100, 10)])
    assert step_cost(step, table) == pytest.approx((2 * 110 * 1 + 110 * 10) / 1e6)
    # One unknown model makes the step's cost unknown rather than wrong.
    assert step_cost(_step([("cheap", 1, 1), ("mystery", 1, 1)]), table) is None
    # Without per-sample models the totals are priced as the given model.
    totals_only = _step(input_tokens=1000, output_tokens=0)
    assert step_cost(totals_only, table, "dear") == pytest.approx(0.01)


def test_meter_adds_up_and_projects() -> None:
    price = Price(input=0.4, output=1.6)
    meter = CostMeter(price, total_steps=100)
    for _ in range(10):
        meter.add(_step(input_tokens=900, output_tokens=60))
    spend = meter.spend()
    per_step = (900 * 0.4 + 60 * 1.6) / 1e6
    assert spend.steps_done == 10 and spend.samples == 30
    assert (spend.input_tokens, spend.output_tokens) == (9000, 600)
    assert spend.cost == pytest.approx(10 * per_step)
    assert spend.cost_per_step == pytest.approx(per_step)
    assert spend.projected_cost == pytest.approx(100 * per_step)
    assert spend.to_dict()["projected_cost"] == pytest.approx(100 * per_step)

    resumed = CostMeter(price, total_steps=100, start=spend)
    resumed.add_tokens(steps=90, samples=270, input_tokens=81_000, output_tokens=5400)
    assert resumed.spend().cost == pytest.approx(100 * per_step)
    assert resumed.spend().projected_cost == pytest.approx(100 * per_step)


def test_meter_without_prices_counts_tokens_only() -> None:
    meter = CostMeter(None, total_steps=10)
    meter.add(_step(input_tokens=5, output_tokens=2))
    spend = meter.spend()
    assert spend.cost is None and spend.projected_cost is None
    assert (spend.input_tokens, spend.output_tokens) == (5, 2)
    assert (
        Spend(
            steps_done=0, total_steps=5, samples=0, input_tokens=0, output_tokens=0, cost=0.0
        ).projected_cost
        is None
    )


def test_simulated_specs_can_have_their_own_price() -> None:
    table = PriceTable({"simulated:0.0022": (0.4, 1.6), "openai:my-model": (1, 2)})
    assert table.lookup("simulated:0.0022") == Price(input=0.4, output=1.6)
    assert table.lookup("simulated:0.05") == Price(input=0, output=0)  # the free default
    assert table.lookup("simulated") == Price(input=0, output=0)
    assert table.lookup("my-model") == Price(input=1, output=2)
    assert table.lookup("openai:my-model") == Price(input=1, output=2)


def test_catalogue_prices_models_the_table_does_not_know() -> None:
    # genai-prices ships in the `prices` extra that `make test` installs; its
    # bundled snapshot is read offline. o1 is in its catalogue, not our table.
    pytest.importorskip("genai_prices")
    from maker_graph.costs import catalogue_price

    assert PriceTable(defaults=False).lookup("o1") is None  # no defaults, no catalogue
    assert "o1" not in DEFAULT_PRICES
    price = PriceTable().lookup("o1")
    assert price is not None and price == catalogue_price("o1")
    assert price.input > 0 and price.output > price.input
    # The provider prefix is a hint, not part of the name.
    assert PriceTable().lookup("openai:o1") == price
    # The table always wins over the catalogue: yours, then the built-in list.
    assert PriceTable({"o1": (9.0, 9.0)}).lookup("o1") == Price(input=9.0, output=9.0)
    assert PriceTable().lookup("gpt-4.1-mini") == DEFAULT_PRICES["gpt-4.1-mini"]
    assert PriceTable(catalogue=False).lookup("o1") is None
    assert PriceTable().lookup("no-such-model-anywhere") is None
