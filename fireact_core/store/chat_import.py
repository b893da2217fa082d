"""OpenAI chat JSONL read and parsed inside DuckDB, for imports.

DuckDB's `read_json` reads the file on every core. A row is parsed here, in SQL, when it is regular: its
messages have a string "role" and "content" (and no "weight" or "train" but null), the question comes first and
is not blank, user and assistant turns alternate, and every assistant turn reads "Thought: ...\\nAction: tool[argument]"
on two lines with one known tool. Such a row gives exactly what the Python reader would
(`io.formats.fireact.trajectory_from_messages`, `io.parsing.parse_model_turn`, `io.lint.lint_trajectory`), and
the SQL is built from the Python side's own rules: the prefixes, the tool names, the reward and reflection
patterns, the method names and the checks' constants are imported, never retyped. Every other row comes back for
the Python reader, so the rules that decide anything unusual live in one place. The caller adds what needs
Python (ids, the question key, the task) and the importer writes both kinds in file order, inside its transaction.

The staging tables are temporary tables of the import's connection, dropped when it ends.
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

import pyarrow as pa

from ..io.lint import DETAIL_CHARS, LINT_KINDS, NONE_OBSERVATION
from ..io.parsing import (ACTION, OBSERVATION, QUESTION_PREFIX, REFLECTION_RE, REFLECTION_WORD, REWARD_RE, THOUGHT,
                          TRUE_REWARDS)
from ..records import FINISH, KNOWN_TOOLS, METHODS, SCHEMA_VERSION, SEARCH, now
from .connection import Error, naive
from .repository import Repository
from .trajectories import STEP_COLUMNS, STEP_SCHEMA, TRAJ_COLUMNS, _dumps, register

# DuckDB reads a content that is not a JSON string as its JSON text (5 as "5"); `_plain` tells such a text apart
MESSAGES = "STRUCT(role VARCHAR, content VARCHAR, weight JSON, train JSON)[]"
STAGE = ["_chat_s", "_chat_i", "_chat_t", "_chat_lints", "_chat_k"]
FORMAT_META = {"format": "openai-jsonl"}  # what the chat reader puts in every trajectory's meta


def _lit(text: str) -> str:
    """A SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


def _kind(name: str) -> str:
    """A lint kind as a SQL literal; only the kinds `io.lint` knows."""
    if name not in LINT_KINDS:
        raise ValueError(f"unknown lint kind {name!r}")
    return _lit(name)


def _method(name: str) -> str:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}")
    return _lit(name)


def _re2(pattern: re.Pattern[str]) -> str:
    """A Python pattern for DuckDB's RE2, as a SQL literal: Python's Unicode `\\w` spelled out, its ignore-case
    flag inline. Only what the patterns used here need."""
    text = pattern.pattern.replace(r"\w", r"[\p{L}\p{N}_]")
    return _lit(("(?i)" if pattern.flags & re.IGNORECASE else "") + text)


@cache
def _space() -> str:
    """What Python's `str.strip()` removes (`str.isspace`), as an RE2 class (Unicode has no white space beyond
    the Basic Multilingual Plane)."""
    return "[" + "".join(f"\\x{{{ord(c):x}}}" for c in map(chr, range(0x10000)) if c.isspace()) + "]"


def _plain(text: str) -> str:
    """Whether a content read as text was a JSON string in the file: not NULL, and not a JSON value other than a
    string (what a number, object, ... reads as). A string that happens to read as one is sent to the Python
    reader too; a text starting with a letter, as every regular turn does, is told at its first character."""
    return f"({text} IS NOT NULL AND CASE WHEN json_valid({text}) THEN json_type({text}) = 'VARCHAR' ELSE true END)"


def _sub(text: str, start: str | int, end: str | int | None = None) -> str:
    """DuckDB's slice `text[start:end]` (characters `start` to `end`, from 1, `end` included; None: to the end) for
    `start` >= 1 and `end` >= 0, as `substr`, which DuckDB reads several times faster than a slice in ASCII text
    (0.02 s against 0.18 s for 600,000 observations)."""
    if end is None:
        return f"substr({text}, {start})"
    return f"substr({text}, {start}, greatest(({end}) - ({start}) + 1, 0))"


