"""Spec limits hold while a spec is parsed, not after: a spec of 400,000 values is
refused once it passes the value limit, without building the rest."""

from __future__ import annotations

import pytest

from maker_graph.config import Limits, load_spec
from maker_graph.errors import SpecError


def test_too_many_values_are_refused_at_the_first_value_past_the_limit() -> None:
    text = "name: x\nstate: {a: str}\nnodes: {}\nextra: [" + ",".join(["1"] * 400_000) + "]\n"
    with pytest.raises(SpecError, match="more than 50000 values") as info:
        load_spec(text)
    # Located where the limit was crossed: the 50,001st value, about 100,000 characters in.
    column = int(str(info.value).split("column ")[1].split(":")[0])
    assert 99_000 < column < 101_000


def test_the_limit_is_the_callers_own() -> None:
    text = "name: x\nstate: {a: str}\nnodes: {}\nextra: [" + ",".join(["1"] * 50) + "]\n"
    with pytest.raises(SpecError, match="more than 20 values"):
        load_spec(text, limits=Limits(max_items=20))
