"""One big call vs recursive decomposition on long multiplication (cf. the paper's Fig. 12).

For each size n, the same random n x n-digit products are computed three ways
by simulated agents whose error grows with the digit work of a call:

- **single call**: one sample of a solver asked for the whole product;
- **single call, voted**: the same solver, first-to-ahead-by-k (k = 3), no
  decomposition (MAKER's voting alone);
- **recursive**: decomposers, discriminators, solvers and composers, every
  role voted at k = 3 (`maker_graph.recursive`).

Error model (`DigitErrorScaling`): a call that multiplies an a-digit by a
b-digit number is wrong with probability `1 - (1 - 0.01) ** (a * b)` (a slip
per digit pair: 3x3 -> 8.6 %, 6x6 -> 30 %, 10x10 -> 63 %, 12x12 -> 76 %); a
composer adding numbers with D digits in all is wrong with probability
`1 - (1 - 0.002) ** D`; decomposers and discriminators are wrong 2 % of the
time. Wrong products are one-digit slips spread over 3 values; half the
decomposer's errors are plausible wrong splits, half invalid ones that the
red flag catches. Success is checked against Python's integers; a run that
raises (no consensus within 50 samples of a vote) counts as a failure.

Cost: every call's prompt is rendered with the role's default prompt and
counted with tiktoken (o200k_base); the answer's JSON likewise. Prices are
gpt-4.1-mini's list prices ($0.40 / $1.60 per million input / output tokens),
an assumption for scale only.

Run: `python benchmarks/recursive_vs_single.py [--products 100] [--plot PATH]`
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import time
from dataclasses import dataclass
from typing import Any

from maker_graph.errors import MakerRuntimeError
from maker_graph.recursive import RecursionPolicy, Solver
from maker_graph.tasks.multiplication import (
    DigitErrorScaling,
    Multiplier,
    RoleErrors,
    multiplication_roles,
    problem_text,
    simulated_models,
)
from maker_graph.testing import ErrorModel

PRICE_IN, PRICE_OUT = 0.40, 1.60  # $ per million tokens (assumed: gpt-4.1-mini)
SCALING = DigitErrorScaling(
    per_digit_product=0.01, per_digit_sum=0.002, decomposer=0.02, discriminator=0.02
)
SIZES = (2, 3, 4, 5, 6, 8, 10, 12)
K = 3


@dataclass
class Row:
    n: int
    method: str
    success: float
    samples: float
    tokens_in: float
    tokens_out: float
    seconds: float

    @property
    def cost(self) -> float:
        return (self.tokens_in * PRICE_IN + self.tokens_out * PRICE_OUT) / 1e6


def _errors(seed: int) -> RoleErrors:
    return RoleErrors(
        decomposer=ErrorModel(rivals=2, seed=seed),
        discriminator=ErrorModel(seed=seed + 1),
        solver=ErrorModel(rivals=3, seed=seed + 2),
        composer=ErrorModel(rivals=3, seed=seed + 3),
    )


async def _single(pairs: list[tuple[int, int]], k: int | None, seed: int) -> tuple[Any, ...]:
    models = simulated_models(_errors(seed), scaling=SCALING, input_tokens=True)
    role = multiplication_roles(models, k=k or 1).solver
    solver = Solver(role)
    ok = samples = tin = tout = 0
    for a, b in pairs:
        try:
            vote = await solver.solve(problem_text(a, b))
        except MakerRuntimeError:
            samples += role.policy.budget
            continue
        samples += vote.samples_drawn
        tin += vote.input_tokens
        tout += vote.output_tokens
        ok += int(vote.winner.answer) == a * b
    return ok, samples, tin, tout


async def _recursive(pairs: list[tuple[int, int]], seed: int) -> tuple[Any, ...]:
    models = simulated_models(_errors(seed), scaling=SCALING, input_tokens=True)
    multiplier = Multiplier(
        multiplication_roles(models, k=K), policy=RecursionPolicy(max_depth=8, candidates=3)
    )
    ok = samples = tin = tout = 0
    sem = asyncio.Semaphore(16)

    async def one(a: int, b: int) -> Any:
        async with sem:
            try:
                return await multiplier.multiply(a, b)
            except MakerRuntimeError:
                return None

    for result in await asyncio.gather(*(one(a, b) for a, b in pairs)):
        if result is None:
            continue
        ok += int(result.correct)
        samples += result.samples
        tin += result.stats.get("input_tokens", 0)
        tout += result.stats.get("output_tokens", 0)
    return ok, samples, tin, tout


def run(products: int, seed: int) -> list[Row]:
    rows = []
    for n in SIZES:
        rng = random.Random(seed * 1000 + n)
        pairs = [
            (rng.randrange(10 ** (n - 1), 10**n), rng.randrange(10 ** (n - 1), 10**n))
            for _ in range(products)
        ]
        for method, job in (
            ("single call", lambda p=pairs: _single(p, None, seed)),
            (f"single call, voted k={K}", lambda p=pairs: _single(p, K, seed)),
            (f"recursive, k={K}", lambda p=pairs: _recursive(p, seed)),
        ):
            started = time.perf_counter()
            ok, samples, tin, tout = asyncio.run(job())
            rows.append(
                Row(
                    n,
                    method,
                    ok / products,
                    samples / products,
                    tin / products,
                    tout / products,
                    time.perf_counter() - started,
                )
            )
    return rows


def table(rows: list[Row], products: int) -> str:
    lines = [
        f"| digits | method | success ({products} products) | samples / product "
        "| tokens in / out per product | $ / product |",
        "|---:|---|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r.n}x{r.n} | {r.method} | {r.success:.0%} | {r.samples:.1f} | "
            f"{r.tokens_in:,.0f} / {r.tokens_out:,.0f} | {r.cost:.5f} |"
        )
    return "\n".join(lines)


def plot(rows: list[Row], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for method in dict.fromkeys(r.method for r in rows):
        mine = [r for r in rows if r.method == method]
        left.plot([r.n for r in mine], [100 * r.success for r in mine], marker="o", label=method)
        right.plot([r.n for r in mine], [r.samples for r in mine], marker="o", label=method)
    left.set(xlabel="digits per factor", ylabel="products solved (%)", ylim=(-5, 105))
    right.set(xlabel="digits per factor", ylabel="samples per product", yscale="log")
    left.legend(fontsize=8)
    left.grid(alpha=0.3)
    right.grid(alpha=0.3)
    fig.suptitle("Long multiplication: one call vs recursive decomposition (simulated agents)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--products", type=int, default=100, help="products per size")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--plot", help="also save a figure (PNG) here")
    parser.add_argument("--json", action="store_true", help="print rows as JSON lines")
    args = parser.parse_args()
    started = time.perf_counter()
    rows = run(args.products, args.seed)
    if args.json:
        for r in rows:
            print(json.dumps({**r.__dict__, "cost": r.cost}))
    else:
        print(table(rows, args.products))
        recursive = [r.seconds for r in rows if r.method.startswith("recursive")]
        print(
            f"\nwall {time.perf_counter() - started:.1f} s "
            f"(recursive runs: median {statistics.median(recursive):.2f} s per size)"
        )
    if args.plot:
        plot(rows, args.plot)
        print(f"figure: {args.plot}")


if __name__ == "__main__":
    main()