def _strip_prefix(col: str, prefix: str) -> tuple[str, str]:
    """(the text after `prefix` where `col` starts with it, else `col`; the verbatim text where it does not)."""
    starts = f"starts_with({col}, {_lit(prefix)})"
    return (f"CASE WHEN {starts} THEN {_sub(col, len(prefix) + 1)} ELSE {col} END",
            f"CASE WHEN {starts} THEN NULL ELSE {col} END")


@cache
def stage_sql() -> str:
    """One step per assistant turn (message k, from 2 in twos), its observation the user turn after it, straight
    from the file in file order, on every core (a record with fewer than two messages, or that DuckDB could not
    read, gives one placeholder). `ok`: the turn reads THOUGHT ...\\nACTION tool[argument] with one known tool and
    one '[' (`parse_model_turn`'s regular turn), and the turns around it are a string question (k = 2) and a string
    observation or nothing. `f`: the step with the last observation. `start`: the first row of a record;
    NUMBER_SQL then gives each row its record's index i (record i is the file's i-th non-blank line). Numbering
    records while reading would take one core."""
    observation, obs_raw = _strip_prefix("o", OBSERVATION)
    tools = ", ".join(_lit(t) for t in KNOWN_TOOLS)
    action_at = len(ACTION)
    # each slice as DuckDB reads `x[a:b]`, where a negative end counts from the end of the text
    after_thought = len(THOUGHT) + 1
    thought = f"CASE WHEN nl > 0 THEN {_sub('c', after_thought, 'nl - 1')} ELSE {_sub('c', after_thought)} END"
    name = f"CASE WHEN b > 0 THEN {_sub('raw', 1, 'b - 1')} ELSE raw END"
    return f"""
    CREATE OR REPLACE TEMP TABLE _chat_s AS
    SELECT idx <= 0 AS start, idx, f, last, readable, question, thought, raw AS action_raw, name AS action_name,
           CASE WHEN b > 0 THEN {_sub("raw", "b + 1", "length(raw) - 1")} END AS action_arg,
           {observation} AS observation, {obs_raw} AS obs_raw,
           coalesce(turn_ok AND {_sub("c", "nl + 1", f"nl + {action_at}")} = {_lit(ACTION)} AND strpos(raw, chr(10)) = 0
                    AND ends_with(raw, ']') AND lower(name) IN ({tools}) AND strpos({_sub("raw", "b + 1")}, '[') = 0,
                    false) AS ok
    FROM (SELECT *, {thought} AS thought, {name} AS name
    FROM (SELECT *, strpos(raw, '[') AS b
    FROM (SELECT *, {_sub("c", f"nl + {action_at + 1}")} AS raw
    FROM (SELECT *, strpos(c, chr(10)) AS nl
    FROM (SELECT k // 2 - 1 AS idx, n // 2 - 1 AS last, n // 2 - 1 - (n + 1) % 2 AS f, readable,
                 q.content AS question, a.content AS c, u.content AS o,
                 a.role = 'assistant' AND a.weight IS NULL AND a.train IS NULL AND starts_with(a.content, {_lit(THOUGHT)})
                 AND (k > 2 OR q.role = 'user' AND {_plain("q.content")}
                      AND NOT regexp_full_match(q.content, {_lit("(" + re.escape(QUESTION_PREFIX) + ")?" + _space() + "*")}))
                 AND (k = n OR u.role = 'user' AND u.weight IS NULL AND u.train IS NULL AND {_plain("u.content")}) AS turn_ok
    FROM (SELECT k, n, l[k] AS a, l[k + 1] AS u, CASE WHEN k = 2 THEN l[1] END AS q, l IS NOT NULL AS readable
    FROM (SELECT l, len(l) AS n, unnest(CASE WHEN len(l) >= 2 THEN generate_series(2, len(l), 2) ELSE [0] END) AS k
    FROM (SELECT messages AS l
          FROM read_json($path, format = 'newline_delimited', records = 'true', columns = {{'messages': '{MESSAGES}'}},
                         ignore_errors = true, maximum_object_size = $max_bytes)))))))))
"""


