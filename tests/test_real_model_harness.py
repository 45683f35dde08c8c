"""The opt-in real-model benchmark's harness, run against a stand-in OpenAI server.

`benchmarks/real_model.py` measures a real model only when asked (it needs a
llama-cpp-python build). Here the same code talks to `tests/openai_stub.py`
answering column sums: right or, for a share of samples, a fixed wrong sum
(the stub's errors are independent per sample). It checks the harness
plumbing, not a model: every arm answers every input, the pilot's records are
scored and forecast, and the report prints every arm.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

from openai_stub import OpenAIStub, StubBehaviour

_PATH = Path(__file__).resolve().parent.parent / "benchmarks" / "real_model.py"


def _module():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("real_model_benchmark", _PATH)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


SEEN: set[str] = set()


def _sum(messages: list[dict[str, object]]) -> str:
    text = str(messages[-1]["content"])
    SEEN.add(re.sub(r"\d", "#", text))  # the phrasing, digits masked
    return str(sum(int(d) for d in re.findall(r"\d+", text)))


def test_harness_against_a_stand_in_server() -> None:
    bench = _module()
    assert bench.parse("12") == 12 and bench.truth((7, 5, 1)) == 13
    for bad in ("1 2", "", "25"):
        try:
            bench.parse(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} should be a red flag")
    behaviour = StubBehaviour(
        wrong_rate=0.2,
        ramble_rate=0.0,
        malformed_rate=0.05,
        rate_limit_rate=0.0,
        server_error_rate=0.0,
        seed=3,
    )
    with OpenAIStub(_sum, wrong=lambda m, r: "99" if r % 2 else "0", behaviour=behaviour) as stub:
        result = bench.run_benchmark(stub.base_url, model_name="stub", inputs=8, log=lambda _: None)
    arms = {a["arm"]: a for a in result["arms"]}
    assert len(arms) == 6 and all(a["inputs"] == 8 for a in arms.values())
    assert all(0.0 <= a["accuracy"] <= 1.0 and a["low"] <= a["high"] for a in arms.values())
    # "99" is no column sum: a parse red flag, counted by reason.
    assert sum(sum(a["red_flags"].values()) for a in arms.values()) > 0
    for a in arms.values():
        if "forecast_accuracy" in a:
            assert a["forecast_low"] <= a["forecast_accuracy"] <= a["forecast_high"]
    assert {p["lever"] for p in result["pilots"]} == {
        "same prompt",
        "prompt rotation",
        "operand reordering",
        "temperature escalation",
    }
    table = bench.report(result)
    assert all(name in table for name in arms) and "stuck share" in table
    # The plan's pick among the levers (or that none reaches the target) is printed.
    assert "reach" in result["choice"] and result["choice"] in table
    # Prompt rotation reaches the server: all three phrasings were asked.
    assert len(SEEN) == len(bench.PHRASINGS)
