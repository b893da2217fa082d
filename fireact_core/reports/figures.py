"""The figures the dashboards show: run metrics, EM by model and method, prompted versus fine-tuned,
clean versus perturbed, steps, and paired comparisons of two runs on the same questions.

Aggregates come from SQL (one pass over the trajectories, grouped by source); this module only derives
ratios from a few dozen run rows, so the cost does not grow with the number of trajectories.

Denominators: FireAct's run files drop the questions that never finished, so a run reports EM and F1 both
over the questions *attempted* (a missing or unfinished question counts as wrong) and over those *finished*.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Sequence

import numpy as np
import pandas as pd

from ..errors import NotFoundError
from ..records import METHODS
from ..names import display_model, display_names, finetuned_base

if TYPE_CHECKING:
    from ..store import Store

REPORT_KEYS = ["run", "task", "method", "model", "attempted", "finished", "failed", "em_attempted", "em_finished",
               "f1_attempted", "f1_finished", "mean_steps", "tokens_in", "tokens_out", "latency_s", "cost_usd"]
TABLE_COLUMNS = ["run", "task", "method", "model", "perturb", "attempted", "finished", "failed", "missing",
                 "em_attempted", "em_finished", "f1_attempted", "f1_finished", "mean_steps", "search_calls",
                 "tokens_in", "tokens_out", "latency_s", "cost_usd"]
VIEW_COLUMNS = ["run", "em_attempted", "f1_attempted", "em_finished", "f1_finished", "task", "method", "model",
                "perturb", "attempted", "finished", "failed", "missing", "mean_steps", "search_calls", "tokens_in",
                "tokens_out", "latency_s", "cost_usd", "full name"]
METHOD_ORDER = list(METHODS)
CLEAN = "clean"


def run_table(store: Store, runs: Sequence[str] | None = None, scored_only: bool = False) -> pd.DataFrame:
    """One row per run (see `Store.report_runs`); `scored_only` keeps runs and sources with scores."""
    return store.report_runs(runs, scored_only=scored_only)


def _clean(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return None if math.isnan(value) else float(value)
    return value


def run_report(store: Store, runs: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """What `fireact report --json` prints: one object per run, null where unknown."""
    table = run_table(store, runs)
    if runs:
        known = set(table["run"])
        missing = [r for r in runs if r not in known]
        if missing:
            raise NotFoundError(f"no run named {', '.join(missing)}: `fireact stats` lists the sources in the database")
    return [{k: _clean(row[k]) for k in REPORT_KEYS} for _, row in table.iterrows()]


def run_records(table: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Rows of a few columns as dicts (a few dozen runs: cheaper than DataFrame.to_dict)."""
    return [dict(zip(columns, values)) for values in zip(*(table[c].tolist() for c in columns))]