NUMBER_SQL = [
    """CREATE OR REPLACE TEMP TABLE _chat_i AS
       SELECT rowid AS r, sum(start::INTEGER) OVER (ORDER BY rowid ROWS UNBOUNDED PRECEDING) - 1 AS i FROM _chat_s""",
    "ALTER TABLE _chat_s ADD COLUMN i BIGINT",
    "UPDATE _chat_s SET i = x.i FROM _chat_i x WHERE _chat_s.rowid = x.r",
    "DROP TABLE _chat_i",
]


# a trajectory is parsed here only when every turn is regular: the others' rows go
IRREGULAR_SQL = "DELETE FROM _chat_s WHERE i IN (SELECT i FROM _chat_s WHERE NOT ok)"


@cache
def parse_sql() -> list[str]:
    """The trajectories and their lints, of the rows whose every turn is regular: `infer_method`, `reward_of`,
    the store's n_search and the checks of `lint_trajectory` that such a row can fail, in SQL."""
    question, _ = _strip_prefix("q", QUESTION_PREFIX)
    space = _space()
    blank = _lit(space + "*")
    none = _lit(space + "*" + re.escape(NONE_OBSERVATION) + space + "*")
    trues = ", ".join(_lit(t) for t in TRUE_REWARDS)
    # the word, then the pattern only where it is (as `word AND pattern`, which DuckDB evaluated on every thought)
    word = f"contains(lower(thought), {_lit(REFLECTION_WORD)})"
    return [
        f"""
        CREATE OR REPLACE TEMP TABLE _chat_t AS
        SELECT i, {question} AS question,
               starts_with(q, {_lit(QUESTION_PREFIX)}) AS prefixed, n_steps, n_search, final_answer,
               CASE WHEN reflect THEN {_method("reflexion")} WHEN tool THEN {_method("react")}
                    WHEN thought THEN {_method("cot")} ELSE {_method("io")} END AS method,
               CASE WHEN reward IS NULL OR reward = '' THEN NULL ELSE reward IN ({trues}) END AS reward,
               CASE WHEN final_obs = previous_obs THEN final_obs END AS repeated
        FROM (SELECT i, max(question) AS q, count(*) AS n_steps,
                     count(*) FILTER (WHERE lower(action_name) = {_lit(SEARCH)}) AS n_search,
                     arg_max(action_arg, idx) FILTER (WHERE action_name = {_lit(FINISH)}) AS final_answer,
                     lower(regexp_extract(max(observation) FILTER (WHERE idx = last), {_re2(REWARD_RE)}, 1)) AS reward,
                     max(observation) FILTER (WHERE idx = f) AS final_obs,
                     max(observation) FILTER (WHERE idx = f - 1) AS previous_obs,
                     bool_or(CASE WHEN {word} THEN regexp_matches(thought, {_re2(REFLECTION_RE)})
                             ELSE {word} END) AS reflect,
                     bool_or(lower(action_name) <> {_lit(FINISH)}) AS tool, bool_or(thought <> '') AS thought
              FROM _chat_s GROUP BY i)
        """,
        f"""
        CREATE OR REPLACE TEMP TABLE _chat_lints AS
        SELECT i, kind, step, detail FROM (
            SELECT i, {_kind("observation_none")} AS kind, idx AS step, '' AS detail, 0 AS o FROM _chat_s
            WHERE regexp_full_match(observation, {none})
            UNION ALL
            SELECT i, {_kind("empty_finish")}, idx, '', 1 FROM _chat_s
            WHERE lower(action_name) = {_lit(FINISH)} AND regexp_full_match(action_arg, {blank})
            UNION ALL
            SELECT i, {_kind("duplicated_final_observation")}, n_steps - 1, left(repeated, {DETAIL_CHARS}), 2
            FROM _chat_t WHERE repeated IS NOT NULL
            UNION ALL
            SELECT i, {_kind("no_finish")}, NULL, '', 3 FROM _chat_t WHERE final_answer IS NULL
            UNION ALL
            SELECT i, {_kind("failed")}, NULL, '', 4 FROM _chat_t WHERE reward = false)
        ORDER BY i, o, step
        """,
    ]


