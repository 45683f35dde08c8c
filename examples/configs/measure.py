"""Measure the example specs offline: load time, triage accuracy, decomposition overhead.

Run from the repository root::

    .venv/bin/python examples/configs/measure.py

Prints the time to check (`load_spec`) and build (`load_graph`) each spec, the
triage graph's voted accuracy over 400 simulated tickets (each sample is right
80 % of the time), and a 14-disk Hanoi run through the spec's decomposition
node against the same run straight through the engine (`run_task`).
"""

from __future__ import annotations

import importlib.util
import statistics
import time
from pathlib import Path

from maker_graph.config import load_graph, load_spec
from maker_graph.config._source import read_source
from maker_graph.red_flags import max_output_tokens
from maker_graph.run import run_task_sync
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel
from maker_graph.vote import VotePolicy

HERE = Path(__file__).resolve().parent


def main() -> None:
    module_spec = importlib.util.spec_from_file_location("example_graphs", HERE / "graphs.py")
    assert module_spec is not None and module_spec.loader is not None
    graphs = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(graphs)  # registers the hybrid pipeline's tool

    for name in ("triage", "hanoi", "hybrid"):
        path = HERE / f"{name}.yaml"
        started = time.perf_counter()
        for _ in range(20):
            load_spec(path)
        checked = (time.perf_counter() - started) / 20 * 1000
        started = time.perf_counter()
        for _ in range(20):
            load_graph(path)
        built = (time.perf_counter() - started) / 20 * 1000
        print(f"{name}: load_spec {checked:.1f} ms, load_graph {built:.1f} ms")

    triage = graphs.triage.compile()
    words = {"billing": "refund", "bug": "crash", "account": "password", "other": "hello"}
    times, samples, right = [], [], 0
    for i in range(400):
        label = list(words)[i % 4]
        started = time.perf_counter()
        out = triage.invoke({"ticket": f"ticket {i}: {words[label]} please"})
        times.append(time.perf_counter() - started)
        right += out["category"] == label
        samples.append(out["triage_stats"]["samples_drawn"])
    print(
        f"triage: 400 tickets, voted accuracy {right / 400:.3f} (one sample: 0.80), "
        f"mean samples {statistics.mean(samples):.2f}, "
        f"median invoke {statistics.median(times) * 1000:.1f} ms"
    )

    disks = 14
    data = read_source(HERE / "hanoi.yaml").data
    data["nodes"]["solve"]["max_total_samples"] = 10**9
    hanoi = load_graph(data).compile()
    started = time.perf_counter()
    out = hanoi.invoke({"disks": disks})
    through_spec = time.perf_counter() - started
    task = HanoiTask(disks)
    started = time.perf_counter()
    run_task_sync(
        task,
        simulated_sampler(task, ErrorModel(error_rate=0.01, seed=3)),
        VotePolicy(k=3, max_samples=40),
        red_flags=[max_output_tokens(750)],
    )
    direct = time.perf_counter() - started
    print(
        f"hanoi {disks} disks ({2**disks - 1} steps): spec graph {through_spec:.2f} s "
        f"(done={out['result']['done']}), run_task {direct:.2f} s, "
        f"ratio {through_spec / direct:.2f}"
    )


if __name__ == "__main__":
    main()
