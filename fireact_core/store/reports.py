"""The dashboard's SQL: per-run aggregates in one pass over the trajectories (with the perturbed steps of
each run), the distribution of steps, and per-question pairs of runs matched by normalised question (`qnorm`).
Every figure that says right or wrong reads one trajectory per question of a run, the one that stands for it, and
calls its answer right as `answers` says. Every query answers a pandas DataFrame."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

if TYPE_CHECKING:  # imported where a frame is built: a command that makes no report never loads pandas
    import pandas as pd

from .answers import first_per_question_sql
from .cache import cached_read
from .repository import Repository

# per run, over the trajectory standing for each question: counts by status, right answers (`answers`) over those
# scored, F1 where recorded; `graded`: how many have an EM (a gold answer), which tells runs from training sets
_QUESTIONS = first_per_question_sql("t.source, t.status, t.em, t.f1, {correct} AS ok", "{where}")
RUN_METRICS_SQL = """
WITH agg AS (
    SELECT source,
        count(*) AS trajectories,
        avg(n_steps) AS mean_steps,
        sum(n_steps) AS total_steps,
        sum(n_search) AS search_calls,
        avg(n_search) AS mean_search,
        sum(tokens_in) AS tokens_in,
        sum(tokens_out) AS tokens_out,
        avg(coalesce(tokens_in, 0) + coalesce(tokens_out, 0))
            FILTER (WHERE tokens_in IS NOT NULL OR tokens_out IS NOT NULL) AS tokens_per_trajectory,
        avg(latency_s) AS latency_s,
        sum(cost_usd) AS cost_usd,
        avg(cost_usd) AS cost_per_trajectory
    FROM trajectories {where}
    GROUP BY source
), questions AS (
    SELECT source,
        count(*) AS questions,
        count(*) FILTER (WHERE status = 'finished') AS finished,
        count(*) FILTER (WHERE status = 'failed') AS failed,
        count(*) FILTER (WHERE status = 'unfinished') AS unfinished,
        count(ok) AS scored,
        count(ok) FILTER (WHERE status = 'finished') AS scored_finished,
        count(em) AS graded,
        count(*) FILTER (WHERE ok) AS em_sum,
        count(*) FILTER (WHERE ok AND status = 'finished') AS em_sum_finished,
        count(f1) AS f1_scored,
        count(f1) FILTER (WHERE status = 'finished') AS f1_scored_finished,
        sum(f1) AS f1_sum,
        sum(f1) FILTER (WHERE status = 'finished') AS f1_sum_finished
    FROM ({questions})
    GROUP BY source
), fallback AS (
    -- task, split, model and method from the trajectories, for sources that do not record them
    SELECT source,
        CASE WHEN min(task) = max(task) THEN min(task) WHEN min(task) IS NOT NULL THEN 'mixed' END AS t_task,
        CASE WHEN min(split) = max(split) THEN min(split) WHEN min(split) IS NOT NULL THEN 'mixed' END AS t_split,
        CASE WHEN min(model) = max(model) THEN min(model) WHEN min(model) IS NOT NULL THEN 'mixed' END AS t_model,
        count(*) FILTER (WHERE method = 'react') AS m_react,
        count(*) FILTER (WHERE method = 'reflexion') AS m_reflexion,
        count(*) FILTER (WHERE method = 'cot') AS m_cot,
        count(*) FILTER (WHERE method = 'io') AS m_io,
        min(method) AS m_any
    FROM trajectories
    WHERE source NOT IN (SELECT name FROM sources WHERE task IS NOT NULL AND split IS NOT NULL
                         AND model IS NOT NULL AND method IS NOT NULL) {and_source}
    GROUP BY source
), pert AS (
    SELECT t.source, CASE WHEN min(lower(st.perturbed)) = max(lower(st.perturbed)) THEN min(lower(st.perturbed))
                          ELSE min(lower(st.perturbed)) || '+' || max(lower(st.perturbed)) END AS kinds,
           count(*) AS perturbed_steps
    FROM steps st JOIN trajectories t ON t.id = st.trajectory_id
    WHERE st.perturbed IS NOT NULL AND st.perturbed NOT IN ('', 'clean', 'Clean') {and_where}
    GROUP BY t.source
), merged AS (
    SELECT
        coalesce(s.name, a.source) AS run,
        coalesce(s.kind, 'import') AS kind,
        coalesce(s.task, f.t_task) AS task,
        coalesce(s.split, f.t_split) AS split,
        coalesce(s.model, f.t_model) AS model,
        coalesce(s.method, CASE greatest(f.m_react, f.m_reflexion, f.m_cot, f.m_io)
            WHEN 0 THEN f.m_any WHEN f.m_react THEN 'react' WHEN f.m_reflexion THEN 'reflexion'
            WHEN f.m_cot THEN 'cot' ELSE 'io' END) AS method,
        -- the questions planned (a question asked more than once counts once), never fewer than those stored
        greatest(coalesce(s.attempted, a.trajectories, 0) - coalesce(a.trajectories - q.questions, 0),
                 coalesce(q.questions, 0)) AS attempted,
        coalesce(a.trajectories, 0) AS trajectories,
        coalesce(q.questions, 0) AS questions,
        coalesce(q.finished, 0) AS finished,
        coalesce(q.failed, 0) AS failed,
        coalesce(q.unfinished, 0) AS unfinished,
        coalesce(q.scored, 0) AS scored,
        coalesce(q.scored_finished, 0) AS scored_finished,
        coalesce(q.graded, 0) AS graded,
        coalesce(q.f1_scored, 0) AS f1_scored,
        coalesce(q.f1_scored_finished, 0) AS f1_scored_finished,
        coalesce(q.em_sum, 0) AS em_sum, coalesce(q.f1_sum, 0) AS f1_sum,
        coalesce(q.em_sum_finished, 0) AS em_sum_finished, coalesce(q.f1_sum_finished, 0) AS f1_sum_finished,
        a.mean_steps, a.total_steps, a.search_calls, a.mean_search, a.tokens_in, a.tokens_out,
        a.tokens_per_trajectory, a.latency_s, a.cost_usd, a.cost_per_trajectory,
        json_extract_string(s.meta, '$.perturb') AS perturb_setting,
        coalesce(json_extract_string(s.meta, '$.mode'), json_extract_string(r.settings, '$.mode')) AS mode,
        p.kinds AS perturbed_kinds, coalesce(p.perturbed_steps, 0) AS perturbed_steps,
        s.created_at
    FROM sources s FULL OUTER JOIN agg a ON a.source = s.name
    LEFT JOIN questions q ON q.source = a.source
    LEFT JOIN pert p ON p.source = coalesce(s.name, a.source)
    LEFT JOIN fallback f ON f.source = coalesce(s.name, a.source)
    LEFT JOIN runs r ON r.name = s.name  -- generated runs: their settings say fewshot or finetuned mode
)
SELECT *,
    attempted - finished - failed AS missing,
    CASE WHEN scored > 0 AND attempted > 0 THEN em_sum / attempted END AS em_attempted,
    CASE WHEN scored_finished > 0 THEN em_sum_finished / finished END AS em_finished,
    CASE WHEN f1_scored > 0 AND attempted > 0 THEN f1_sum / attempted END AS f1_attempted,
    CASE WHEN f1_scored_finished > 0 THEN f1_sum_finished / finished END AS f1_finished,
    CASE
        WHEN perturb_setting IS NOT NULL AND split_part(perturb_setting, ':', 1) NOT IN ('', 'off', 'clean')
             AND coalesce(try_cast(nullif(split_part(perturb_setting, ':', 2), '') AS DOUBLE), 1) > 0
        THEN perturb_setting
        ELSE coalesce(perturbed_kinds, 'clean')
    END AS perturb