_TRAJ_FROM_STAGE = {
    "id": "k.id", "source": "$source", "task": "c.task", "question": "t.question",
    "qnorm": "c.qnorm", "method": "coalesce($method, t.method)", "final_answer": "t.final_answer",
    "reward": "t.reward", "status": "CASE WHEN t.final_answer IS NULL THEN 'unfinished' ELSE 'finished' END",
    "n_steps": "t.n_steps", "n_search": "t.n_search",
    "meta": "CASE WHEN t.prefixed THEN $meta_prefixed ELSE $meta END", "revision": "0",
    "created_at": "$created_at", "schema_version": "$schema_version",
}
_STEP_FROM_STAGE = {"trajectory_id": "k.id", "train": "true",
                    **{c: f"s.{c}" for c in ("idx", "thought", "action_raw", "action_name", "action_arg",
                                             "observation", "obs_raw")}}


def _select(exprs: dict[str, str], columns: list[str]) -> str:
    """A SELECT list in `columns` order: the given expressions, NULL for the rest."""
    return ", ".join(f"{exprs.get(c, 'NULL')} AS {c}" for c in columns)


_TRAJ_COLS = ", ".join(TRAJ_COLUMNS)
_STEP_COLS = ", ".join(STEP_COLUMNS)
# Trajectories go in file order: exports follow it.
INSERT_TRAJ_SQL = f"""
INSERT INTO trajectories ({_TRAJ_COLS})
SELECT {_TRAJ_COLS} FROM (
    SELECT t.i, {_select(_TRAJ_FROM_STAGE, TRAJ_COLUMNS)}
    FROM _chat_t t JOIN _chat_k k USING (i) JOIN _chat_c c USING (i) WHERE k.fresh
    UNION ALL
    SELECT i, {_TRAJ_COLS} FROM _chat_py_t WHERE fresh)
ORDER BY i
"""
# Steps are written in file order (exports and the copy of a staged import follow it): by one ordered INSERT when
# the Python reader built some of them, DuckDB then writing them once, compressed and final (written by several
# threads in any order, they are rewritten at the next checkpoint, which costs more).
ORDERED_STEPS_SQL = f"""
SELECT {_STEP_COLS} FROM (
    SELECT s.i, {_select(_STEP_FROM_STAGE, STEP_COLUMNS)} FROM _chat_s s JOIN _chat_k k USING (i) WHERE k.fresh
    UNION ALL
    SELECT t.i, {", ".join("p." + c for c in STEP_COLUMNS)} FROM _chat_py_s p JOIN _chat_py_t t ON t.id = p.trajectory_id
    WHERE t.fresh)
ORDER BY i, idx
"""
INSERT_STEPS_SQL = f"INSERT INTO steps ({_STEP_COLS}) {ORDERED_STEPS_SQL}"
# The same when every row was parsed in SQL (the usual case): each step's trajectory id is picked from the list of
# ids by its row's index, so the steps keep the staging table's order (the file's) without a join or a sort.
PARSED_STEPS_SQL = f"""
SELECT {_select({**_STEP_FROM_STAGE, "trajectory_id": "k.ids[s.i + 1]"}, STEP_COLUMNS)}
FROM _chat_s s CROSS JOIN _chat_kl k WHERE k.fresh IS NULL OR k.fresh[s.i + 1]
"""
INSERT_PARSED_STEPS_SQL = f"INSERT INTO steps ({_STEP_COLS}) {PARSED_STEPS_SQL}"
# what the steps of the rows parsed in SQL take as Arrow: their text, and about this much a row besides
STEP_ROW_BYTES = 96
PARSED_STEPS_BYTES_SQL = f"""
SELECT coalesce(sum({" + ".join(f"coalesce(strlen({c}), 0)" for c in (
    "thought", "action_raw", "action_name", "action_arg", "observation", "obs_raw"))} + {STEP_ROW_BYTES}), 0) FROM _chat_s
"""
INSERT_LINTS_SQL = """
INSERT INTO lints (trajectory_id, kind, step, detail)
SELECT k.id, x.kind, x.step, x.detail FROM _chat_lints x JOIN _chat_k k USING (i) WHERE k.fresh ORDER BY x.i
"""


