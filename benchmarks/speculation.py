"""Speculative stepping and eager replacement: wall time per step, same committed log.

Towers of Hanoi through `run_task` on the simulated sampler with a lognormal
per-call latency (median 50 ms, sigma 0.5 by default) and 5 % errors, k = 3.
The same seeds in every arm, so each run commits the same log (checked here):
only the wall time and the thrown-away samples differ. The issue's baseline
was 86 ms a step, 1.73x one call's median, at depth 0.

Arms are speculation depths times eager replacement off/on (`--eager`); with
`--malformed-rate` some samples are red flags, which is where eager replacement
matters. `--repeat` runs the arms in turn that many times; medians are printed,
and ratios are against the first arm (the round-based loop at the first depth).
`vote ms` is the median step's vote (start to decision), `flagged ms` the median
over steps that drew a red flag.

Run: `python benchmarks/speculation.py [--disks 7] [--depths 0 1 2] [--eager off on]
[--malformed-rate 0.15] [--repeat 3]`
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
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


async def _one(disks: int, depth: int, eager: bool, errors: ErrorModel, k: int) -> dict[str, Any]:
    task = HanoiTask(disks)
    where = Path(tempfile.mkdtemp(prefix=f"spec{depth}-"))
    votes: list[float] = []
    flagged: list[float] = []  # steps with a red flag: where eager replacement can help

    def on_step(step: int, result: Any) -> None:
        votes.append(result.wall_seconds)
        if result.red_flags:
            flagged.append(result.wall_seconds)

    report = await run_task(
        task,
        simulated_sampler(task, errors),
        policy=VotePolicy(k=k, max_samples=60, eager_replacement=eager),
        run_log=where,
        speculate=depth,
        on_step=on_step,
    )
    # A wrong step that wins a vote is committed like any other; the run then ends
    # unsolved at the task's length. Latency is measured either way; "solved" says which.
    return {
        "depth": depth,
        "eager": eager,
        "steps": report.steps,
        "vote": statistics.median(votes),  # one step's vote, start to decision
        "flagged": statistics.median(flagged) if flagged else 0.0,
        "unused": report.spares_unused,
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
    parser.add_argument("--eager", choices=["off", "on"], nargs="+", default=["off"])
    parser.add_argument("--malformed-rate", type=float, default=0.0, help="Red-flag share.")
    parser.add_argument("--repeat", type=int, default=1, help="Runs per arm, interleaved.")
    args = parser.parse_args(argv)
    errors = ErrorModel(
        error_rate=args.error_rate,
        malformed_rate=args.malformed_rate,
        seed=args.seed,
        latency_median=args.median,
        latency_sigma=args.sigma,
    )
    arms = [(d, e == "on") for d in args.depths for e in args.eager]
    runs: dict[tuple[int, bool], list[dict[str, Any]]] = {arm: [] for arm in arms}
    for _ in range(args.repeat):  # interleaved, so a slow spell of the machine hits every arm
        for depth, eager in arms:
            runs[(depth, eager)].append(asyncio.run(_one(args.disks, depth, eager, errors, args.k)))
    first = runs[arms[0]][0]

    def per_step(arm: tuple[int, bool]) -> float:
        return statistics.median(run["wall"] / run["steps"] for run in runs[arm])

    print(
        f"Hanoi {args.disks} disks, k={args.k}, latency median {args.median * 1000:.0f} ms "
        f"sigma {args.sigma}, errors {args.error_rate:.0%}, malformed {args.malformed_rate:.0%}, "
        f"seed {args.seed}, medians of {args.repeat} run(s) per arm"
    )
    print(
        "depth  eager  ms/step  x call median  speedup  vote ms  flagged ms  samples  wasted"
        "  unused  same log  solved"
    )
    same = True
    for arm in arms:
        run = runs[arm][0]
        agree = all(r["log"] == first["log"] for r in runs[arm])
        same = same and agree
        vote = statistics.median(r["vote"] for r in runs[arm])
        flagged = statistics.median(r["flagged"] for r in runs[arm])
        print(
            f"{arm[0]:>5}  {'on' if arm[1] else 'off':>5}  {per_step(arm) * 1000:7.1f}  "
            f"{per_step(arm) / args.median:13.2f}  {per_step(arms[0]) / per_step(arm):7.2f}  "
            f"{vote * 1000:7.1f}  {flagged * 1000:10.1f}  {run['samples']:7d}  "
            f"{run['wasted']:6d}  {run['unused']:6d}  "
            f"{str(agree):>8}  {run['solved']}"
        )
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
