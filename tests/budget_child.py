"""A child process for the budget crash test (a helper, not a test file).

`python budget_child.py URL RUN_DIR BUDGET` runs a Hanoi task under a sample budget
with a plain HTTP sampler against the OpenAI-compatible stub at URL (no LangChain
client, so the process starts in well under a second and can be killed often).
"""

from __future__ import annotations

import http.client
import json
import sys
from urllib.parse import urlsplit

from maker_graph.errors import BudgetExhaustedError
from maker_graph.run import run_task_sync
from maker_graph.tasks.hanoi import HanoiTask
from maker_graph.vote import VotePolicy


def main() -> int:
    url, run_dir, budget = sys.argv[1], sys.argv[2], int(sys.argv[3])
    parts = urlsplit(url)
    task = HanoiTask(6)

    def sample(step_input: object) -> str:  # runs in a worker thread
        conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=30)
        body = {"model": "stub", "messages": [{"role": "user", "content": task.prompt(step_input)}]}
        conn.request(
            "POST",
            f"{parts.path}/chat/completions",
            json.dumps(body),
            {"content-type": "application/json"},
        )
        reply = json.loads(conn.getresponse().read())
        conn.close()
        return str(reply["choices"][0]["message"]["content"])

    print("started", flush=True)
    try:
        report = run_task_sync(
            task,
            sample,
            VotePolicy(k=2, max_concurrency=2),
            run_log=run_dir,
            max_total_samples=budget,
            commit_interval=1.0,
        )
    except BudgetExhaustedError as exc:
        print(json.dumps({"stopped": "budget", "spent": exc.spent}), flush=True)
        return 1
    print(json.dumps({"stopped": report.stopped, "samples": report.samples}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