def fresh_ids(keys: pa.Table, py_trajs: pa.Table) -> pa.Table:
    """The ids of a staged chat file's fresh trajectories, in the order they are written (the file's): those of
    the rows parsed in SQL (`keys`) and of those the Python reader built (`py_trajs`), both with i, id and fresh."""
    columns = ["i", "id", "fresh"]
    rows = keys.select(columns)
    if py_trajs.num_rows:
        rows = pa.concat_tables([rows, py_trajs.select(columns).cast(rows.schema)]).sort_by("i")
    return rows.filter(rows.column("fresh")).select(["id"])


def _stage_keys(con: Any, keys: pa.Table) -> None:
    register(con, "_chat_keys", keys)
    try:
        con.execute("CREATE OR REPLACE TEMP TABLE _chat_k AS SELECT * FROM _chat_keys")
    finally:
        con.unregister("_chat_keys")


def _all_parsed(keys: pa.Table, py_trajs: pa.Table) -> bool:
    """Whether every row was parsed in SQL: no row built by the Python reader, and `keys` holds rows 0, 1, ...
    in order."""
    index = keys.column("i")
    return not py_trajs.num_rows and (not len(index) or index[-1].as_py() == len(index) - 1)


def _listed_ids(keys: pa.Table) -> pa.Table:
    """When every row was parsed in SQL (`_all_parsed`): one row of the ids, and of whether each is fresh (NULL
    when all are), as lists that a step picks from by its row's index."""
    ids, fresh = (keys.column(c).combine_chunks() for c in ("id", "fresh"))
    whole = pa.array([0, len(ids)], pa.int32())
    return pa.table({"ids": pa.ListArray.from_arrays(whole, ids),
                     "fresh": pa.ListArray.from_arrays(whole, fresh) if fresh.false_count
                     else pa.nulls(1, pa.list_(pa.bool_()))})