FROM merged
{outer_where}
ORDER BY created_at NULLS LAST, run
"""

STEPS_SQL = """
SELECT source AS run, n_steps, count(*) AS trajectories
FROM trajectories {where}
GROUP BY ALL ORDER BY ALL
"""

# per run, the trajectory standing for each question (`answers`), whether its answer is right as 1.0 / 0.0
# (NULL: unscored)
_FIRSTS = first_per_question_sql("t.source, t.qnorm, t.id, t.rowid AS rid, {correct}::DOUBLE AS em, t.f1, t.status",
                                 "{where}")
_SIDE = f"SELECT qnorm, id, em, coalesce(f1, 0) AS f1, status FROM ({_FIRSTS})"
PAIRS_SQL = f"""
WITH a AS ({_SIDE.format(where="t.source = ?")}), b AS ({_SIDE.format(where="t.source = ?")})
SELECT coalesce(a.qnorm, b.qnorm) AS qnorm,
       a.id AS id_a, a.em AS em_a, a.f1 AS f1_a, a.status AS status_a,
       b.id AS id_b, b.em AS em_b, b.f1 AS f1_b, b.status AS status_b
FROM a FULL OUTER JOIN b ON a.qnorm = b.qnorm
ORDER BY qnorm
"""

PAIR_COUNTS_SQL = """
WITH pairs(pair, run_a, run_b) AS (VALUES {values}),
firsts AS (
    SELECT source, qnorm, em FROM (""" + _FIRSTS.format(
        where="t.source IN (SELECT run_a FROM pairs UNION SELECT run_b FROM pairs)").replace("{", "{{").replace("}", "}}") + """)
),
a AS (SELECT p.pair, f.qnorm, f.em FROM pairs p JOIN firsts f ON f.source = p.run_a),
b AS (SELECT p.pair, f.qnorm, f.em FROM pairs p JOIN firsts f ON f.source = p.run_b)
SELECT coalesce(a.pair, b.pair) AS pair, a.em AS em_a, b.em AS em_b, a.qnorm IS NOT NULL AS in_a,
       b.qnorm IS NOT NULL AS in_b, count(*) AS n
