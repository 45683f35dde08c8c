"""`maker-graph tree --run-dir DIR`: print a recorded decomposition tree.

Shows, for every node, the problem and its answer, every decomposer proposal
(red flags included) with who proposed it, the discriminator's tally, and the
solver's or composer's vote. `--mermaid` prints a Mermaid flowchart instead,
for docs.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import RunLogError
from .app import app, fail

__all__ = ["tree"]


@app.command()
def tree(
    run_dir: Path = typer.Option(  # noqa: B008 - typer's idiom
        ..., "--run-dir", help="The run directory (holding tree.jsonl)."
    ),
    tree_id: str | None = typer.Option(
        None, "--tree", help="The tree to show (default: the last one recorded)."
    ),
    mermaid: bool = typer.Option(False, "--mermaid", help="Print a Mermaid flowchart."),
    list_trees: bool = typer.Option(False, "--list", help="List the recorded trees."),
) -> None:
    """Print the decomposition tree recorded in a run directory."""
    from ..recursive.record import load_trees
    from ..recursive.render import render_mermaid, render_text

    if not run_dir.exists():
        raise fail(f"--run-dir {run_dir} does not exist")
    try:
        trees = load_trees(run_dir)
    except RunLogError as exc:
        raise fail(str(exc)) from None
    if not trees:
        raise fail(f"the tree record in {run_dir} holds no tree")
    if list_trees:
        for t in trees:
            status = "ok" if (t.done or {}).get("ok") else ("failed" if t.done else "unfinished")
            typer.echo(
                f"{t.id}  {t.problem} = {t.answer if t.answer is not None else '?'}"
                f"  [{status}, {len(t.nodes)} nodes]"
            )
        return
    if tree_id is None:
        chosen = trees[-1]
    else:
        matches = [t for t in trees if t.id == tree_id]
        if not matches:
            known = ", ".join(t.id for t in trees[-5:])
            raise fail(f"no tree {tree_id!r} in {run_dir}; recorded: {known}")
        chosen = matches[-1]
    typer.echo(render_mermaid(chosen) if mermaid else render_text(chosen))
