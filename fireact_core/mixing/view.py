"""What the Mix page shows, as plain data: the spec built from its widgets, the preview tables, the composition bars,
the coloured example and the versions with their lineage. No streamlit here; the page only lays them out."""

from __future__ import annotations

from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd

from ..io.masks import load_tokenizer, preview_spans, spans_html
from .versions import CELL_SEP, MixPlan, MixSpec

if TYPE_CHECKING:
    from ..store import Store

PERCENT = 100


def shares_from_sliders(values: dict[str, int | float]) -> dict[str, float] | None:
    """Slider positions (0-100) as a ratio; None when every slider is at 0 (the spec then says what to do)."""
    kept = {k: float(v) for k, v in values.items() if v}
    return kept or {k: 0.0 for k in values} or None


def form_spec(*, sources: list[str], mode: str, task_shares: dict[str, float], method_shares: dict[str, float],
              grid: dict[str, float], size: int, val_fraction: float, seed: int, filters: dict[str, Any],
              loss_mask: str, allow_upsample: bool, pairs: str | None = None) -> MixSpec:
    """The spec the page's widgets describe (validated: a MixSpecError says what to change)."""
    data: dict[str, Any] = {"sources": sources, "size": int(size), "val_fraction": float(val_fraction),
                            "seed": int(seed), "filters": filters, "loss_mask": loss_mask,
                            "allow_upsample": bool(allow_upsample)}
    if pairs:
        data["pairs"] = pairs
    if mode == "grid":
        data["cells"] = {c: float(v) for c, v in grid.items()}
    else:
        data["task_ratio"] = shares_from_sliders(task_shares)
        data["method_ratio"] = shares_from_sliders(method_shares)
    return MixSpec.parse(data, where="mix settings")


def grid_frame(counts: dict[str, int], spec: MixSpec | None = None) -> pd.DataFrame:
    """Tasks x methods with a share (in %) per cell: the spec's cells, else the sources' natural proportions."""
    cells = spec.cells if spec is not None and spec.cells else None
    total = sum(counts.values()) or 1
    tasks = sorted({c.split(CELL_SEP)[0] for c in counts} | {c.split(CELL_SEP)[0] for c in cells or {}})
    methods = sorted({c.split(CELL_SEP)[1] for c in counts} | {c.split(CELL_SEP)[1] for c in cells or {}})
    frame = pd.DataFrame(0.0, index=pd.Index(tasks, name="task"), columns=methods)
    for cell, value in (cells or {c: n / total for c, n in counts.items()}).items():
        task, method = cell.split(CELL_SEP, 1)
        frame.loc[task, method] = round(value * PERCENT, 1)
    return frame


def grid_cells(frame: pd.DataFrame) -> dict[str, float]:
    return {f"{task}{CELL_SEP}{method}": float(frame.loc[task, method] or 0)
            for task in frame.index for method in frame.columns if float(frame.loc[task, method] or 0) > 0}


def cells_frame(plan: MixPlan) -> pd.DataFrame:
    """The preview table: one row per cell and a total."""
    cols = ["cell", "asked", "got", "short", "available", "train", "val", "tokens", "trained_tokens"]
    table = plan.cells[cols].copy()
    table.insert(2, "asked %", (plan.cells["share"] * PERCENT).round(1))
    got = max(int(table["got"].sum()), 1)
    table.insert(4, "got %", (table["got"] * PERCENT / got).round(1))
    total: dict[str, Any] = {c: int(table[c].sum()) for c in cols[1:]}
    total.update({"cell": "total", "asked %": 100.0, "got %": 100.0 if plan.size else 0.0})
    return pd.concat([table, pd.DataFrame([total])], ignore_index=True)


def composition_html(plan: MixPlan) -> str:
    """Asked against got per task/method cell, as bars in plain HTML (grey: asked, orange: got, with the count
    and what a short cell lacks); drawn at once, with no charting library to load in the browser."""
    cells = plan.cells
    top = max([1, *cells["asked"], *cells["got"]])
    rows = []
    for r in cells.itertuples():
        short = f" (short {r.short})" if r.short else ""
        rows.append(
            f'<div style="display:flex;align-items:center;gap:.5rem;margin:.15rem 0">'
            f'<div style="flex:0 0 14rem;overflow:hidden;text-overflow:ellipsis;white-space:nowrap">{escape(str(r.cell))}</div>'
            f'<div style="flex:1">'
            f'<div title="asked {r.asked}" style="height:.55rem;width:{100 * r.asked / top:.1f}%;background:#ced4da"></div>'
            f'<div title="got {r.got}" style="height:.55rem;width:{100 * r.got / top:.1f}%;background:#f76707"></div>'
            f'</div><div style="flex:0 0 9rem">{r.got} of {r.asked}{escape(short)}</div></div>')
    legend = ('<span style="color:#868e96">&#9632;</span> asked &nbsp; <span style="color:#f76707">&#9632;</span> got')
    return (f'<div data-testid="mix-composition"><div style="font-weight:600">Trajectories per task/method cell</div>'
            f'<div style="font-size:.85rem;margin-bottom:.3rem">{legend}</div>{"".join(rows)}</div>')


def example_html(store: Store, plan: MixPlan, position: int, tokenizer_dir: str | None = None) -> tuple[str, str]:
    """(caption, coloured HTML) of one member: per token with a tokenizer, per turn without."""
    member = plan.members.iloc[position]
    traj = store.get_trajectory(member["id"])
    tok = load_tokenizer(str(Path(tokenizer_dir).expanduser())) if tokenizer_dir else None
    spans = preview_spans(traj, plan.spec.loss_mask, tok)
    trained = sum(1 for _, t in spans if t)
    unit = "tokens" if tok is not None else "turns"
    caption = (f"{member['cell']} · {traj.id} · {member['split']} · {trained} of {len(spans)} {unit} carry loss "
               "(green); grey ones are masked")
    return caption, spans_html(spans)


def versions_frame(store: Store) -> pd.DataFrame:
    """Saved versions, newest last, each with its lineage (parent, grandparent, ...)."""
    versions = store.list_dataset_versions()
    parents = {v.name: v.parent for v in versions}
    rows = []
    for v in versions:
        chain, name = [], v.parent
        while name and name not in chain:
            chain.append(name)
            name = parents.get(name)
        rows.append({"name": v.name, "lineage": " ← ".join([v.name, *chain]), "size": v.size, "train": v.n_train,
                     "val": v.n_val, "loss mask": v.loss_mask, "seed": v.seed, "created": v.created_at,
                     "by": v.created_by, "hash": v.content_hash[:12]})
    return pd.DataFrame(rows, columns=["name", "lineage", "size", "train", "val", "loss mask", "seed", "created",
                                       "by", "hash"])
