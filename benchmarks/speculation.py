"""Speculative stepping: wall time per step with and without running ahead.

Towers of Hanoi through `run_task` on the simulated sampler with a lognormal
per-call latency (median 50 ms, sigma 0.5 by default) and 5 % errors, k = 3.
The same seeds at every depth, so each run commits the same log (checked here):
only the wall time and the thrown-away samples differ. The issue's baseline
was 86 ms a step, 1.73x one call's median, at depth 0.

Run: `python benchmarks/speculation.py [--disks 7] [--median 0.05] [--depths 0 1 2]`
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path
from typing import Any

from maker_graph.run import run_task
from maker_graph.runlog import open_run_log
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy


def _committed(where: Path) -> list[Any]:
    with open_run_log(where, readonly=True) as log:
        return [(r.step, r.action, r.tally, r.samples) for r in log.steps()]


async def _one(disks: int, depth: int, errors: ErrorModel, k: int) -> dict[str, Any]:
    task = HanoiTask(disks)
    where = Path(tempfile.mkdtemp(prefix=f"spec{depth}-"))
    report = await run_task(
        task,
        simulated_sampler(task, errors),
        policy=VotePolicy(k=k, max_samples=60),
        run_log=where,
        speculate=depth,
    )
    # A wrong step that wins a vote is committed like any other; the run then ends
    # unsolved at the task's length. Latency is measured either way; "solved" says which.
    return {
        "depth": depth,
        "steps": report.steps,
        "solved": report.done,
        "wall": report.wall_seconds,
        "samples": report.samples,
        "wasted": report.speculative_wasted,
        "log": _committed(where),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=7)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--median", type=float, default=0.05, help="Median latency, seconds.")
    parser.add_argument("--sigma", type=float, default=0.5)
    parser.add_argument("--error-rate", type=float, default=0.05)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--depths", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args(argv)
    errors = ErrorModel(
        error_rate=args.error_rate,
        seed=args.seed,
        latency_median=args.median,
        latency_sigma=args.sigma,
    )
    runs = [asyncio.run(_one(args.disks, d, errors, args.k)) for d in args.depths]
    base = runs[0]
    print(
        f"Hanoi {args.disks} disks, k={args.k}, latency median {args.median * 1000:.0f} ms "
        f"sigma {args.sigma}, errors {args.error_rate:.0%}, seed {args.seed}"
    )
    print("depth  ms/step  x call median  speedup  samples  wasted  same log  solved")
    for run in runs:
        per_step = run["wall"] / run["steps"]
        print(
            f"{run['depth']:>5}  {per_step * 1000:7.1f}  {per_step / args.median:13.2f}  "
            f"{base['wall'] / run['wall']:7.2f}  {run['samples']:7d}  {run['wasted']:6d}  "
            f"{str(run['log'] == base['log']):>8}  {run['solved']}"
        )
    return 0 if all(run["log"] == base["log"] for run in runs) else 1


if __name__ == "__main__":
    raise SystemExit(main())
