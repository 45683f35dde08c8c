"""Run every benchmark in this folder, one after another, and summarise (`make bench`).

Each `benchmarks/*.py` script (except this one and `_`-prefixed helpers) runs in
its own process with its default arguments, so one benchmark's memory or event
loop never colours another's figures. A script's exit code says whether it met
its targets; this runner exits non-zero if any did not.

Run: `python benchmarks/run_all.py [--only NAME ...] [--timeout SECONDS]`
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def discover() -> list[Path]:
    return sorted(
        path
        for path in HERE.glob("*.py")
        if path.name != Path(__file__).name and not path.name.startswith("_")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", nargs="*", default=None, help="Benchmark names to run.")
    parser.add_argument("--timeout", type=float, default=1800.0, help="Seconds per benchmark.")
    args = parser.parse_args(argv)

    scripts = discover()
    if args.only:
        wanted = {name.removesuffix(".py") for name in args.only}
        unknown = wanted - {path.stem for path in scripts}
        if unknown:
            print(
                f"error: no benchmark named {', '.join(sorted(unknown))}; have "
                f"{', '.join(path.stem for path in scripts)}",
                file=sys.stderr,
            )
            return 2
        scripts = [path for path in scripts if path.stem in wanted]
    results: list[tuple[str, str, float]] = []
    for path in scripts:
        print(f"=== {path.stem}", flush=True)
        started = time.perf_counter()
        try:
            code = subprocess.run([sys.executable, str(path)], timeout=args.timeout).returncode
            status = "ok" if code == 0 else f"exit {code}"
        except subprocess.TimeoutExpired:
            status = f"timed out after {args.timeout:g} s"
        results.append((path.stem, status, time.perf_counter() - started))
        print(flush=True)
    print("=== summary")
    for name, status, seconds in results:
        print(f"  {name:<28} {status:<24} {seconds:8.1f} s")
    return 0 if all(status == "ok" for _, status, _ in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
