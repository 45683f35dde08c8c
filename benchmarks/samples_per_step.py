"""Mean samples per step against the closed form `expected_samples_per_step(p, k)`.

The engine's `Voter` decides `--steps` independent steps per configuration on a
`SimulatedSampler` whose wrong answers all agree (one rival: the worst case the
formula describes), with no red flags, so every sample is a valid vote. The
mean number drawn per step is compared with the gambler's-ruin expectation;
the standard error of the mean is printed next to it.

Target (issue 3): within 1 % of `expected_samples_per_step(p, k)`.

Run: `python benchmarks/samples_per_step.py [--steps 100000] [--json out.json]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import statistics
from pathlib import Path

from maker_graph.scaling import expected_samples_per_step
from maker_graph.testing import ErrorModel, SimulatedSampler
from maker_graph.vote import VotePolicy, Voter

TOLERANCE = 0.01
CONFIGS = [  # (per-sample error 1 - p, k)
    (0.002, 3),
    (0.05, 2),
    (0.1, 3),
    (0.2, 3),
    (0.3, 4),
]


async def measure(error: float, k: int, steps: int, seed: int) -> list[int]:
    sampler = SimulatedSampler(
        lambda step: "right",
        errors=ErrorModel(error_rate=error, rivals=1, seed=seed),
        tokens=len,
    )
    # A generous per-step budget: the tail of a close race must not be cut off.
    voter = Voter(sampler, policy=VotePolicy(k=k, max_samples=100 * k * k, keep_samples=False))
    drawn = []
    for step in range(steps):
        result = await voter.vote(step)
        drawn.append(result.samples_drawn)
    return drawn


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100_000, help="Steps per configuration.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    rows = []
    ok = True
    print(f"{args.steps:,} steps per row, one rival answer, seed {args.seed}")
    print(
        f"{'1-p':>6} {'k':>2} {'expected':>9} {'measured':>9} {'+-1 s.e.':>9} "
        f"{'deviation':>9}  within 1 %"
    )
    for error, k in CONFIGS:
        drawn = asyncio.run(measure(error, k, args.steps, args.seed))
        mean = statistics.fmean(drawn)
        se = statistics.stdev(drawn) / math.sqrt(len(drawn))
        expected = expected_samples_per_step(1.0 - error, k)
        deviation = mean / expected - 1.0
        good = abs(deviation) <= TOLERANCE
        ok &= good
        print(
            f"{error:6.3f} {k:2d} {expected:9.4f} {mean:9.4f} {se:9.4f} {deviation:+9.3%}  "
            f"{'ok' if good else 'MISSED'}"
        )
        rows.append(
            {
                "error": error,
                "k": k,
                "expected": expected,
                "measured": mean,
                "standard_error": se,
                "deviation": deviation,
            }
        )
    if args.json is not None:
        args.json.write_text(json.dumps({"steps": args.steps, "rows": rows}, indent=2) + "\n")
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
