#!/usr/bin/env python3
"""Break documented guarantees on purpose and check that a test fails (issue 17).

A tiny, dependency-free mutation runner. Each mutant replaces one exact source
snippet (which must occur exactly once in its file, or the mutant is refused) and
runs a few targeted test files with a timeout. A mutant is *killed* when a test
fails (or the run times out), *survived* when every test passes.

The tree it runs from is never touched: by default the current checkout's HEAD is
cloned into a fresh temporary directory (uncommitted changes are not included:
commit first, or pass `--tree`). With `--tree DIR` the mutants are applied to and
reverted in DIR, one at a time, the original bytes restored even on Ctrl-C.

Before any mutant, each distinct test set is run once unmutated (the baseline):
a test set that already fails would "kill" every mutant and prove nothing.

Usage:
    python scripts/mutation_check.py                 # all mutants, fresh clone
    python scripts/mutation_check.py --list          # names and guarantees only
    python scripts/mutation_check.py --only spares_unused --only cached_price
    python scripts/mutation_check.py --tree /tmp/mutation --timeout 300
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Mutant:
    name: str
    file: str  # relative to the tree
    old: str  # exact snippet, must occur exactly once
    new: str
    tests: tuple[str, ...]  # pytest arguments (files or node ids)
    guarantee: str


BITE = "tests/test_guarantees_bite.py"

MUTANTS: tuple[Mutant, ...] = (
    Mutant(
        "budget_every_10th_step",
        "maker_graph/run/_loop.py",
        "            if budgeted:\n                budget_error = over_budget()\n",
        "            if budgeted and step % 10 == 0:\n"
        "                budget_error = over_budget()\n",
        ("tests/test_budget_overshoot.py", "tests/test_budgets.py"),
        "token and cost budgets overshoot by at most one step",
    ),
    Mutant(
        "sqlite_synchronous_normal",
        "maker_graph/runlog/sqlite.py",
        'db.execute(f"PRAGMA synchronous={self.synchronous}")',
        'db.execute("PRAGMA synchronous=NORMAL")',
        ("tests/test_runlog_synchronous.py",),
        'synchronous="FULL" on the SQLite run log (survives a power cut)',
    ),
    Mutant(
        "reserve_after_async_draw",
        "maker_graph/run/_loop.py",
        "        self.drawn += 1\n"
        "        if self.reservations is not None:\n"
        "            self.reservations.need(self.drawn)\n"
        "        try:\n"
        "            return await self.inner.sample(step_input, index)\n",
        "        self.drawn += 1\n"
        "        try:\n"
        "            raw = await self.inner.sample(step_input, index)\n"
        "            if self.reservations is not None:\n"
        "                self.reservations.need(self.drawn)\n"
        "            return raw\n",
        ("tests/test_budget_crash.py", BITE),
        "samples are reserved in the run log before they are requested (async sample)",
    ),
    Mutant(
        "reserve_after_sample_now",
        "maker_graph/run/_loop.py",
        "        if self.reservations is not None:\n"
        "            self.reservations.need(self.drawn + 1)\n"
        "        raw = self.inner.sample_now(step_input, index)\n",
        "        raw = self.inner.sample_now(step_input, index)\n"
        "        if self.reservations is not None:\n"
        "            self.reservations.need(self.drawn + 1)\n",
        ("tests/test_budget_crash.py", BITE),
        "samples are reserved in the run log before they are requested (sample_now)",
    ),
    Mutant(
        "reserve_after_batch_draw",
        "maker_graph/run/_loop.py",
        "        self.drawn += len(indices)\n"
        "        if self.reservations is not None:\n"
        "            self.reservations.need(self.drawn)\n"
        "        try:\n"
        "            raws = await self.inner.sample_many(step_input, indices)\n",
        "        self.drawn += len(indices)\n"
        "        try:\n"
        "            raws = await self.inner.sample_many(step_input, indices)\n"
        "            if self.reservations is not None:\n"
        "                self.reservations.need(self.drawn)\n",
        ("tests/test_budget_crash.py", BITE),
        "samples are reserved in the run log before they are requested (n per request)",
    ),
    Mutant(
        "resume_skips_checksums",
        "maker_graph/runlog/sqlite.py",
        "                self.verify()\n",
        "                pass  # mutant: verify() skipped\n",
        ("tests/test_runlog_corruption.py", "tests/test_runlog.py"),
        "a resume rechecks every batch's checksum (never builds on a corrupt log)",
    ),
    Mutant(
        "verify_ignores_checksum",
        "maker_graph/runlog/base.py",
        "or batch_checksum(records, cp_json) != checksum:\n"
        '            raise self._corrupt(batch, first, last, "it does not match its',
        'or False:\n            raise self._corrupt(batch, first, last, "it does not match its',
        ("tests/test_runlog_corruption.py", "tests/test_runlog.py"),
        "verify/export never pass on a row of a batch that does not match its checksum",
    ),
    Mutant(
        "samples_needed_plus_one",
        "maker_graph/voting.py",
        "    return max(0, k - lead(counts))",
        "    return max(0, k - lead(counts) + 1)",
        ("tests/test_voting.py", "tests/test_vote_step.py"),
        "a round draws only k minus the leader's margin (never wastes samples)",
    ),
    Mutant(
        "samples_needed_minus_one",
        "maker_graph/voting.py",
        "    return max(0, k - lead(counts))",
        "    return max(0, k - lead(counts) - 1)",
        ("tests/test_voting.py", "tests/test_vote_step.py"),
        "a step is drawn until one answer leads by k",
    ),
    Mutant(
        "vote_margin_strict",
        "maker_graph/vote.py",
        "        if counts and first - second >= k:",
        "        if counts and first - second > k:",
        ("tests/test_vote_step.py",),
        "first-to-ahead-by-k: a lead of exactly k decides the step",
    ),
    Mutant(
        "first_to_ahead_strict",
        "maker_graph/voting.py",
        "    return best if first - second >= k else None",
        "    return best if first - second > k else None",
        ("tests/test_voting.py", "tests/test_voting_graph.py"),
        "first-to-ahead-by-k (graph tally): a lead of exactly k decides",
    ),
    Mutant(
        "red_flags_counted_as_votes",
        "maker_graph/vote.py",
        "                if sample.red_flag is None:\n",
        "                if True:  # mutant: red flags vote\n",
        ("tests/test_red_flags.py", "tests/test_vote_step.py"),
        "red-flagged samples are discarded, never votes",
    ),
    Mutant(
        "spares_unused_not_in_run_samples",
        "maker_graph/run/_loop.py",
        "                samples += result.spares_unused  # billed, never needed\n",
        "                pass  # mutant: spares not counted\n",
        ("tests/test_spare_samples.py",),
        "unused spare samples are paid for and counted in the run's samples and budgets",
    ),
    Mutant(
        "cached_billed_as_input",
        "maker_graph/costs.py",
        "    cached = cached_input_tokens if price_cached is not None else 0\n",
        "    cached = 0  # mutant: cached price ignored\n",
        ("tests/test_costs.py", "tests/test_cached_input_tokens.py"),
        "cached input tokens are billed at the cached price",
    ),
    Mutant(
        "cached_tokens_free",
        "maker_graph/costs.py",
        "        + cached * (price_cached or 0.0)\n",
        "",
        ("tests/test_costs.py", "tests/test_cached_input_tokens.py"),
        "cached input tokens are billed (not free)",
    ),
    Mutant(
        "run_drops_cached_tokens",
        "maker_graph/run/_loop.py",
        "                tokens_cached += result.cached_input_tokens\n",
        "                pass  # mutant: cached tokens dropped\n",
        ("tests/test_cached_input_tokens.py",),
        "a run's cost prices the cache hits its steps reported",
    ),
    Mutant(
        "speculative_waste_not_counted",
        "maker_graph/run/_loop.py",
        "            samples += wasted\n",
        "            pass  # mutant: speculative waste free\n",
        ("tests/test_speculation.py", BITE),
        "cancelled speculative samples count in the totals and budgets",
    ),
    Mutant(
        "undecided_step_samples_dropped",
        "maker_graph/run/_loop.py",
        "            samples = session_base + counter.drawn\n",
        "            pass  # mutant: an undecided step's samples are free\n",
        ("tests/test_budgets.py", BITE),
        "samples of a step that was not decided count (a resumed run never redraws N+1)",
    ),
    Mutant(
        "resume_ignores_reservations",
        "maker_graph/runlog/base.py",
        "        return max(committed, log.reserved())",
        "        return committed",
        ("tests/test_budget_crash.py", "tests/test_runlog.py"),
        "a resume after a crash counts the samples reserved before it as spent",
    ),
    Mutant(
        "budget_end_plurality",
        "maker_graph/run/_loop.py",
        'max_samples=remaining,\n                    on_no_consensus="raise",',
        'max_samples=remaining,\n                    on_no_consensus="plurality",',
        ("tests/test_budgets.py", BITE),
        "near the end of a sample budget an undecided step stops the run (no plurality)",
    ),
)


@dataclass
class Outcome:
    mutant: Mutant
    status: str  # killed / survived / timeout / refused
    by: str
    seconds: float


def _snippet_count(tree: Path, m: Mutant) -> int:
    return (tree / m.file).read_text(encoding="utf-8").count(m.old)


@contextmanager
def applied(tree: Path, m: Mutant) -> Iterator[None]:
    """The mutant written into `tree` for the duration; original bytes restored after."""
    path = tree / m.file
    original = path.read_bytes()
    text = original.decode("utf-8")
    if text.count(m.old) != 1:
        raise ValueError(f"{m.name}: snippet occurs {text.count(m.old)} times in {m.file}")
    try:
        path.write_text(text.replace(m.old, m.new, 1), encoding="utf-8")
        yield
    finally:
        path.write_bytes(original)


def _env(tree: Path) -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(tree)
    # No bytecode: a cached .pyc of the original could otherwise shadow a mutant.
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def run_tests(python: str, tree: Path, tests: Sequence[str], timeout: float) -> tuple[str, str]:
    """('passed' | 'failed' | 'timeout', first failing test or reason)."""
    cmd = [python, "-m", "pytest", "-q", "-x", "-p", "no:cacheprovider", *tests]
    proc = subprocess.Popen(
        cmd,
        cwd=tree,
        env=_env(tree),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,  # its own group: a timeout kills its children too
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        return "timeout", f"no result in {timeout:.0f}s"
    if proc.returncode == 0:
        return "passed", ""
    hit = re.search(r"^(?:FAILED|ERROR) (\S+)", out, re.MULTILINE)
    if hit:
        return "failed", hit.group(1)
    tail = out.strip().splitlines()[-1:] or ["(no output)"]
    return "failed", f"exit {proc.returncode}: {tail[0][:80]}"


def check_import(python: str, tree: Path) -> None:
    out = subprocess.run(
        [python, "-c", "import maker_graph; print(maker_graph.__file__)"],
        cwd=tree,
        env=_env(tree),
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.strip()
    if not Path(out).resolve().is_relative_to(tree.resolve()):
        sys.exit(f"maker_graph imports from {out}, not from the tree {tree}")


def table(outcomes: Sequence[Outcome]) -> str:
    rows = [("mutant", "status", "killed by", "s", "guarantee")]
    rows += [
        (o.mutant.name, o.status, o.by or "-", f"{o.seconds:.0f}", o.mutant.guarantee)
        for o in outcomes
    ]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4]
        for r in rows
    ]
    lines.insert(1, "-" * len(lines[0]))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--tree", type=Path, help="mutate this tree in place (reverted after)")
    ap.add_argument("--only", action="append", default=[], metavar="NAME")
    ap.add_argument("--timeout", type=float, default=240, help="seconds per test run")
    ap.add_argument("--python", default=sys.executable, help="interpreter with pytest")
    ap.add_argument("--no-baseline", action="store_true", help="skip the unmutated runs")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args(argv)

    names = {m.name for m in MUTANTS}
    unknown = set(args.only) - names
    if unknown:
        ap.error(f"unknown mutant(s): {', '.join(sorted(unknown))}")
    chosen = [m for m in MUTANTS if not args.only or m.name in args.only]
    if args.list:
        for m in chosen:
            print(f"{m.name:34} {m.file:30} {m.guarantee}")
        return 0

    tmp: str | None = None
    if args.tree is None:
        here = Path(__file__).resolve().parent.parent
        tmp = tempfile.mkdtemp(prefix="mutation-")
        tree = Path(tmp) / "tree"
        subprocess.run(["git", "clone", "-q", str(here), str(tree)], check=True, timeout=300)
    else:
        tree = args.tree.resolve()
    try:
        check_import(args.python, tree)
        refused = [m for m in chosen if _snippet_count(tree, m) != 1]
        for m in refused:
            print(
                f"refused {m.name}: snippet occurs {_snippet_count(tree, m)} times in {m.file}",
                file=sys.stderr,
            )
        if refused:
            return 2
        if not args.no_baseline:
            for tests in dict.fromkeys(m.tests for m in chosen):
                status, why = run_tests(args.python, tree, tests, args.timeout)
                if status != "passed":
                    print(f"baseline {' '.join(tests)}: {status} {why}", file=sys.stderr)
                    return 2
                print(f"baseline ok: {' '.join(tests)}", flush=True)
        outcomes: list[Outcome] = []
        for m in chosen:
            t0 = time.perf_counter()
            with applied(tree, m):
                status, why = run_tests(args.python, tree, m.tests, args.timeout)
            verdict = {"passed": "SURVIVED", "failed": "killed", "timeout": "killed"}[status]
            outcomes.append(Outcome(m, verdict, why, time.perf_counter() - t0))
            print(f"{m.name}: {verdict} {why}", flush=True)
        print()
        print(table(outcomes))
        return 1 if any(o.status == "SURVIVED" for o in outcomes) else 0
    finally:
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
