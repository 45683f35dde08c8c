"""`examples/configs/langgraph.json` is complete for a server deployment.

The config names a Python version, installs maker_graph itself (`../..`), turns
LangGraph's strict msgpack mode on and pickling off. The tests check that it
validates with langgraph-cli, that its Docker build installs maker_graph and
points at the graphs inside it, that every graph it names imports and builds,
and that what a served maker graph checkpoints is all on the allow-list: each
graph (the three examples, and `maker_node`, `add_maker_step` and
`create_decomposition_graph` built in Python) runs under a checkpointer whose
serializer uses the config's allow-list, reads its whole history back, and
LangGraph reports no blocked or unregistered type, and no blob is pickled. A
control graph with a dataclass in its state shows that such a type is caught.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Annotated, Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.event_hooks import register_serde_event_listener
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer
from langgraph.graph import END, START, StateGraph, add_messages
from typing_extensions import TypedDict

from maker_graph import maker_node
from maker_graph.config import registry
from maker_graph.graph import add_maker_step, create_decomposition_graph
from maker_graph.tasks.hanoi import HanoiTask, simulated_sampler
from maker_graph.testing import ErrorModel, SimulatedChatModel

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples" / "configs"
CONFIG_PATH = EXAMPLES / "langgraph.json"
CONFIG: dict[str, Any] = json.loads(CONFIG_PATH.read_text())

# Serialized forms LangGraph writes without pickling anything.
PLAIN_BLOBS = {"msgpack", "null", "empty", "bytes", "bytearray"}

EXAMPLE_INPUTS = {
    "triage": {"ticket": "I was charged twice this month"},
    "hanoi": {"disks": 3},
    "hybrid": {"request": "Where is order AB-123? asap"},
}


def _allowlist() -> list[tuple[str, ...]] | None:
    """The config's msgpack allow-list as the serializer takes it (None: strict)."""
    allowed = CONFIG["checkpointer"]["serde"]["allowed_msgpack_modules"]
    assert allowed is not True, "True lets every type through with a warning"
    return None if allowed is None else [tuple(entry) for entry in allowed]


@pytest.fixture(scope="module")
def example_graphs() -> Iterator[ModuleType]:
    """The module the config's graphs live in, imported from its path as the server does."""
    with registry.scoped():
        spec = importlib.util.spec_from_file_location(
            "maker_graph_deploy_graphs", EXAMPLES / "graphs.py"
        )
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module


@pytest.fixture
def serde_events() -> Iterator[list[dict[str, Any]]]:
    """Every allow-list event LangGraph's serializer reports during the test."""
    events: list[dict[str, Any]] = []
    unregister = register_serde_event_listener(lambda event: events.append(dict(event)))
    try:
        yield events
    finally:
        unregister()


def _saver() -> InMemorySaver:
    return InMemorySaver(serde=JsonPlusSerializer(allowed_msgpack_modules=_allowlist()))


async def _run_and_reload(graph: Any, inputs: Any, thread: str) -> tuple[Any, set[str]]:
    """Run `graph`, read every checkpoint back; the output and the blob/write types."""
    config = {"configurable": {"thread_id": thread}}
    out = await graph.ainvoke(inputs, config)
    history = [state async for state in graph.aget_state_history(config)]
    assert history
    saver = graph.checkpointer
    kinds = {kind for kind, _ in saver.blobs.values()}
    for writes in saver.writes.values():
        kinds |= {typed[0] for _task, _channel, typed, _path in writes.values()}
    return out, kinds


def test_the_config_validates_and_is_complete_for_a_deployment() -> None:
    from langgraph_cli.config import MIN_PYTHON_VERSION, validate_config_file

    config = validate_config_file(CONFIG_PATH)
    major, minor = (int(part) for part in config["python_version"].split("."))
    assert (major, minor) >= tuple(int(p) for p in MIN_PYTHON_VERSION.split("."))
    # 3.11 is a version maker_graph supports.
    assert 'requires-python = ">=3.11"' in (ROOT / "pyproject.toml").read_text()
    # "." is the graphs' directory; "../.." is maker_graph itself, installed from source.
    assert (EXAMPLES / "../..").resolve() == ROOT
    assert "../.." in config["dependencies"] and "." in config["dependencies"]
    assert config["env"]["LANGGRAPH_STRICT_MSGPACK"] == "true"
    serde = config["checkpointer"]["serde"]
    assert serde["pickle_fallback"] is False
    assert set(config["graphs"]) == set(EXAMPLE_INPUTS)


def test_the_docker_build_installs_maker_graph_and_serves_its_graphs() -> None:
    from langgraph_cli.config import config_to_docker, validate_config_file

    config = validate_config_file(CONFIG_PATH)
    dockerfile, contexts = config_to_docker(
        CONFIG_PATH, config, base_image="langchain/langgraph-api", api_version="0.16.7"
    )
    # langgraph-cli names the build context after the checkout's folder (not always "main").
    repo = ROOT.name
    assert Path(contexts[repo]) == ROOT
    assert f"COPY --from={repo} . /deps/{repo}" in dockerfile
    assert f"ENV LANGGRAPH_CHECKPOINTER='{json.dumps(CONFIG['checkpointer'])}'" in dockerfile
    graphs = json.loads(dockerfile.split("ENV LANGSERVE_GRAPHS='")[1].split("'")[0])
    assert graphs == {
        name: f"/deps/{repo}/examples/configs/graphs.py:{name}" for name in EXAMPLE_INPUTS
    }
    # The config's `env` is not baked into the image: the deployment sets it.
    assert "LANGGRAPH_STRICT_MSGPACK" not in dockerfile