FROM a FULL OUTER JOIN b ON a.pair = b.pair AND a.qnorm = b.qnorm
GROUP BY ALL
ORDER BY ALL
"""


def _in(column: str, values: Sequence[str] | None) -> tuple[str, list[Any]]:
    """`column IN (?, ...)` for a list of names, or nothing when no list is given."""
    if values is None:
        return "", []
    if not values:
        return "FALSE", []
    return f"{column} IN ({', '.join('?' * len(values))})", list(values)


class ReportRepository(Repository):
    """The aggregates behind the dashboard, computed in SQL."""

    @cached_read
    def report_runs(self, runs: Sequence[str] | None = None, scored_only: bool = False) -> pd.DataFrame:
        """One row per source (run or import): counts of questions by status; EM (right answers, `answers`) and F1
        over attempted and over finished, one trajectory per question; steps, search calls, tokens, latency and
        cost over every trajectory; the perturbation ("clean", "none:0.5", "random" ...). `scored_only`: runs,
        and sources with gold answers."""
        cond, params = _in("source", runs)
        tcond, tparams = _in("t.source", runs)
        outer, outer_params = _in("run", runs)
        if scored_only:  # runs, and sources with gold answers (training sets have none)
            outer = " AND ".join(x for x in (outer, "(graded > 0 OR kind = 'run')") if x)
        sql = RUN_METRICS_SQL.format(
            where=f"WHERE {cond}" if cond else "", and_source=f"AND {cond}" if cond else "",
            and_where=f"AND {tcond}" if tcond else "", outer_where=f"WHERE {outer}" if outer else "",
            questions=_QUESTIONS.format(where=tcond or "TRUE"),
        )
        with self.db.connect() as con:
            return con.execute(sql, params + tparams + params + tparams + outer_params).df()

    @cached_read
    def report_steps(self, runs: Sequence[str] | None = None) -> pd.DataFrame:
        """How many trajectories of each run took each number of steps."""
        cond, params = _in("source", runs)
        with self.db.connect() as con:
            return con.execute(STEPS_SQL.format(where=f"WHERE {cond}" if cond else ""), params).df()

    @cached_read
    def report_pairs(self, run_a: str, run_b: str) -> pd.DataFrame:
        """Per normalised question: the first trajectory of each run asking it (id, EM, F1, status), or nulls."""
        with self.db.connect() as con:
            return con.execute(PAIRS_SQL, [run_a, run_b]).df()

    @cached_read
    def report_pair_counts(self, pairs: Sequence[tuple[str, str]]) -> pd.DataFrame:
        """For several pairs of runs at once: how many questions have each (EM of A, EM of B, in A, in B); a null
        EM stands for a question the run lacks (not `in_a` / `in_b`) or left unscored. Questions match by
        normalised text, each stood for by its run's first trajectory (`answers`)."""
        import pandas as pd

        if not pairs:
            return pd.DataFrame(columns=["run_a", "run_b", "em_a", "em_b", "in_a", "in_b", "n"])
        sql = PAIR_COUNTS_SQL.format(values=", ".join("(?, ?, ?)" for _ in pairs))
        params = [x for i, (a, b) in enumerate(pairs) for x in (i, a, b)]
        with self.db.connect() as con:
            counts = con.execute(sql, params).df()
        names = pd.DataFrame(list(pairs), columns=["run_a", "run_b"]).rename_axis("pair").reset_index()
        return names.merge(counts, on="pair").drop(columns="pair")

    @cached_read
    def report_run_names(self) -> list[str]:
        """Every source name, with or without trajectories, in the order they were made."""
        with self.db.connect() as con:
            rows = con.execute(
                "SELECT name FROM (SELECT name, created_at FROM sources UNION ALL "
                "SELECT DISTINCT source, NULL FROM trajectories WHERE source NOT IN (SELECT name FROM sources)) "
                "ORDER BY created_at NULLS LAST, name"
            ).fetchall()
        return [r[0] for r in rows]
