"""`maker-graph schema`, `validate` and `run`: declarative graph specs on the command line.

- `maker-graph schema` prints the spec's JSON Schema (commit it as
  `maker-graph.schema.json`; editors then check and complete specs).
- `maker-graph validate SPEC...` checks specs and lists every problem, located.
- `maker-graph run SPEC --input JSON` builds the graph, runs it once and prints
  the final state as JSON (`--stream` prints each node's update as it happens).
  A run that stops at an interrupt (an escalated vote) prints the interrupt as
  JSON and exits with code 3; with `--store` its checkpoints persist, and
  `--thread ID --resume VALUE` continues it with the human's answer.

Specs run no code. `--import MODULE` (or a `.py` file) imports a module first,
so its `@register` decorators run, and allows the spec's `MODULE:attribute`
paths: the only way a spec reaches your code.
"""

from __future__ import annotations

import importlib
import importlib.util
import json
import shlex
import sys
import uuid
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ConfigurationError, MakerGraphError, MakerRuntimeError, SpecError
from .app import app, fail

__all__ = ["INTERRUPTED", "run", "schema", "validate"]

INTERRUPTED = 3
"""`maker-graph run`'s exit code when the graph stopped at an interrupt awaiting a resume."""

_TYPES: dict[str, tuple[type[Any], ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "list": (list,),
    "dict": (dict,),
}

ImportOption = Annotated[
    list[str] | None,
    typer.Option(
        "--import",
        help="Import this module (or .py file) first so its @register components exist; "
        "also allows the spec's MODULE:attribute paths. Repeatable.",
    ),
]


def _spec_error(exc: SpecError) -> typer.Exit:
    lines = str(exc).splitlines()
    typer.echo(f"error: {lines[0]}", err=True)
    for line in lines[1:]:
        typer.echo(line, err=True)
    return typer.Exit(2)


def _refuse_shadowing(target: str, name: str, path: Path) -> None:
    """A `.py` file named like a module that exists (`json.py`) would replace it for the
    whole process: refuse instead of importing it under that name."""
    loaded = sys.modules.get(name)
    if loaded is not None and Path(getattr(loaded, "__file__", "") or "").resolve() != path:
        raise fail(f"--import {target}: a module named {name!r} is already loaded; rename the file")
    try:
        found = importlib.util.find_spec(name)
    except (ImportError, ValueError):
        found = None
    if found is not None and found.origin and Path(found.origin).resolve() != path:
        raise fail(
            f"--import {target}: it would replace the module {name!r} "
            f"({found.origin}); rename the file"
        )


def _import_module(target: str) -> None:
    """Import a module by name; the working directory is searched only for this import,
    and last, so a `tiktoken.py` lying there never replaces a real module, now or later."""
    cwd = str(Path.cwd())
    added = cwd not in sys.path
    if added:
        sys.path.append(cwd)
    try:
        importlib.import_module(target)
    finally:
        if added:
            sys.path.remove(cwd)


def _import(targets: Sequence[str]) -> list[str]:
    """Import modules or .py files; returns the module names to allow-list."""
    names: list[str] = []
    for target in targets:
        try:
            if target.endswith(".py"):
                path = Path(target).resolve()
                if not path.is_file():
                    raise fail(f"--import {target}: no such file")
                name = path.stem
                _refuse_shadowing(target, name, path)
                spec = importlib.util.spec_from_file_location(name, path)
                if spec is None or spec.loader is None:
                    raise fail(f"--import {target}: cannot import this file")
                module = importlib.util.module_from_spec(spec)
                sys.modules[name] = module
                spec.loader.exec_module(module)
            else:
                name = target
                _import_module(target)
        except typer.Exit:
            raise
        except SpecError as exc:
            raise _spec_error(exc) from None
        except Exception as exc:  # noqa: BLE001 - the user's module failed: say so in one line
            raise fail(f"--import {target}: {type(exc).__name__}: {exc}") from None
        names.append(name)
    return names


@app.command("schema")
def schema(
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to this file, not stdout.")
    ] = None,
) -> None:
    """Print the JSON Schema of graph specs (generated from the spec's models)."""
    from ..config import spec_json_schema

    text = json.dumps(spec_json_schema(), indent=2, ensure_ascii=False) + "\n"
    if output is None:
        typer.echo(text, nl=False)
        return
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise fail(f"cannot write {output}: {exc.strerror or exc}") from None


