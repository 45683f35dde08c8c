"""Requests and billed prompts per step: one request per round (`n`), with and without spares.

Hanoi through the real `ChatOpenAI` client against the project's loopback
OpenAI-compatible server (`tests/openai_stub.py`: 6 % wrong answers, 4 %
malformed, 3 % HTTP 429 and 3 % HTTP 500 (retried), 20 ms a request), k = 3,
under the paper's temperature schedule (0 for a step's first sample, 0.1 after)
and under one temperature (0.1 for every sample). The server counts requests and
bills like OpenAI: an answered request bills its prompt once however many choices
it carries, a failed one bills nothing. "Spares" are `VotePolicy.spare_samples`:
extra choices asked for in a request, kept for the same step's next round.
The last column checks that the report's token totals equal what the server billed.
The issue's baseline: 3.38 requests and ~3.04 billed prompts a step at k = 3 with
one sample per request.

Run: `python benchmarks/requests_per_step.py [--disks 6] [--seed 7]`
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from openai_stub import OpenAIStub, StubBehaviour, hanoi_oracle  # noqa: E402

from maker_graph.providers import ProviderOptions, resolve_chat_model  # noqa: E402
from maker_graph.run import run_task_sync  # noqa: E402
from maker_graph.sampling import ChatModelSampler, TemperatureSchedule  # noqa: E402
from maker_graph.tasks.hanoi import HanoiTask  # noqa: E402
from maker_graph.vote import VotePolicy  # noqa: E402


def _one(
    disks: int, seed: int, per_request: int, spares: int, schedule: TemperatureSchedule
) -> dict[str, Any]:
    task = HanoiTask(disks)
    oracle, wrong = hanoi_oracle(task)
    stub = OpenAIStub(
        oracle, wrong, StubBehaviour(wrong_rate=0.06, malformed_rate=0.04, latency=0.02, seed=seed)
    )
    stub.start()
    try:
        model = resolve_chat_model(
            "openai:stub-hanoi", ProviderOptions(base_url=stub.base_url, timeout=10)
        )
        sampler = ChatModelSampler(
            model, prompt=task.prompt, temperature=schedule, samples_per_request=per_request
        )
        policy = VotePolicy(k=3, max_samples=60, spare_samples=spares)
        report = run_task_sync(
            task, sampler, policy, run_log=tempfile.mkdtemp(prefix="rps-"), speculate=0
        )
    finally:
        stub.stop()
    assert report.done, report
    return {
        "steps": report.steps,
        "samples": report.samples,
        "spares": report.spares_unused,
        "requests": stub.stats["requests"],
        # Failed requests (429, 500) bill nothing; an answered one bills its prompt once.
        "billed": stub.stats["requests"] - stub.stats["rate_limited"] - stub.stats["server_error"],
        "billed_in": stub.usage["prompt_tokens"],
        "billed_out": stub.usage["completion_tokens"],
        "report_in": report.input_tokens,
        "report_out": report.output_tokens,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=6)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)
    paper, one = TemperatureSchedule(), TemperatureSchedule(first=0.1, rest=0.1)
    print(f"Hanoi {args.disks} disks, k=3, ChatOpenAI against the loopback stub, seed {args.seed}")
    print(
        "schedule     samples/request  spares  samples/step  unused spares/step  "
        "requests/step  billed prompts/step  billed in/out tokens/step  report = billed"
    )
    for name, schedule, per_request, spares in (
        ("paper 0,0.1", paper, 1, 0),
        ("paper 0,0.1", paper, 8, 0),
        ("paper 0,0.1", paper, 8, 1),
        ("paper 0,0.1", paper, 8, 2),
        ("one 0.1", one, 1, 0),
        ("one 0.1", one, 8, 0),
        ("one 0.1", one, 8, 1),
        ("one 0.1", one, 8, 2),
    ):
        r = _one(args.disks, args.seed, per_request, spares, schedule)
        steps = r["steps"]
        same = r["report_in"] == r["billed_in"] and r["report_out"] == r["billed_out"]
        tokens = f"{r['billed_in'] / steps:.0f} / {r['billed_out'] / steps:.0f}"
        print(
            f"{name:11s}  {per_request:15d}  {spares:6d}  {r['samples'] / steps:12.2f}  "
            f"{r['spares'] / steps:18.2f}  {r['requests'] / steps:13.2f}  "
            f"{r['billed'] / steps:19.2f}  {tokens:>25s}  {'yes' if same else 'NO'}"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
