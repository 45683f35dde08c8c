"""Python graphs for a multi-worker deployment: a wrapped agent turn and a decomposition run.

Both use simulated models with real latency (lognormal, median 50 ms), so a
server's throughput on them is bound by waiting, as with a hosted model.
`benchmarks/scale_out.py` and `tests/postgres/test_pg_worker_kill.py` serve them
(graph ids `agent` and `decompose`).

- `agent`: one `maker_node` turn (k = 3) that labels a ticket; the node also
  appends the turn's id to `decisions` (an append-only channel), so a turn that
  were decided twice on a thread would show up there twice.
- `decompose`: a graph factory. For every run it builds Towers of Hanoi by
  maximal decomposition whose run log is the PostgreSQL database the deployment
  names (`maker_graph.runlog.from_env`: `MAKER_GRAPH_RUNLOG_URL`, else the
  server's `DATABASE_URI`/`POSTGRES_URI`), with the LangGraph thread id as the
  run id. A run that another worker picks up after a crash continues that log
  from the last committed batch. `configurable.disks` sets the size (default 12).
"""

from __future__ import annotations

import operator
from typing import Annotated, Any

from langchain_core.messages import BaseMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph import END, START, StateGraph
from typing_extensions import TypedDict

from maker_graph import create_decomposition_graph, maker_node
from maker_graph.runlog.from_env import run_log_url_from_env
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel, SimulatedChatModel
from maker_graph.tokens import count_tokens

LATENCY_MEDIAN = 0.05
LABELS = ["billing", "bug", "account", "other"]

# Load the tokenizer at import, not in the first run on the server's event loop: the
# simulated model counts tokens, and the first count loads tiktoken's tables (~2 s of
# CPU here, 4 % of a 200-run profile, blocking every run on that worker meanwhile).
count_tokens("warm up")


def _oracle(messages: list[BaseMessage]) -> str:
    text = str(messages[-1].content).lower()
    if "crash" in text:
        return "bug"
    if "charge" in text or "refund" in text:
        return "billing"
    if "password" in text:
        return "account"
    return "other"


class AgentState(TypedDict, total=False):
    ticket: str
    turn: str
    label: str
    decisions: Annotated[list[str], operator.add]


_model = SimulatedChatModel(
    oracle=_oracle,
    choices=LABELS,
    errors=ErrorModel(error_rate=0.1, latency_median=LATENCY_MEDIAN, seed=16),
)
_turn = maker_node(_model, k=3, input_keys=["ticket"], output_key="label", name="label")


async def label(state: AgentState, config: RunnableConfig) -> dict[str, Any]:
    out = await _turn.ainvoke(state, config)
    return {**out, "decisions": [state.get("turn", "turn")]}


_agent = StateGraph(AgentState)
_agent.add_node("label", label)
_agent.add_edge(START, "label")
_agent.add_edge("label", END)
agent = _agent


def decompose(config: RunnableConfig) -> StateGraph[Any, Any, Any, Any]:
    """A decomposition graph whose run log is the deployment's, one run per thread."""
    configurable = config.get("configurable") or {}
    disks = int(configurable.get("disks", 12))
    thread = configurable.get("thread_id")
    run_log = run_log_url_from_env(str(thread)) if thread else None
    task = HanoiTask(disks)
    errors = ErrorModel(error_rate=0.01, latency_median=LATENCY_MEDIAN, seed=disks)
    return create_decomposition_graph(task, simulated_sampler(task, errors), k=3, run_log=run_log)
