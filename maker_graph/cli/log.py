"""`maker-graph log`: read a run log: `export` its steps as JSON lines, `verify` its checksums."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import typer

from ..errors import ConfigurationError, RunLogError
from .app import app, fail

__all__ = ["export", "log_app", "verify"]

log_app = typer.Typer(
    name="log",
    help="Inspect a run log.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(log_app, name="log")


@log_app.command()
def export(
    run_dir: str = typer.Option(..., "--run-dir", help="The run directory (or a run log URL)."),
) -> None:
    """Write every committed step to stdout as one JSON object per line, in step order.

    Each line has `step`, the action (for Hanoi `move`, as `[disk, from_peg, to_peg]`),
    `state_hash`, `tally` (vote counts, the winner's first), `samples`, `valid`,
    `red_flagged`, `red_flags` (by reason), `rounds`, `input_tokens`, `output_tokens`
    and `decided_by`.
    """
    from ..runlog import open_run_log

    try:
        _check_dir(run_dir)
        log = open_run_log(run_dir, readonly=True)
    except (ConfigurationError, RunLogError) as exc:
        raise fail(str(exc)) from None
    try:
        meta = log.meta()
        if meta is None:
            raise RunLogError(f"no run in {run_dir}")
    except RunLogError as exc:
        log.close()  # a damaged or empty log is closed too, not left to the collector
        raise fail(str(exc)) from None
    name = json.dumps(str(meta.settings.get("action_name", "action")))
    write = sys.stdout.write
    try:
        # The stored action and tally are JSON text already: splice them in rather than
        # decode and re-encode a million of them. Each batch is checked against its
        # checksum before any of its rows is written: a damaged batch stops the export
        # with an error naming it (exit 1), its rows never printed.
        for r in log.verified_steps():
            write(
                f'{{"step": {r.step}, {name}: {r.action}, '
                f'"state_hash": {json.dumps(r.state_hash)}, '
                f'"tally": {r.tally}, "samples": {r.samples}, "valid": {r.valid}, '
                f'"red_flagged": {r.samples - r.valid}, "red_flags": {r.red_flags or "{}"}, '
                f'"rounds": {r.rounds}, "input_tokens": {r.input_tokens}, '
                f'"output_tokens": {r.output_tokens}, "decided_by": {json.dumps(r.decided_by)}}}\n'
            )
    except BrokenPipeError:  # `| head` closed the pipe: not an error
        sys.stderr.close()
    except RunLogError as exc:
        sys.stdout.flush()
        raise fail(str(exc), code=1) from None
    finally:
        log.close()


@log_app.command()
def verify(
    run_dir: str = typer.Option(..., "--run-dir", help="The run directory (or a run log URL)."),
) -> None:
    """Recheck the checksum of every committed batch of a run log."""
    from ..runlog import open_run_log

    try:
        _check_dir(run_dir)
        log = open_run_log(run_dir, readonly=True)
        try:
            checked = log.verify()
            cp = log.checkpoint()
        finally:
            log.close()
    except (ConfigurationError, RunLogError) as exc:
        raise fail(str(exc), code=1) from None
    state = "complete" if cp is not None and cp.done else "not complete"
    typer.echo(f"ok: {checked:,} steps in intact batches; the run is {state}")


def _check_dir(run_dir: str) -> None:
    if "://" not in run_dir and not run_dir.startswith("sqlite:") and not Path(run_dir).is_dir():
        raise ConfigurationError(f"no run directory at {run_dir}")