def group_metrics(table: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """EM and F1 over attempted for groups of runs, weighted by questions attempted (a loop over runs). EM counts
    the right answers of the scored runs (`store.answers`); F1 is over the runs that record one (None if none)."""
    scored = table[table["scored"] > 0]
    if "f1_scored" not in scored.columns:
        scored = scored.assign(f1_scored=scored["scored"])
    groups: dict[tuple, dict[str, Any]] = {}
    for row in run_records(scored, [*keys, "run", "attempted", "em_sum", "f1_sum", "f1_scored"]):
        key = tuple(row[k] if isinstance(row[k], str) else "unknown" for k in keys)
        g = groups.setdefault(key, {"runs": 0, "attempted": 0, "em_sum": 0.0, "f1_attempted": 0, "f1_sum": 0.0,
                                    "sources": []})
        g["runs"] += 1
        g["attempted"] += int(row["attempted"])
        g["em_sum"] += float(row["em_sum"])
        if row["f1_scored"] > 0:
            g["f1_attempted"] += int(row["attempted"])
            g["f1_sum"] += float(row["f1_sum"])
        g["sources"].append(row["run"])
    rows = [{**dict(zip(keys, key)), "runs": g["runs"], "attempted": g["attempted"],
             "em": g["em_sum"] / g["attempted"] if g["attempted"] else None,
             "f1": g["f1_sum"] / g["f1_attempted"] if g["f1_attempted"] else None, "sources": g["sources"]}
            for key, g in sorted(groups.items())]
    return pd.DataFrame(rows, columns=[*keys, "runs", "attempted", "em", "f1", "sources"])


def em_by_model_method(table: pd.DataFrame) -> pd.DataFrame:
    return group_metrics(table, ["model", "method"])


FINETUNED_MODES = ("finetuned", "fine-tuned", "fine_tuned")
PROMPTED_MODES = ("fewshot", "few-shot", "prompted")


def _finetuned_base(model: str, mode: Any, registry: dict[str, dict]) -> str | None:
    rec = registry.get(model)
    if rec and rec.get("base_model"):
        return rec["base_model"]
    if model.startswith("ft:") and len(model.split(":")) > 2:
        return model.split(":")[1]
    named = finetuned_base(model)  # FireAct's own names: ft_gpt-3.5-turbo-..., llama_models_lora_llama-2-7b-...
    if named:
        return named
    return model if mode in FINETUNED_MODES else None


def model_variants(table: pd.DataFrame, registry: dict[str, dict]) -> pd.DataFrame:
    """Base model and variant (prompted / fine-tuned) of each run's model.

    A model in the training registry, an OpenAI `ft:BASE:...` name (or FireAct's `ft_BASE_...`), a FireAct LoRA
    model (`llama_models_lora_...`), or a run made in fine-tuned mode is fine-tuned; the base of any of those, or a run made in few-shot mode, is prompted; other names stand as given.
    """
    if "variant" in table.columns:
        return table[["base_model", "variant"]]
    models = [m if isinstance(m, str) else "unknown" for m in table["model"]]
    modes = table["mode"].tolist()
    tuned = [_finetuned_base(m, mode, registry) for m, mode in zip(models, modes)]
    bases = {r.get("base_model") for r in registry.values() if r.get("base_model")} | {b for b in tuned if b}
    rows = []
    for model, mode, base in zip(models, modes, tuned):
        if base is not None:
            rows.append((base, "fine-tuned"))
        elif model in bases or mode in PROMPTED_MODES:
            rows.append((model, "prompted"))
        else:
            rows.append((model, "as named"))
    return pd.DataFrame(rows, columns=["base_model", "variant"], index=table.index)


def with_variants(table: pd.DataFrame, registry: dict[str, dict]) -> pd.DataFrame:
    """The runs table with `base_model` and `variant` columns."""
    v = model_variants(table, registry)
    return table.assign(base_model=v["base_model"].tolist(), variant=v["variant"].tolist())


def prompted_vs_finetuned(table: pd.DataFrame, registry: dict[str, dict]) -> pd.DataFrame:
    """EM of prompted and fine-tuned runs grouped by base model, task and method (bases with a fine-tuned run)."""
    t = table if "variant" in table.columns else with_variants(table, registry)
    tuned = {b for b, v in zip(t["base_model"], t["variant"]) if v == "fine-tuned"}
    keep = [b in tuned and v in ("prompted", "fine-tuned") for b, v in zip(t["base_model"], t["variant"])]
    return group_metrics(t[keep], ["base_model", "variant", "task", "method"])


def runs_view(table: pd.DataFrame) -> pd.DataFrame:
    """The runs table as the dashboard shows it: short run and model names first, EM and F1 next, the full run
    name last."""
    short = display_names(table["run"].tolist())
    models = [display_model(m) if isinstance(m, str) else "—" for m in table["model"]]
    return table.assign(**{"full name": table["run"], "run": [short[r] for r in table["run"]], "model": models}
                        )[VIEW_COLUMNS]


def model_method_table(table: pd.DataFrame, registry: dict[str, dict]) -> tuple[pd.DataFrame, dict]:
    """EM over attempted questions with a model per row and a method per column, as in FireAct's tables; and the
    runs behind each cell, keyed by (row label, method). A fine-tuned model's row says so."""
    t = table if "variant" in table.columns else with_variants(table, registry)
    groups = group_metrics(t, ["model", "method", "variant"])
    if groups.empty:
        return pd.DataFrame(), {}
    labels = {}
    for model, variant in zip(groups["model"], groups["variant"]):
        label = display_model(model) if model != "unknown" else "unknown model"
        if variant == "fine-tuned" and "(" not in label:
            label += " (fine-tuned)"
        labels[(model, variant)] = label
    rows = groups.assign(label=[labels[(m, v)] for m, v in zip(groups["model"], groups["variant"])])
    methods = [m for m in METHOD_ORDER if m in set(rows["method"])] + sorted(set(rows["method"]) - set(METHOD_ORDER))
    pivot = rows.pivot_table(index="label", columns="method", values="em", aggfunc="first")
    pivot = pivot.reindex(columns=methods)
    pivot.index.name, pivot.columns.name = "model", None
    sources = {(r.label, r.method): list(r.sources) for r in rows.itertuples()}
    return pivot, sources


def scored_runs(table: pd.DataFrame) -> list[str]:
    return list(table.loc[table["scored"] > 0, "run"])


def lineage_choices(table: pd.DataFrame, registry: dict[str, dict]) -> list[str]:
    """Runs for the lineage view, those of fine-tuned models first."""
    variants = model_variants(table, registry)["variant"].tolist()
    runs = table["run"].tolist()
    tuned = [r for r, v in zip(runs, variants) if v == "fine-tuned"]
    return tuned + [r for r in runs if r not in tuned]


def model_registry(store: Store) -> dict[str, dict]:
    """Models registered by training (name -> record as a dict)."""
    return {rec.name: rec.model_dump() for rec in store.list_models()}


def steps_distribution(store: Store, runs: Sequence[str] | None = None) -> pd.DataFrame:
    return store.report_steps(runs)


# ---- paired comparison -------------------------------------------------------------------------------------

@dataclass
class PairedComparison:
    """Two runs on the questions they share (matched by normalised question)."""

    run_a: str
    run_b: str
    n: int
    only_in_a: int
    only_in_b: int
    em_a: float | None
    em_b: float | None
    diff: float | None  # EM of A minus EM of B on the shared questions
    ci_low: float | None
    ci_high: float | None
    level: float
    p_value: float | None  # McNemar exact test on right/wrong
    both_right: int
    only_a_right: int
    only_b_right: int
    both_wrong: int
    unscored: int = 0  # questions both runs ask, unscored in one of them (no EM and no reward): in no cell
    ids: dict[str, list[str]] = field(default_factory=dict, repr=False)

    @property
    def significant(self) -> bool:
        return self.p_value is not None and self.p_value < 1 - self.level

    def verdict(self) -> str:
        if not self.n:
            return "the two runs share no questions"
        pts = 100 * (self.diff or 0)
        lo, hi = 100 * (self.ci_low or 0), 100 * (self.ci_high or 0)
        head = (f"A − B = {pts:+.1f} EM points on {self.n} shared questions "
                f"({100 * self.level:.0f}% CI {lo:+.1f} to {hi:+.1f}; McNemar p = {self.p_value:.3g})")
        return head + (": a real difference" if self.significant else ": not distinguishable from noise")

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.pop("ids")
        return out


def mcnemar_exact(b: int, c: int) -> float:
    """Two-sided exact McNemar p-value for b and c discordant pairs: a binomial test with p = 1/2,
    summed in log space so that thousands of pairs neither overflow nor underflow."""
    n = b + c
    if n == 0:
        return 1.0
    k = np.arange(min(b, c))
    log_pmf = np.concatenate([[0.0], np.cumsum(np.log((n - k) / (k + 1)))]) - n * math.log(2)
    top = log_pmf.max()
    tail = math.exp(top) * float(np.exp(log_pmf - top).sum())
    return min(1.0, 2 * tail)


def paired_bootstrap(diffs: np.ndarray, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile interval of the mean paired difference, resampling the questions with replacement."""
    values, counts = np.unique(np.asarray(diffs, dtype="float64"), return_counts=True)
    return paired_bootstrap_counts(values, counts, n_boot, seed, level)


def paired_bootstrap_counts(values: np.ndarray, counts: np.ndarray, n_boot: int = 2000, seed: int = 0,
                            level: float = 0.95) -> tuple[float, float]:
    """The same from distinct differences and how often each occurs.

    Resampling n questions with replacement only changes how often each distinct difference is drawn, so
    the resampled means come from multinomial counts over the distinct values: exact, and O(n_boot) for EM.
    """
    values = np.asarray(values, dtype="float64")
    counts = np.asarray(counts, dtype="float64")
    n = int(counts.sum())
    if n == 0:
        return (math.nan, math.nan)
    rng = np.random.default_rng(seed)
    draws = rng.multinomial(n, counts / n, size=n_boot)
    means = draws @ values / n
    alpha = (1 - level) / 2
    lo, hi = np.quantile(means, [alpha, 1 - alpha])
    return float(lo), float(hi)


def compare_runs(store: Store, run_a: str, run_b: str, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> PairedComparison:
    """Paired EM difference of two runs on their shared questions, with a seeded bootstrap interval and
    McNemar's exact test, so a 2-point difference on 500 questions is not mistaken for progress."""
    pairs = store.report_pairs(run_a, run_b)
    for run, side in ((run_a, "id_a"), (run_b, "id_b")):
        if pairs[side].isna().all() and store.get_source(run) is None:
            raise NotFoundError(f"no run named {run}: `fireact stats` lists the sources in the database")
    return pair_stats(pairs, run_a, run_b, n_boot, seed, level)


def pair_stats(pairs: pd.DataFrame, run_a: str, run_b: str, n_boot: int = 2000, seed: int = 0,
               level: float = 0.95) -> PairedComparison:
    """The comparison from per-question pairs (`Store.report_pairs`), with the trajectory ids of each cell."""
    both = pairs[pairs["id_a"].notna() & pairs["id_b"].notna() & pairs["em_a"].notna() & pairs["em_b"].notna()]
    counts = pairs.assign(n=1, in_a=pairs["id_a"].notna(), in_b=pairs["id_b"].notna()).groupby(
        ["em_a", "em_b", "in_a", "in_b"], dropna=False, as_index=False)["n"].sum()
    cmp = counts_stats(counts, run_a, run_b, n_boot, seed, level)
    a_right, b_right = both["em_a"].to_numpy() >= 1, both["em_b"].to_numpy() >= 1
    id_a, id_b = np.array(both["id_a"].tolist(), dtype=object), np.array(both["id_b"].tolist(), dtype=object)
    cells = {"both_right": a_right & b_right, "only_a_right": a_right & ~b_right,
             "only_b_right": ~a_right & b_right, "both_wrong": ~a_right & ~b_right}
    cmp.ids = {k: [*id_a[m], *id_b[m]] for k, m in cells.items()}
    return cmp


def counts_stats(counts: pd.DataFrame, run_a: str, run_b: str, n_boot: int = 2000, seed: int = 0,
                 level: float = 0.95) -> PairedComparison:
    """The comparison from counts of (EM of A, EM of B, in A, in B) per question (`Store.report_pair_counts`);
    a null EM marks a question the run lacks or left unscored (without `in_a` / `in_b`: lacks). 1 is right,
    anything less wrong (`store.answers`)."""
    em_a, em_b, n = (counts[c].to_numpy(dtype="float64") for c in ("em_a", "em_b", "n"))
    in_a = counts["in_a"].to_numpy(dtype=bool) if "in_a" in counts else ~np.isnan(em_a)
    in_b = counts["in_b"].to_numpy(dtype=bool) if "in_b" in counts else ~np.isnan(em_b)
    shared = in_a & in_b & ~np.isnan(em_a) & ~np.isnan(em_b)
    a, b, w = em_a[shared], em_b[shared], n[shared]
    total = int(w.sum())
    cell = {name: int(w[mask].sum()) for name, mask in (
        ("both_right", (a >= 1) & (b >= 1)), ("only_a_right", (a >= 1) & (b < 1)),
        ("only_b_right", (a < 1) & (b >= 1)), ("both_wrong", (a < 1) & (b < 1)))}
    lo, hi = paired_bootstrap_counts(a - b, w, n_boot, seed, level) if total else (None, None)
    return PairedComparison(
        run_a=run_a, run_b=run_b, n=total, only_in_a=int(n[in_a & ~in_b].sum()), only_in_b=int(n[~in_a & in_b].sum()),
        em_a=float(a @ w / total) if total else None, em_b=float(b @ w / total) if total else None,
        diff=float((a - b) @ w / total) if total else None, ci_low=lo, ci_high=hi, level=level,
        p_value=mcnemar_exact(cell["only_a_right"], cell["only_b_right"]) if total else None,
        both_right=cell["both_right"], only_a_right=cell["only_a_right"], only_b_right=cell["only_b_right"],
        both_wrong=cell["both_wrong"],
        unscored=int(n[in_a & in_b & ~shared].sum()),
    )


def contingency_table(cmp: PairedComparison) -> pd.DataFrame:
    return pd.DataFrame({"B right": [cmp.both_right, cmp.only_b_right], "B wrong": [cmp.only_a_right, cmp.both_wrong]},
                        index=["A right", "A wrong"])


# ---- robustness ---------------------------------------------------------------------------------------------

def _key(row: dict[str, Any]) -> tuple[str, str, str]:
    task, model, method = (row[k] if isinstance(row[k], str) else "" for k in ("task", "model", "method"))
    return task, model, method


def robustness(store: Store, table: pd.DataFrame, n_boot: int = 2000, seed: int = 0) -> pd.DataFrame:
    """Each perturbed run beside the clean run of the same task, model and method (the latest such run),
    with the drop in EM over attempted, the share of search observations that were replaced, and a paired
    comparison (clean minus perturbed) on their shared questions."""
    cols = ["task", "model", "method", "clean_run", "perturbed_run", "perturb", "perturbed_share", "em_clean",
            "em_perturbed", "em_drop", "shared", "diff", "ci_low", "ci_high", "p_value"]
    rows = run_records(table[table["scored"] > 0], ["run", "task", "model", "method", "perturb", "em_attempted",
                                                 "search_calls", "perturbed_steps"])
    clean = {_key(r): r for r in rows if r["perturb"] == CLEAN}
    noisy = [(r, clean[_key(r)]) for r in rows if r["perturb"] != CLEAN and _key(r) in clean]
    if not noisy:
        return pd.DataFrame(columns=cols)
    counts = dict(iter(store.report_pair_counts([(c["run"], p["run"]) for p, c in noisy]).groupby(["run_a", "run_b"])))
    empty = pd.DataFrame({"em_a": [], "em_b": [], "n": []})
    out = []
    for p, c in noisy:
        part = counts.get((c["run"], p["run"]), empty)
        cmp = counts_stats(part, c["run"], p["run"], n_boot=n_boot, seed=seed)
        share = p["perturbed_steps"] / p["search_calls"] if p["search_calls"] else None
        out.append([*_key(p), c["run"], p["run"], p["perturb"], share, c["em_attempted"], p["em_attempted"],
                    c["em_attempted"] - p["em_attempted"], cmp.n, cmp.diff, cmp.ci_low, cmp.ci_high, cmp.p_value])
    return pd.DataFrame(out, columns=cols)


# ---- everything the dashboard page shows --------------------------------------------------------------------

@dataclass
class Runs:
    """The runs the dashboard shows (with base model and variant) and the model registry."""

    runs: pd.DataFrame
    registry: dict[str, dict]


def dashboard_runs(store: Store, runs: Sequence[str] | None = None, scored_only: bool = True) -> Runs:
    registry = model_registry(store)
    return Runs(with_variants(run_table(store, runs, scored_only=scored_only), registry), registry)
