"""Schema and migrations. Each component keeps its own ordered list of migration scripts; the
`schema_migrations` table records which have run, so a database made by any earlier version upgrades in place."""

from __future__ import annotations

CORE = [
    # 1: trajectories, steps, their history, annotations and lints
    """
    CREATE TABLE sources (
        name VARCHAR NOT NULL, kind VARCHAR NOT NULL, format VARCHAR, path VARCHAR, task VARCHAR,
        split VARCHAR, model VARCHAR, method VARCHAR, attempted INTEGER, created_at TIMESTAMP, meta VARCHAR
    );
    CREATE TABLE trajectories (
        id VARCHAR NOT NULL, source VARCHAR NOT NULL, task VARCHAR, split VARCHAR, qid VARCHAR,
        question VARCHAR, qnorm VARCHAR, gold VARCHAR, method VARCHAR, model VARCHAR, final_answer VARCHAR,
        reward BOOLEAN, em DOUBLE, f1 DOUBLE, status VARCHAR, error VARCHAR, tokens_in BIGINT, tokens_out BIGINT,
        latency_s DOUBLE, cost_usd DOUBLE, n_steps INTEGER, n_search INTEGER, prompt VARCHAR, meta VARCHAR,
        revision INTEGER, created_at TIMESTAMP, updated_at TIMESTAMP, updated_by VARCHAR, schema_version INTEGER
    );
    CREATE TABLE steps (
        trajectory_id VARCHAR NOT NULL, idx INTEGER NOT NULL, thought VARCHAR, action_raw VARCHAR,
        action_name VARCHAR, action_arg VARCHAR, observation VARCHAR, raw VARCHAR, obs_raw VARCHAR,
        train BOOLEAN, perturbed VARCHAR, original_observation VARCHAR, parse_error VARCHAR
    );
    CREATE TABLE revisions (
        trajectory_id VARCHAR NOT NULL, rev INTEGER NOT NULL, author VARCHAR, saved_at TIMESTAMP, reason VARCHAR,
        data VARCHAR
    );
    CREATE TABLE annotations (
        trajectory_id VARCHAR NOT NULL, seq INTEGER NOT NULL, author VARCHAR, made_at TIMESTAMP, status VARCHAR,
        labels VARCHAR, rating INTEGER, comment VARCHAR
    );
    CREATE TABLE lints (trajectory_id VARCHAR NOT NULL, kind VARCHAR NOT NULL, step INTEGER, detail VARCHAR);
    """,
]

MIGRATIONS: dict[str, list[str]] = {"core": CORE}

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (component VARCHAR, version INTEGER, applied_at TIMESTAMP)
"""


def register(component: str, scripts: list[str]) -> None:
    """Features that keep tables of their own add their migration list here."""
    MIGRATIONS[component] = scripts
