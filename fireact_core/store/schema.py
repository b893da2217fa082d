"""Schema and migrations, all of them: each component keeps its own ordered list of migration scripts; the
`schema_migrations` table records which have run, so a database made by any earlier version upgrades in place.
No other module adds a table: a feature's tables are one more list here (or one more script at the end of its
list), so importing a module never changes what a database holds."""

from __future__ import annotations

from .keys import KEYS

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

# The word index behind free-text search: each trajectory's words (letters and digits, lower-cased) with the
# revision they were read from; brought up to date before a search, so imports and edits are always found.
CURATION = ["""
    CREATE TABLE search_docs (trajectory_id VARCHAR NOT NULL, revision INTEGER NOT NULL);
    CREATE TABLE search_terms (word VARCHAR NOT NULL, trajectory_id VARCHAR NOT NULL);
"""]

DATASETS = [
    # 1: versions, their members, and copies of the members' rows (trajectory and steps) per revision
    """
    CREATE TABLE dataset_versions (
        name VARCHAR PRIMARY KEY, spec VARCHAR NOT NULL, seed BIGINT, created_at TIMESTAMP, created_by VARCHAR,
        content_hash VARCHAR, size INTEGER, n_train INTEGER, n_val INTEGER, cells VARCHAR, parent VARCHAR,
        loss_mask VARCHAR, note VARCHAR
    );
    CREATE TABLE dataset_members (
        dataset VARCHAR NOT NULL, position INTEGER NOT NULL, trajectory_id VARCHAR NOT NULL, rev INTEGER,
        split VARCHAR NOT NULL, task VARCHAR, method VARCHAR
    );
    CREATE TABLE dataset_snapshot_trajectories AS SELECT * FROM trajectories WHERE false;
    CREATE TABLE dataset_snapshot_steps AS SELECT * FROM steps WHERE false;
    ALTER TABLE dataset_snapshot_steps ADD COLUMN revision INTEGER;
    """,
]

FORKS = [
    """
    CREATE TABLE forks (
        child_id VARCHAR PRIMARY KEY, parent_id VARCHAR NOT NULL, parent_revision INTEGER NOT NULL,
        fork_step INTEGER NOT NULL, run VARCHAR, kind VARCHAR NOT NULL, created_at TIMESTAMP
    );
    """,
]

TRAINING = [
    """
    CREATE TABLE train_jobs (
        id VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, status VARCHAR NOT NULL, dataset VARCHAR, base_model VARCHAR,
        out VARCHAR, config VARCHAR, steps INTEGER, loss_first DOUBLE, loss_last DOUBLE, error VARCHAR,
        pid INTEGER, remote_id VARCHAR, created_at TIMESTAMP, updated_at TIMESTAMP
    );
    CREATE TABLE models (
        name VARCHAR PRIMARY KEY, kind VARCHAR NOT NULL, path_or_id VARCHAR NOT NULL, base_model VARCHAR,
        dataset VARCHAR, job VARCHAR, config VARCHAR, created_at TIMESTAMP
    );
    """,
]

RUNS = [
    """
    CREATE TABLE runs (
        name VARCHAR PRIMARY KEY, task VARCHAR, split VARCHAR, method VARCHAR, model VARCHAR, settings VARCHAR,
        status VARCHAR, total INTEGER, attempted INTEGER, finished INTEGER, unfinished INTEGER, failed INTEGER,
        em_sum DOUBLE, f1_sum DOUBLE, tokens_in BIGINT, tokens_out BIGINT, cost_usd DOUBLE, cancel BOOLEAN,
        error VARCHAR, pid INTEGER, started_at TIMESTAMP, heartbeat TIMESTAMP, ended_at TIMESTAMP
    );
    CREATE TABLE run_events (run VARCHAR NOT NULL, seq INTEGER NOT NULL, logged_at TIMESTAMP, kind VARCHAR,
                             message VARCHAR);
    CREATE TABLE search_cache (backend VARCHAR NOT NULL, query VARCHAR NOT NULL, result VARCHAR,
                               cached_at TIMESTAMP, PRIMARY KEY (backend, query));
    CREATE TABLE prompt_versions (task VARCHAR NOT NULL, method VARCHAR NOT NULL, version INTEGER NOT NULL,
                                  examples VARCHAR, author VARCHAR, note VARCHAR, saved_at TIMESTAMP);
    CREATE TABLE model_prices (model VARCHAR PRIMARY KEY, input_per_1m DOUBLE, output_per_1m DOUBLE);
    """,
]

TEAM = ["""
    CREATE TABLE users (
        name VARCHAR PRIMARY KEY, role VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL, created_by VARCHAR,
        updated_at TIMESTAMP, updated_by VARCHAR
    );
    CREATE TABLE assignments (
        trajectory_id VARCHAR NOT NULL, annotator VARCHAR NOT NULL, assigned_at TIMESTAMP NOT NULL,
        assigned_by VARCHAR, PRIMARY KEY (trajectory_id, annotator)
    );
    CREATE TABLE adjudications (
        trajectory_id VARCHAR PRIMARY KEY, status VARCHAR, labels VARCHAR, decided_by VARCHAR NOT NULL,
        decided_at TIMESTAMP NOT NULL, seq INTEGER NOT NULL, note VARCHAR
    );
    CREATE TABLE owners (
        kind VARCHAR NOT NULL, id VARCHAR NOT NULL, created_by VARCHAR NOT NULL, created_at TIMESTAMP NOT NULL,
        PRIMARY KEY (kind, id)
    );
"""]

# made again (empty) by a staged import that ends while no other holds claims: see store/staging.py
IMPORT_CLAIMS = "CREATE TABLE import_claims (id VARCHAR PRIMARY KEY, import_id VARCHAR NOT NULL)"
STAGING = [
    """
    CREATE TABLE pending_imports (
        import_id VARCHAR PRIMARY KEY, pid INTEGER, host VARCHAR, started_at TIMESTAMP, heartbeat TIMESTAMP,
        done BOOLEAN NOT NULL DEFAULT false
    );
    """ + IMPORT_CLAIMS + ";\n    ",
]

# Every component, in the order a new database runs them; a database records (component, version) per
# script, so a list only ever grows at its end, and a component keeps its name.
MIGRATIONS: dict[str, list[str]] = {
    "core": CORE, "curation": CURATION, "datasets": DATASETS, "forks": FORKS, "training": TRAINING, "runs": RUNS,
    "team": TEAM,
    "keys": KEYS,  # after every feature's tables: it declares their keys
    "staging": STAGING,  # staged imports under way (they declare their own keys)
}

BOOKKEEPING = """
CREATE TABLE IF NOT EXISTS schema_migrations (component VARCHAR, version INTEGER, applied_at TIMESTAMP)
"""