@pytest.mark.parametrize("name", sorted(EXAMPLE_INPUTS))
async def test_each_served_graph_builds_and_checkpoints_only_allowed_types(
    name: str, example_graphs: ModuleType, serde_events: list[dict[str, Any]]
) -> None:
    path, _, attr = CONFIG["graphs"][name].partition(":")
    assert (EXAMPLES / path).resolve() == (EXAMPLES / "graphs.py").resolve()
    builder = getattr(example_graphs, attr)
    assert isinstance(builder, StateGraph)  # left uncompiled: the server compiles it
    out, kinds = await _run_and_reload(
        builder.compile(checkpointer=_saver()), EXAMPLE_INPUTS[name], name
    )
    assert out
    assert serde_events == []
    assert kinds <= PLAIN_BLOBS


class _Ticket(TypedDict, total=False):
    messages: Annotated[list[Any], add_messages]
    ticket: str
    label: str
    label_stats: dict[str, Any]


def _model() -> SimulatedChatModel:
    return SimulatedChatModel(
        oracle=lambda messages: "billing",
        choices=["billing", "bug", "other"],
        errors=ErrorModel(error_rate=0.2, seed=3),
    )


def _python_graphs() -> dict[str, tuple[Any, Any]]:
    labelled = StateGraph(_Ticket)
    labelled.add_node(
        "classify",
        maker_node(
            _model(),
            prompt=lambda s: f"Label this ticket: {s['ticket']}",
            input_keys=["ticket"],
            output_key="label",
            stats_key="label_stats",
            k=3,
        ),
    )
    labelled.add_edge(START, "classify")
    labelled.add_edge("classify", END)
    agent = StateGraph(_Ticket)
    agent.add_node("agent", maker_node(_model(), k=3, output_key="messages"))
    agent.add_edge(START, "agent")
    agent.add_edge("agent", END)
    grafted = StateGraph(_Ticket)
    add_maker_step(grafted, "vote", _model(), input_keys=["ticket"], output_key="label", k=3)
    grafted.add_edge(START, "vote")
    task = HanoiTask(4)
    return {
        "maker_node": (labelled, {"ticket": "I was charged twice"}),
        "maker_node_messages": (agent, {"messages": [("user", "I was charged twice")]}),
        "add_maker_step": (grafted, {"ticket": "I was charged twice"}),
        "decomposition_chunk_1": (
            create_decomposition_graph(task, simulated_sampler(task), chunk=1),
            {},
        ),
        "decomposition_chunk_5": (
            create_decomposition_graph(task, simulated_sampler(task), chunk=5),
            {},
        ),
    }


@pytest.mark.parametrize("name", sorted(_python_graphs()))
async def test_python_built_maker_graphs_checkpoint_only_allowed_types(
    name: str, serde_events: list[dict[str, Any]]
) -> None:
    builder, inputs = _python_graphs()[name]
    out, kinds = await _run_and_reload(builder.compile(checkpointer=_saver()), inputs, name)
    assert out
    assert serde_events == []
    assert kinds <= PLAIN_BLOBS


@dataclasses.dataclass
class _Custom:
    x: int = 1


class _Holder(TypedDict):
    c: Any


async def test_the_check_catches_a_type_off_the_allow_list(
    serde_events: list[dict[str, Any]], caplog: pytest.LogCaptureFixture
) -> None:
    builder = StateGraph(_Holder)
    builder.add_node("n", lambda state: {"c": _Custom()})
    builder.add_edge(START, "n")
    with caplog.at_level("WARNING"):
        await _run_and_reload(builder.compile(checkpointer=_saver()), {"c": 0}, "control")
    assert {(e["module"], e["name"], e["kind"]) for e in serde_events} == {
        (__name__, "_Custom", "msgpack_blocked")
    }


# --------------------------------------------------------------- run log from the environment


def test_run_log_url_from_env_prefers_ours_then_the_servers_postgres() -> None:
    from maker_graph.errors import ConfigurationError
    from maker_graph.runlog.from_env import run_log_url_from_env

    pg = "postgresql://u@127.0.0.1:5432/db?connect_timeout=5"
    assert run_log_url_from_env("t1", env={"DATABASE_URI": pg}) == f"{pg}&run_id=t1"
    assert (
        run_log_url_from_env("t1", env={"POSTGRES_URI": "postgres://h/db"})
        == "postgres://h/db?run_id=t1"
    )
    both = {"MAKER_GRAPH_RUNLOG_URL": "postgresql://ours/db", "DATABASE_URI": pg}
    assert run_log_url_from_env("t1", env=both) == "postgresql://ours/db?run_id=t1"
    # Not PostgreSQL: the server's own database URL is skipped, not misread as a path.
    assert run_log_url_from_env("t1", env={"DATABASE_URI": "sqlite:///x.db"}) is None
    assert run_log_url_from_env("t1", env={"MAKER_GRAPH_RUNLOG_URL": "/srv/runs"}) == "/srv/runs/t1"
    assert run_log_url_from_env("t1", env={"MAKER_GRAPH_RUNLOG_URL": " "}) is None
    with pytest.raises(ConfigurationError, match="postgresql:// URL"):
        run_log_url_from_env("t1", env={"MAKER_GRAPH_RUNLOG_URL": "sqlite:///one.db"})
    with pytest.raises(ConfigurationError, match="one run per thread"):
        run_log_url_from_env("t1", env={"DATABASE_URI": "postgresql://h/db?run_id=fixed"})
