"""The 20-disk Hanoi run under provider faults: solved, zero errors, failures never voted.

On top of the demo's error model (`maker-graph hanoi`'s: 0.2 % wrong answers, a few
hard steps whose errors agree, 0.2 % over-long rambles, 0.1 % malformed answers),
every provider call fails with 5 % transient exceptions, 1 % timeouts and 1 %
rate-limit errors (with a retry-after hint), and with `--answer-faults` 1 % of the
answers come back empty, 1 % as JSON of the wrong shape and 1 % truncated at the
token cap. The run goes through `run_task` with a run log, like the CLI, and is then
checked move by move against the closed-form optimal solution.

Retry delays are set to zero (a real provider's backoff would turn this into a run
of days): the benchmark measures what is retried, counted and voted, and the
engine's overhead, not the provider's waiting time.

Targets: solved, 0 errors, every failure kind counted, none of them a vote.

Run: `python benchmarks/faults.py [--disks 20] [--answer-faults] [--store URL] [--json out.json]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from maker_graph.cli.hanoi import DEMO_ERRORS, verify_hanoi_log
from maker_graph.red_flags import max_output_tokens, truncated
from maker_graph.run import run_task
from maker_graph.runlog import open_run_log
from maker_graph.sampling import ProviderRetry
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing.faults import Faults, FaultySampler
from maker_graph.vote import VotePolicy

EXCEPTION_RATE, TIMEOUT_RATE, RATE_LIMIT_RATE = 0.05, 0.01, 0.01


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--k", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--answer-faults",
        action="store_true",
        help="Also 1 %% empty, 1 %% wrong-shape JSON, 1 %% truncated answers.",
    )
    parser.add_argument(
        "--store", default=None, help="Run log location (default: a temporary directory)."
    )
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    task = HanoiTask(args.disks)
    errors = replace(
        DEMO_ERRORS,
        exception_rate=EXCEPTION_RATE,
        timeout_rate=TIMEOUT_RATE,
        rate_limit_rate=RATE_LIMIT_RATE,
        retry_after=0.0,
        seed=args.seed,
    )
    sampler: Any = simulated_sampler(task, errors)
    if args.answer_faults:
        sampler = FaultySampler(
            sampler,
            Faults(empty_rate=0.01, wrong_shape_rate=0.01, truncated_rate=0.01, seed=args.seed),
            step_key=lambda s: s.step,
        )
    retry = ProviderRetry(initial_delay=0.0, max_delay=0.0, jitter=0.0, max_attempts=10)
    store = args.store or tempfile.mkdtemp(prefix="faults-bench-")
    print(
        f"hanoi {args.disks} disks ({task.total_steps:,} steps), k={args.k}, provider "
        f"failures {EXCEPTION_RATE:.0%} exceptions / {TIMEOUT_RATE:.0%} timeouts / "
        f"{RATE_LIMIT_RATE:.0%} rate limits"
        + (
            ", answer faults 1 % empty / 1 % wrong-shape / 1 % truncated"
            if args.answer_faults
            else ""
        ),
        flush=True,
    )
    started = time.perf_counter()
    report = asyncio.run(
        run_task(
            task,
            sampler,
            VotePolicy(k=args.k, retry=retry),
            run_log=store,
            red_flags=[max_output_tokens(750), truncated()],
        )
    )
    wall = time.perf_counter() - started
    with open_run_log(store, readonly=True) as log:
        wrong, checked = verify_hanoi_log(log, args.disks)
        per_step_samples = sum(r.samples for r in log.steps())
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    failures = report.provider_failures
    calls = report.samples + sum(failures.values())
    solved = report.done and wrong == 0 and checked == task.total_steps
    result = {
        "disks": args.disks,
        "steps": report.steps,
        "solved": solved,
        "errors": wrong,
        "k": args.k,
        "samples": report.samples,
        "samples_per_step": round(report.samples_per_step, 4),
        "valid_samples": report.valid_samples,
        "red_flags": report.red_flags,
        "provider_calls": calls,
        "provider_failures": failures,
        "failure_rates": {kind: round(n / calls, 5) for kind, n in failures.items()},
        "max_samples_in_step": report.max_samples_in_step,
        "wall_seconds": round(wall, 1),
        "steps_per_second": round(report.steps / wall),
        "peak_rss_mb": round(peak_mb, 1),
        "load_average": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(result, indent=2))
    if args.json is not None:
        args.json.write_text(json.dumps(result, indent=2) + "\n")
    # Failures are never votes: the log's per-step samples are exactly the samples,
    # and each of them either voted or was red-flagged.
    never_votes = (
        per_step_samples == report.samples
        and report.valid_samples + report.red_flagged == report.samples
    )
    all_kinds = set(failures) == {"exception", "timeout", "rate_limit"}
    ok = solved and never_votes and all_kinds
    print(
        f"solved: {'true' if solved else 'false'}, errors: {wrong}; failures never voted: "
        f"{never_votes}; every failure kind counted: {all_kinds}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
