"""Lineage of a run: for a fine-tuned model, the dataset version and training job it came from (with the
job's training curve), and the runs of its base model on the same task, side by side. A model trained on
preference pairs or on repaired trajectories is also set against the models of its dataset's parent version
(the version it was made from), each run of theirs on the same task compared with it question by question.

The model registry and jobs belong to training, dataset versions to the mixer; a record that is not there
is reported as "not recorded", never guessed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, TypeVar

import pandas as pd

from ..errors import NotFoundError
from ..files import read_json_lines
from ..records import DatasetVersion, TrainJob
from .figures import run_records, with_variants

if TYPE_CHECKING:
    from ..store import Store

METRICS_FILE = "metrics.jsonl"  # what training writes in a job's run folder
R = TypeVar("R")


@dataclass
class Lineage:
    """Where a fine-tuned model's run came from: the model record, its dataset version and training job,
    its training curve, and the runs of its base model on the same task."""

    run: str
    model: str | None
    variant: str
    base_model: str | None
    model_record: dict | None = None
    dataset: DatasetVersion | None = None
    job: TrainJob | None = None
    curve: pd.DataFrame | None = None
    side_by_side: pd.DataFrame = field(default_factory=pd.DataFrame)
    notes: list[str] = field(default_factory=list)
    data_kind: str | None = None  # "step pairs", "trajectory pairs" or "repaired": what the model learnt beyond SFT
    parent_dataset: str | None = None
    against_parent: pd.DataFrame = field(default_factory=pd.DataFrame)


PARENT_COLUMNS = ["run", "parent_model", "parent_run", "shared", "em", "em_parent", "diff", "ci_low", "ci_high",
                  "p_value", "verdict"]


def data_kind(store: Store, dataset: DatasetVersion | None) -> str | None:
    """What a dataset version holds beyond plain trajectories: preference pairs (of a level), or trajectories
    kept by repair (continuations that scored right); None for neither."""
    if not dataset:
        return None
    if dataset.pairs:
        return f"{dataset.pairs} pairs"
    ids = store.dataset_members(dataset.name)["trajectory_id"].tolist()
    members = set(ids)
    if any(link.kind == "repair" and link.child_id in members for link in store.fork_links(ids)):
        return "repaired"
    return None


def against_parent(store: Store, table: pd.DataFrame, run: str, task: str, parent: str,
                   registry: dict[str, dict]) -> pd.DataFrame:
    """`run` against every run, on the same task, of a model trained on the version `parent`: EM of each on the
    questions both answered, the difference with its bootstrap interval, McNemar's p and the verdict."""
    from .figures import compare_runs

    models = sorted(name for name, rec in registry.items() if rec.get("dataset") == parent)
    rows = []
    for model in models:
        same = [r for r, m, x in zip(table["run"], table["model"], table["task"])
                if m == model and (x if isinstance(x, str) else "") == task and r != run]
        for other in same:
            cmp = compare_runs(store, run, other)
            rows.append({"run": run, "parent_model": model, "parent_run": other, "shared": cmp.n, "em": cmp.em_a,
                         "em_parent": cmp.em_b, "diff": cmp.diff, "ci_low": cmp.ci_low, "ci_high": cmp.ci_high,
                         "p_value": cmp.p_value, "verdict": cmp.verdict()})
    return pd.DataFrame(rows, columns=PARENT_COLUMNS)


def _lookup(get: Callable[[str], R], key: Any) -> R | None:
    """The record `get(key)` reads (a dataset version, a job), or None for no key or a record since deleted."""
    if key in (None, ""):
        return None
    try:
        return get(key)
    except NotFoundError:
        return None


def training_curve(folder: str | None) -> pd.DataFrame | None:
    """Loss per step from a job's run folder (`folder`/metrics.jsonl, one JSON object per line; lines that are
    not JSON, such as a line cut short by a crash, are skipped). None for no folder or one without such a file."""
    path = Path(folder) / METRICS_FILE if isinstance(folder, str) and folder else None
    if path is None or not path.is_file():
        return None
    rows = []
    for rec in read_json_lines(path):
        if isinstance(rec, dict) and rec.get("step") is not None:
            rows.append({k: rec.get(k) for k in ("step", "loss", "eval_loss", "learning_rate")})
    return pd.DataFrame(rows) if rows else None


def run_lineage(store: Store, table: pd.DataFrame, run: str, registry: dict[str, dict]) -> Lineage:
    """The lineage of `run`, a row of the runs table (`reports.run_table`)."""
    t = table if "variant" in table.columns else with_variants(table, registry)
    runs = t["run"].tolist()
    if run not in runs:
        raise NotFoundError(f"no run named {run}: `fireact stats` lists the sources in the database")
    row = run_records(t.iloc[[runs.index(run)]], ["model", "task", "base_model", "variant"])[0]
    model, variant, base = row["model"], row["variant"], row["base_model"]
    out = Lineage(run=run, model=model, variant=variant, base_model=base)
    rec = registry.get(model)
    if rec:
        out.model_record = rec
        out.dataset = _lookup(store.get_dataset_version, rec.get("dataset"))
        out.job = _lookup(store.get_job, rec.get("job"))
        out.curve = training_curve(out.job.out if out.job else None)
    task = row["task"] if isinstance(row["task"], str) else ""
    out.data_kind = data_kind(store, out.dataset)
    out.notes = _lineage_notes(out, rec)
    if out.data_kind and out.dataset:
        out.parent_dataset = out.dataset.parent
        if not out.parent_dataset:
            out.notes.append(f"dataset version {out.dataset.name} records no parent version: make it from the "
                             "version the base model was trained on (Mix page: load it first; `fireact mix --from`) "
                             "to compare the two models here")
        else:
            out.against_parent = against_parent(store, t, run, task, out.parent_dataset, registry)
            if out.against_parent.empty:
                out.notes.append(f"no run on {task or 'this task'} of a model trained on {out.parent_dataset}, "
                                 "the parent version: evaluate one on the same questions to compare")
    same_base = [b == base and (x if isinstance(x, str) else "") == task for b, x in zip(t["base_model"], t["task"])]
    out.side_by_side = t.loc[same_base, ["run", "variant", "model", "method", "perturb", "attempted", "em_attempted",
                                         "em_finished", "f1_attempted", "mean_steps"]].reset_index(drop=True)
    return out


def _lineage_notes(lin: Lineage, rec: dict | None) -> list[str]:
    if lin.variant != "fine-tuned":
        return [f"{lin.model} is not a fine-tuned model known to this database: no lineage recorded"]
    if not rec:
        return [f"{lin.model} is not in the model registry: no dataset version or training job recorded"]
    notes = []
    if lin.dataset is None:
        notes.append("no dataset version recorded for this model")
    if lin.job is None:
        notes.append("no training job recorded for this model")
    elif lin.curve is None:
        notes.append("the training job left no metrics.jsonl in its run folder")
    return notes
