"""The million-step demo, timed: `maker-graph hanoi --disks 20` with the run log on.

Runs the same command as `make demo` (default simulated model, fresh run
directory, JSON report) in a child process and measures, in that one run, its
wall time and its peak resident memory (the child's `ru_maxrss`). It also
reads the report: the run must be solved with zero errors.

Targets (issue 3): under 3 minutes and under 500 MB on a 2-core machine.

Run: `python benchmarks/hanoi_20.py [--disks 20] [--keep DIR] [--json out.json]`
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 180.0
TARGET_RSS_MB = 500.0


def _rss_mb(pid: int) -> float | None:
    """A process's resident set size from /proc (None where there is no /proc)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--disks", type=int, default=20)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the run directory here.")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args(argv)

    run_dir = args.keep or Path(tempfile.mkdtemp(prefix="hanoi-bench-"))
    report = run_dir / "report.json"
    command = [
        sys.executable,
        "-m",
        "maker_graph",
        "hanoi",
        "--disks",
        str(args.disks),
        "--run-dir",
        str(run_dir),
        "--fresh",
        "--report",
        str(report),
        "--no-progress",
    ]
    print("$ " + " ".join(["maker-graph", *command[3:]]), flush=True)
    started = time.perf_counter()
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Sample the child's resident memory every half second: flat memory means the
    # curve levels off early instead of growing with the steps done.
    curve: list[tuple[float, float]] = []
    while proc.poll() is None:
        rss = _rss_mb(proc.pid)
        if rss is not None:
            curve.append((time.perf_counter() - started, rss))
        time.sleep(0.5)
    stdout, stderr = proc.communicate()
    wall = time.perf_counter() - started
    # Only one child has run, so the children's peak is this run's peak (KiB on Linux).
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    peak_mb = peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024
    sys.stdout.write(stdout)
    if proc.returncode != 0:
        sys.stderr.write(stderr)
        print(f"the run failed with exit code {proc.returncode}")
        return 1
    data = json.loads(report.read_text())
    db_mb = (run_dir / "run.sqlite").stat().st_size / 1e6
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    wall_ok, rss_ok = wall < TARGET_SECONDS, peak_mb < TARGET_RSS_MB
    solved = bool(data["solved"]) and data["errors"] == 0
    print(
        f"wall time:  {wall:7.1f} s   (target < {TARGET_SECONDS:.0f} s: "
        f"{'ok' if wall_ok else 'MISSED'}); the run itself: {data['wall_seconds']:.1f} s"
    )
    print(
        f"peak RSS:   {peak_mb:7.1f} MB  (target < {TARGET_RSS_MB:.0f} MB: "
        f"{'ok' if rss_ok else 'MISSED'})"
    )
    if curve:
        marks = [curve[min(len(curve) - 1, int(f * len(curve)))] for f in (0.1, 0.5, 0.99)]
        print("RSS over the run: " + ", ".join(f"{mb:.0f} MB at {t:.0f} s" for t, mb in marks))
    print(
        f"per step:   {1e6 * data['wall_seconds'] / data['steps']:7.1f} us over "
        f"{data['steps']:,} steps; run log {db_mb:.0f} MB; 1-min load average {load:.1f}"
    )
    print(f"solved:     {str(solved).lower()}, errors: {data['errors']}")
    if args.json is not None:
        args.json.write_text(
            json.dumps(
                {
                    "disks": args.disks,
                    "wall_seconds": wall,
                    "run_seconds": data["wall_seconds"],
                    "peak_rss_mb": peak_mb,
                    "rss_curve": curve,
                    "run_log_mb": db_mb,
                    "load_average": load,
                    "solved": solved,
                    "errors": data["errors"],
                    "steps": data["steps"],
                    "samples": data["samples"],
                },
                indent=2,
            )
            + "\n"
        )
    if args.keep is None:
        shutil.rmtree(run_dir, ignore_errors=True)
    return 0 if wall_ok and rss_ok and solved else 1


if __name__ == "__main__":
    raise SystemExit(main())
