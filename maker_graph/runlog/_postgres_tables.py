"""The PostgreSQL run log's table layout: the DDL, the step columns, the DDL lock.

Kept apart from the log's behaviour so the stored format is read in one place;
bump `SCHEMA_VERSION` whenever these tables change.
"""

from __future__ import annotations

SCHEMA_VERSION = "1"
"""Written into every run's row, so a later layout can tell these runs apart."""
COLUMNS = (
    "step",
    "action",
    "state_hash",
    "tally",
    "samples",
    "valid",
    "red_flags",
    "rounds",
    "input_tokens",
    "output_tokens",
    "decided_by",
)
"""The `steps` table's columns, in the order batches are written and read."""

# Every run-log DDL statement runs under this transaction-level lock, so two
# processes creating the tables at once do not trip over each other's catalog rows.
DDL_LOCK = 0x6D616B6572  # "maker"
DDL = """
CREATE SCHEMA IF NOT EXISTS {schema};
CREATE TABLE IF NOT EXISTS {schema}.runs (
    run_id         TEXT PRIMARY KEY,
    task           TEXT NOT NULL,
    params         TEXT NOT NULL,
    created        DOUBLE PRECISION NOT NULL,
    settings       TEXT NOT NULL,
    schema_version TEXT NOT NULL,
    writer         TEXT,
    writer_since   DOUBLE PRECISION
);
CREATE TABLE IF NOT EXISTS {schema}.steps (
    run_id        TEXT   NOT NULL REFERENCES {schema}.runs (run_id) ON DELETE CASCADE,
    step          BIGINT NOT NULL,
    action        TEXT   NOT NULL,
    state_hash    TEXT   NOT NULL,
    tally         TEXT   NOT NULL,
    samples       INTEGER NOT NULL,
    valid         INTEGER NOT NULL,
    red_flags     TEXT,
    rounds        INTEGER NOT NULL,
    input_tokens  BIGINT NOT NULL,
    output_tokens BIGINT NOT NULL,
    decided_by    TEXT   NOT NULL,
    PRIMARY KEY (run_id, step)
);
CREATE TABLE IF NOT EXISTS {schema}.batches (
    run_id       TEXT   NOT NULL REFERENCES {schema}.runs (run_id) ON DELETE CASCADE,
    batch        BIGINT NOT NULL,
    first_step   BIGINT NOT NULL,
    last_step    BIGINT NOT NULL,
    checkpoint   TEXT   NOT NULL,
    checksum     TEXT   NOT NULL,
    committed_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (run_id, batch)
);
CREATE TABLE IF NOT EXISTS {schema}.reservations (
    run_id  TEXT   PRIMARY KEY REFERENCES {schema}.runs (run_id) ON DELETE CASCADE,
    samples BIGINT NOT NULL
);
"""