class ChatImportRepository(Repository):
    """The DuckDB side of importing OpenAI chat JSONL. Call inside one connection (`Store.session()` or a
    transaction): the staging tables belong to it."""

    def stage_chat(self, path: str, max_bytes: int) -> tuple[int, bool]:
        """Read the file into the staging table: (records read, whether DuckDB could read each as an object with
        a 'messages' list). Nothing is refused here: an unreadable line is a record without messages. Lines must
        be at most `max_bytes` long (`formats.common.may_have_long_line`): DuckDB fails on longer ones."""
        with self.db.connect() as con:
            con.execute(stage_sql(), {"path": path, "max_bytes": 2 * max_bytes + 1024})
            for sql in NUMBER_SQL:
                con.execute(sql)
            rows, readable = con.execute("SELECT coalesce(max(i) + 1, 0), bool_and(readable) FROM _chat_s").fetchone()
            return rows, bool(readable)

    def parse_staged_chat(self) -> tuple[pa.Table, list[int]]:
        """Parse the regular rows in SQL. Returns their (i, question, final_answer), in file order, for the
        caller to key and classify, and the index of every other row, for the Python reader."""
        with self.db.connect() as con:
            rest = con.execute("SELECT DISTINCT i FROM _chat_s WHERE NOT ok ORDER BY i").fetchall()
            if rest:
                con.execute(IRREGULAR_SQL)
            for sql in parse_sql():
                con.execute(sql)
            parsed = con.sql("SELECT i, question, final_answer FROM _chat_t ORDER BY i").to_arrow_table()
        return parsed, [r[0] for r in rest]

    def staged_chat_lints(self) -> list[tuple[str, int]]:
        """(kind, row index) of each lint found on the rows parsed in SQL."""
        with self.db.connect() as con:
            return con.execute("SELECT kind, i FROM _chat_lints").fetchall()

    def insert_staged_chat_steps(self, keys: pa.Table, py_trajs: pa.Table, py_steps: pa.Table) -> None:
        """Write the steps of the staged file's fresh trajectories, in file order: those of the rows parsed in SQL,
        with `keys` (i, id, fresh: one row for each parsed row), and `py_steps` of the rows the Python reader
        built (`py_trajs`, with i and fresh). Nothing here holds the GIL for long: the caller may work meanwhile."""
        with self.db.transaction() as con:
            _stage_keys(con, keys)
            if _all_parsed(keys, py_trajs):
                register(con, "_chat_kl", _listed_ids(keys))
                try:
                    con.execute(INSERT_PARSED_STEPS_SQL)
                finally:
                    con.unregister("_chat_kl")
                return
            register(con, "_chat_py_t", py_trajs)
            register(con, "_chat_py_s", py_steps)
            try:
                con.execute(INSERT_STEPS_SQL)
            finally:
                con.unregister("_chat_py_t")
                con.unregister("_chat_py_s")

    def parsed_steps_bytes(self, py_steps: pa.Table) -> int:
        """About how many bytes `parsed_steps` would take (at most: the rows left to the Python reader are
        counted twice)."""
        with self.db.connect() as con:
            return int(con.execute(PARSED_STEPS_BYTES_SQL).fetchone()[0]) + py_steps.nbytes

    def parsed_steps(self, keys: pa.Table, py_trajs: pa.Table, py_steps: pa.Table, row_group: int) -> pa.Table:
        """What `insert_staged_chat_steps` writes, as an Arrow table (of the steps table's columns, in pieces of
        `row_group` rows and a shorter last one) for the caller to write; the trajectories' keys are staged as
        there."""
        with self.db.transaction() as con:
            _stage_keys(con, keys)
            if _all_parsed(keys, py_trajs):
                register(con, "_chat_kl", _listed_ids(keys))
                try:
                    with self.db.in_row_groups(con):  # one thread: whole pieces, as they are copied (and beside
                        steps = con.sql(PARSED_STEPS_SQL).to_arrow_table(row_group)  # the caller's work)
                finally:
                    con.unregister("_chat_kl")
            else:
                register(con, "_chat_py_t", py_trajs)
                register(con, "_chat_py_s", py_steps)
                try:
                    steps = con.sql(ORDERED_STEPS_SQL).to_arrow_table(row_group)
                finally:
                    con.unregister("_chat_py_t")
                    con.unregister("_chat_py_s")
        return steps.cast(STEP_SCHEMA)

    def insert_staged_chat_trajectories(self, classes: pa.Table, py_trajs: pa.Table, source: str,
                                        method: str | None) -> int:
        """Write the staged file's fresh trajectories, in file order, and the lints found in SQL: the rows parsed
        in SQL with `classes` (i, qnorm, task: one row for each parsed row) and the keys given to
        `insert_staged_chat_steps`, and the rows the Python reader built (`py_trajs`), of `source`; `method`
        (None: as inferred) for all of them. Returns how many were added."""
        params = {"source": source, "method": method, "meta": _dumps(FORMAT_META),
                  "meta_prefixed": _dumps({**FORMAT_META, "question_prefix": QUESTION_PREFIX}),
                  "created_at": naive(now()), "schema_version": SCHEMA_VERSION}
        with self.db.transaction() as con:
            register(con, "_chat_c", classes)
            register(con, "_chat_py_t", py_trajs)
            try:
                con.execute(INSERT_TRAJ_SQL, params)
                con.execute(INSERT_LINTS_SQL)
                return con.execute("SELECT (SELECT count(*) FROM _chat_k WHERE fresh) + "
                                   "(SELECT count(*) FROM _chat_py_t WHERE fresh)").fetchone()[0]
            finally:
                con.unregister("_chat_c")
                con.unregister("_chat_py_t")

    def drop_chat_stage(self) -> None:
        """Drop the staging tables (after a failed statement the transaction's rollback drops them)."""
        with self.db.connect() as con:
            try:
                for name in STAGE:
                    con.execute(f"DROP TABLE IF EXISTS {name}")
            except Error:
                pass
