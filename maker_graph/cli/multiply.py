"""`maker-graph multiply A B`: long multiplication by recursive LLM decomposition.

Decomposers propose splits, discriminators vote among them, solvers multiply
the leaves and composers shift and add, every role voted first-to-ahead-by-k.
The answer is then checked against Python's exact integers. With `--run-dir`
the whole tree (every proposal, every vote) is appended to `DIR/tree.jsonl`,
which `maker-graph tree --run-dir DIR` prints.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path
from typing import Any

import typer

from .._sync import run_to_end
from ..errors import ConfigurationError, MakerRuntimeError, RunLogError
from ._options import Timeout
from .app import app, fail

__all__ = ["multiply"]

_MAX_DIGITS = 400


@app.command()
def multiply(
    a: str = typer.Argument(..., help="First factor (a non-negative integer)."),
    b: str = typer.Argument(..., help="Second factor (a non-negative integer)."),
    k: int = typer.Option(3, "--k", help="Voting margin of every role."),
    model: str = typer.Option(
        "simulated",
        "--model",
        help="simulated (fast, default), simulated-chat (LangChain chat models with "
        "structured output), or PROVIDER:MODEL (e.g. openai:gpt-4.1-mini).",
    ),
    error_rate: float = typer.Option(
        0.05, "--error-rate", help="Simulated per-call error rate of every role."
    ),
    seed: int = typer.Option(0, "--seed", help="Seed of the simulated agents."),
    run_dir: Path | None = typer.Option(  # noqa: B008 - typer's idiom
        None, "--run-dir", help="Append the tree record to DIR/tree.jsonl."
    ),
    candidates: int = typer.Option(3, "--candidates", help="Valid proposals per node."),
    max_depth: int = typer.Option(8, "--max-depth", help="Depth at which nodes are solved."),
    leaf_digits: int = typer.Option(
        3, "--leaf-digits", help="Factors this short are solved directly (simulated agents)."
    ),
    max_samples: int | None = typer.Option(
        None, "--max-samples", help="Sample budget of one vote (default 10k + 20)."
    ),
    max_samples_per_node: int | None = typer.Option(
        None, "--max-samples-per-node", help="Sample budget of one tree node, all roles."
    ),
    max_nodes: int = typer.Option(512, "--max-nodes", help="Most nodes the tree may have."),
    timeout: Timeout = 120.0,
    show_tree: bool = typer.Option(False, "--tree", help="Print the tree after the answer."),
    as_json: bool = typer.Option(False, "--json", help="Print the result as one JSON object."),
) -> None:
    """Multiply A by B with recursive decomposition and voting at every node."""
    for name, value in (("A", a), ("B", b)):
        if not value.isdigit():
            raise fail(f"{name} must be a non-negative integer (digits only), got {value!r}")
        if len(value) > _MAX_DIGITS:
            raise fail(f"{name} has {len(value)} digits; at most {_MAX_DIGITS} are supported")
    if k < 1:
        raise fail(f"--k must be >= 1, got {k}")
    if not 0.0 <= error_rate < 0.5:
        raise fail(f"--error-rate must be in [0, 0.5), got {error_rate}")
    if leaf_digits < 1:
        raise fail(f"--leaf-digits must be >= 1, got {leaf_digits}")
    if max_samples is not None and max_samples < k:
        raise fail(f"--max-samples must be >= --k ({k}), got {max_samples}")
    from ..recursive import JsonlTreeRecorder, MemoryTreeRecorder, RecursionPolicy, load_events
    from ..recursive.render import render_text
    from ..tasks.multiplication import Multiplier, multiplication_roles

    try:
        policy = RecursionPolicy(
            max_depth=max_depth,
            candidates=candidates,
            max_nodes=max_nodes,
            max_samples_per_node=max_samples_per_node,
        )
        models, label = _models(model, error_rate, seed, leaf_digits)
        roles = multiplication_roles(models, k=k, max_samples=max_samples, leaf_digits=leaf_digits)
        roles = _with_timeout(roles, timeout)
    except ConfigurationError as exc:
        raise fail(str(exc)) from None

    memory = MemoryTreeRecorder()
    recorders: list[Any] = [memory]
    try:
        if run_dir is not None:
            recorders.append(JsonlTreeRecorder(run_dir))
    except RunLogError as exc:
        raise fail(str(exc)) from None
    recorder = _Tee(recorders)
    multiplier = Multiplier(roles, policy=policy, recorder=recorder)
    failure: MakerRuntimeError | None = None
    result = None
    try:
        # The library's loop, not asyncio.run's: a hung host-name lookup is abandoned
        # with its call instead of holding the command's exit (maker_graph._sync).
        result = run_to_end(multiplier.multiply(int(a), int(b)))
    except MakerRuntimeError as exc:
        failure = exc
    finally:
        for rec in recorders[1:]:
            rec.close()

    trees = load_events(memory.events)
    tree = trees[-1] if trees else None
    if as_json:
        out = {
            "a": a,
            "b": b,
            "k": k,
            "model": label,
            "answer": None if result is None else result.answer,
            "correct": bool(result and result.correct),
            "error": None if failure is None else str(failure),
            "stats": {} if result is None else result.stats,
            "tree_id": None if tree is None else tree.id,
            "run_dir": None if run_dir is None else str(run_dir),
        }
        typer.echo(json.dumps(out))
    else:
        typer.echo(f"multiply: {a} × {b}, k = {k}, model {label}")
        if show_tree and tree is not None:
            typer.echo(render_text(tree))
        if result is not None:
            s = result.stats
            typer.echo(f"answer: {result.answer}")
            typer.echo(
                f"correct: {'true' if result.correct else 'false'} "
                f"(checked against Python integers)"
            )
            typer.echo(
                f"tree: {s.get('nodes')} nodes, {s.get('leaves')} leaves, depth "
                f"{s.get('depth')}, {s.get('samples')} samples, "
                f"{s.get('discriminator_votes')} discriminator vote(s), tokens "
                f"{s.get('input_tokens', 0):,} in / {s.get('output_tokens', 0):,} out"
            )
        if run_dir is not None:
            typer.echo(
                f"tree record: {Path(run_dir) / 'tree.jsonl'} "
                f"(show it: maker-graph tree --run-dir {run_dir})"
            )
    if failure is not None:
        typer.echo(f"error: {failure}", err=True)
        raise typer.Exit(1)
    if result is not None and not result.correct:
        raise typer.Exit(1)


class _Tee:
    def __init__(self, recorders: list[Any]) -> None:
        self.recorders = recorders

    def write(self, event: dict[str, Any]) -> None:
        for rec in self.recorders:
            rec.write(dict(event))


def _with_timeout(roles: Any, timeout: float) -> Any:
    """`roles` with every role's provider calls bounded by `timeout` seconds in total."""
    from dataclasses import replace

    from ..sampling import ProviderRetry

    retry = ProviderRetry(timeout=timeout)  # ConfigurationError if not > 0
    names = ("decomposer", "discriminator", "solver", "composer")
    return replace(
        roles,
        **{
            name: replace(role, policy=replace(role.policy, retry=retry))
            for name in names
            if (role := getattr(roles, name)) is not None
        },
    )


def _models(model: str, error_rate: float, seed: int, leaf_digits: int) -> tuple[Any, str]:
    """The role models for a `--model` value, and a label for it."""
    from ..providers import ProviderOptions, parse_model_spec, resolve_chat_model
    from ..tasks.multiplication import RoleErrors, simulated_models

    spec = parse_model_spec(model)
    if spec.simulated:
        errors = RoleErrors.uniform(error_rate, seed=seed)
        if spec.error_overrides:
            try:
                errors = RoleErrors(
                    **{
                        role: replace(errors.of(role), **spec.error_overrides)
                        for role in ("decomposer", "discriminator", "solver", "composer")
                    }
                )
            except (TypeError, ValueError) as exc:
                raise ConfigurationError(f"model {model!r}: {exc}") from None
        kind = "chat" if spec.provider == "simulated-chat" else "sampler"
        models = simulated_models(errors, kind=kind, leaf_digits=leaf_digits)
        return models, f"{spec.text} (error rate {error_rate:g} per call, seed {seed})"
    return resolve_chat_model(spec, ProviderOptions()), spec.text