@app.command("validate")
def validate(
    specs: Annotated[list[Path], typer.Argument(help="Spec files (.yaml, .yml or .json).")],
    imports: ImportOption = None,
    build: Annotated[
        bool,
        typer.Option(
            "--build",
            help="Also build the graph: models, provider packages, "
            "API key variables, task parameters.",
        ),
    ] = False,
) -> None:
    """Check graph specs; list every problem with its location."""
    from ..config import load_graph, load_spec

    allow = _import(imports or [])
    failed = 0
    for path in specs:
        try:
            if build:
                graph = load_graph(path, allow_imports=allow)
                nodes = len(graph.nodes)
                typer.echo(f"ok: {path} builds ({nodes} nodes)")
            else:
                spec = load_spec(path, allow_imports=allow)
                typer.echo(
                    f"ok: {path} ({spec.name}: {len(spec.nodes)} nodes, "
                    f"{len(spec.edge_list())} edges, {len(spec.routes)} routes)"
                )
        except SpecError as exc:
            failed += 1
            lines = str(exc).splitlines()
            typer.echo(f"error: {lines[0]}", err=True)
            for line in lines[1:]:
                typer.echo(line, err=True)
    if failed:
        raise typer.Exit(1)


def _read_input(text: str) -> dict[str, Any]:
    if text.startswith("@"):
        try:
            text = Path(text[1:]).read_text(encoding="utf-8")
        except OSError as exc:
            raise fail(f"--input {text}: {exc.strerror or exc}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise fail(f"--input is not JSON: {exc.msg} at position {exc.pos}") from None
    except RecursionError:
        raise fail("--input is nested too deeply") from None
    except ValueError as exc:  # e.g. an integer past Python's 4,300-digit limit
        raise fail(f"--input: {str(exc).splitlines()[0]}") from None
    if not isinstance(value, dict):
        raise fail(f"--input must be a JSON object of state keys, got {type(value).__name__}")
    return value


def _check_input(values: Mapping[str, Any], spec: Any) -> None:
    keys = spec.state_keys()
    allowed = spec.input if spec.input is not None else list(keys)
    unknown = [k for k in values if k not in allowed]
    if unknown:
        raise fail(
            f"--input: unknown key(s) {', '.join(unknown)}; this graph takes {', '.join(allowed)}"
        )
    for name, value in values.items():
        types = _TYPES.get(keys[name].type)
        bad = types is not None and (
            not isinstance(value, types)
            or (isinstance(value, bool) and keys[name].type in ("int", "float"))
        )
        if bad:
            raise fail(f"--input: {name} must be {keys[name].type}, got {json.dumps(value)}")


@app.command("run")
def run(
    spec_path: Annotated[Path, typer.Argument(metavar="SPEC", help="The spec file.")],
    input_json: Annotated[
        str, typer.Option("--input", "-i", help="The graph's input: a JSON object, or @FILE.")
    ] = "{}",
    imports: ImportOption = None,
    stream: Annotated[
        bool, typer.Option("--stream", help="Print each node's update as a JSON line first.")
    ] = False,
    store: Annotated[
        str | None,
        typer.Option(
            "--store",
            help="Keep the graph's checkpoints here (a directory, a SQLite file or a "
            "postgresql:// URL) so an interrupted run can be resumed by a later command.",
        ),
    ] = None,
    thread: Annotated[
        str | None,
        typer.Option("--thread", help="The thread to run or resume (default: a new one)."),
    ] = None,
    resume: Annotated[
        str | None,
        typer.Option(
            "--resume",
            help="Resume the interrupted --thread with this value (JSON, or plain text); "
            "needs the same --store.",
        ),
    ] = None,
    timeout: Annotated[
        float | None,
        typer.Option(
            "--timeout",
            help="Seconds one provider call may take in total, for every provider model "
            "of the spec (default: each model's timeout, else 120); then it counts as a "
            "timeout and is retried.",
        ),
    ] = None,
) -> None:
    """Build a spec's graph, run it once on the input, print the final state as JSON."""
    from langgraph.types import Command

    from ..checkpointers import open_checkpointer
    from ..config import load_graph, load_spec

    if resume is not None and (store is None or thread is None):
        raise fail(
            "--resume continues a stored thread: pass the --store and --thread "
            "that the interrupted run printed"
        )
    if timeout is not None and not 0 < timeout <= 3600:
        raise fail(f"--timeout must be > 0 and <= 3600 seconds, got {timeout}")
    values = _read_input(input_json)
    allow = _import(imports or [])
    try:
        spec = load_spec(spec_path, allow_imports=allow)
        if timeout is not None:
            spec = _with_timeout(spec, timeout)
        _check_input(values, spec)
        builder = load_graph(spec, allow_imports=allow)
    except SpecError as exc:
        raise _spec_error(exc) from None
    except ConfigurationError as exc:
        raise fail(str(exc)) from None
    thread_id = thread or uuid.uuid4().hex
    try:
        with open_checkpointer(store) as saver:
            graph = builder.compile(name=spec.name, checkpointer=saver)
            config: Any = {"configurable": {"thread_id": thread_id}}
            start: Any = values if resume is None else Command(resume=_resume_value(resume))
            final, pending = _drive(graph, start, config, stream=stream, output=spec.output)
    except (MakerRuntimeError, ConfigurationError) as exc:
        raise fail(str(exc), code=1) from None
    except MakerGraphError as exc:  # pragma: no cover - every error is one of the above
        raise fail(str(exc), code=1) from None
    except (KeyboardInterrupt, SystemExit, typer.Exit):
        raise
    except Exception as exc:  # noqa: BLE001 - a node's own failure: one line, not a traceback
        raise fail(_node_failure(exc), code=1) from None
    if pending:
        typer.echo(
            json.dumps(
                _interrupt_report(pending, spec_path, store, thread_id),
                indent=2,
                default=str,
                ensure_ascii=False,
            )
        )
        raise typer.Exit(INTERRUPTED)
    typer.echo(json.dumps(final, indent=2, default=str, ensure_ascii=False))


def _with_timeout(spec: Any, timeout: float) -> Any:
    """The spec with every provider model's per-call timeout set to `timeout`."""
    from ..config.spec import ProviderModel

    models = {
        name: model.model_copy(update={"timeout": timeout})
        if isinstance(model, ProviderModel)
        else model
        for name, model in spec.models.items()
    }
    return spec.model_copy(update={"models": models})


def _node_failure(exc: BaseException) -> str:
    """One line for an exception a node raised: which node (LangGraph notes it), what."""
    node = ""
    for note in getattr(exc, "__notes__", ()):
        if note.startswith("During task with name '"):
            node = note.split("'")[1]
    first = (str(exc).splitlines() or [""])[0]
    where = f"node {node!r} failed" if node else "the graph failed"
    return f"{where}: {type(exc).__name__}: {first}"


def _resume_value(text: str) -> Any:
    # A resume value is usually an answer label; JSON lets it be anything a parser returns.
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def _drive(
    graph: Any, start: Any, config: Any, *, stream: bool, output: Sequence[str] | None
) -> tuple[dict[str, Any], list[Any]]:
    """Run to the end or to an interrupt: (final state, pending interrupts)."""
    final: dict[str, Any] = {}
    pending: list[Any] = []
    for mode, chunk in graph.stream(start, config, stream_mode=["updates", "values"]):
        if mode == "updates":
            if "__interrupt__" in chunk:
                pending.extend(chunk["__interrupt__"])
            elif stream:
                typer.echo(json.dumps(chunk, default=str))
        else:
            final = chunk
    if output is not None:  # as invoke does: only the spec's output keys
        final = {key: final[key] for key in output if key in final}
    return final, pending


def _interrupt_report(
    pending: Sequence[Any], spec_path: Path, store: str | None, thread_id: str
) -> dict[str, Any]:
    report: dict[str, Any] = {
        "interrupted": [{"id": item.id, "value": item.value} for item in pending],
        "thread_id": thread_id,
    }
    if store is None:
        report["resume"] = (
            "not resumable: this run kept no checkpoints; run it again "
            "with --store DIR to be able to resume"
        )
    else:
        report["resume"] = (
            f"maker-graph run {shlex.quote(str(spec_path))} --store "
            f"{shlex.quote(store)} --thread {thread_id} --resume ANSWER"
        )
    return report
