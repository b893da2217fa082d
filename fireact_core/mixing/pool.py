"""The mixer's candidates and token totals, kept in memory between previews.

Moving a ratio slider changes only which candidates are taken, not the candidates themselves; so the pool
for (sources, filters, seed) is computed once in the database and reused until the data changes (checked
each time through a cheap fingerprint of the trajectories, reviews and lints).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

if TYPE_CHECKING:
    from ..store import Store

CHARS_PER_TOKEN = 4
SAMPLE_PER_CELL = 100
CALIBRATION_EXAMPLES = 16
_CACHE: OrderedDict[tuple, tuple[tuple, "Pool"]] = OrderedDict()
_CACHE_SIZE = 6
_LOCK = threading.Lock()
FUNNEL_LABELS = {"only_correct": "not correct", "only_accepted": "not accepted", "exclude_rejected": "rejected",
                 "max_steps": "too many steps", "dedupe": "duplicate questions", "keep_irregular": "irregular layout"}


@dataclass
class Pool:
    """Candidates sorted by cell and seed order, where each cell starts and stops, and what the filters removed."""

    frame: pd.DataFrame
    removed: dict[str, int]
    offsets: dict[str, tuple[int, int]] = field(default_factory=dict)
    available: dict[str, int] = field(default_factory=dict)
    cell_chars: pd.DataFrame | None = None
    per_char: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        cells = (self.frame["task"] + "/" + self.frame["method"]).to_numpy()
        if len(cells):
            starts = np.flatnonzero(np.r_[True, cells[1:] != cells[:-1]])
            stops = np.r_[starts[1:], len(cells)]
            self.offsets = {str(cells[a]): (int(a), int(b)) for a, b in zip(starts, stops)}
        self.available = {c: b - a for c, (a, b) in self.offsets.items()}


def load_pool(store: Store, sources: list[str], filters: dict[str, Any], seed: int) -> tuple[Pool, list[str]]:
    """The pool for these sources, filters and seed (from memory when the data has not changed), and the
    names of the sources there are."""
    key = (str(store.path) if store.path != ":memory:" else id(store), tuple(sorted(sources)),
           repr(sorted(filters.items())), seed)
    stamp = store.mix_stamp()
    names = list(stamp[-1])
    with _LOCK:
        hit = _CACHE.get(key)
        if hit and hit[0] == stamp:
            _CACHE.move_to_end(key)
            return hit[1], names
    removed, frame = store.mix_pool(sources, filters, seed)
    pool = Pool(frame=frame, removed=removed)
    with _LOCK:
        _CACHE[key] = (stamp, pool)
        while len(_CACHE) > _CACHE_SIZE:
            _CACHE.popitem(last=False)
    return pool, names


def funnel_labels(removed: dict[str, int], filters: Any) -> dict[str, int]:
    """The funnel with readable names: how many trajectories the sources hold and each filter removed."""
    out = {}
    for key, n in removed.items():
        if key == "exclude_lints":
            out["flagged by " + ", ".join(filters.exclude_lints)] = n
        else:
            out[FUNNEL_LABELS.get(key, key)] = n
    return out


def _char_parts(chars: pd.DataFrame, loss_mask: str) -> tuple[pd.Series, pd.Series]:
    total = chars["question_chars"] + chars["model_chars"] + chars["obs_chars"]
    trained = chars["model_trained_chars"] + (chars["obs_trained_chars"] if loss_mask == "none" else 0)
    return total, trained


def _sampled_cell_chars(store: Store, pool: Pool) -> pd.DataFrame:
    """Mean characters per trajectory of each cell, over its first candidates in seed order."""
    if pool.cell_chars is None:
        picks = [np.arange(a, min(b, a + SAMPLE_PER_CELL)) for a, b in pool.offsets.values()]
        sample = pool.frame.iloc[np.concatenate(picks)] if picks else pool.frame.iloc[:0]
        chars = store.text_chars(sample["id"].tolist()).set_index("id").reindex(sample["id"])
        chars["cell"] = (sample["task"] + "/" + sample["method"]).to_numpy()
        pool.cell_chars = chars.groupby("cell").mean()
    return pool.cell_chars


def _per_char(store: Store, pool: Pool, members: pd.DataFrame, tokenizer_dir: str | Path, loss_mask: str) -> float:
    key = f"{Path(tokenizer_dir).resolve()}:{loss_mask}"
    if key not in pool.per_char:
        from ..io.masks import load_tokenizer, tokenize_example

        tok = load_tokenizer(str(tokenizer_dir))
        ids = members["id"].drop_duplicates().head(CALIBRATION_EXAMPLES).tolist()
        n = sum(tokenize_example(t, tok, loss_mask)["n_tokens"] for t in store.iter_trajectories(ids=ids))
        total, _ = _char_parts(store.text_chars(ids), loss_mask)
        pool.per_char[key] = n / max(int(total.sum()), 1)
    return pool.per_char[key]


def add_token_totals(store: Store, plan: Any, pool: Pool, tokenizer_dir: str | Path | None = None,
                     exact: bool = False) -> None:
    """Add `tokens` and `trained_tokens` (those that carry loss under the spec's mask) to each cell.

    Characters are counted in the database, over every member (`exact`) or over a sample of each cell's
    candidates (scaled to its count); they become tokens at 4 characters a token (a labelled estimate), or at
    the tokens per character a local tokenizer gives on a few members.
    """
    m, mask = plan.members, plan.spec.loss_mask
    per_char, label = 1 / CHARS_PER_TOKEN, f"≈ characters / {CHARS_PER_TOKEN} (estimate)"
    if tokenizer_dir and len(m):
        per_char = _per_char(store, pool, m, tokenizer_dir, mask)
        label = (f"tokenizer {Path(tokenizer_dir).name}: tokens per character measured on up to "
                 f"{CALIBRATION_EXAMPLES} members")
    if exact:
        chars = store.text_chars(m["id"].drop_duplicates().tolist()).set_index("id").reindex(m["id"])
        total, trained = _char_parts(chars, mask)
        codes, cells = pd.factorize(m["cell"])
        tokens = pd.Series(np.bincount(codes, weights=total.to_numpy(), minlength=len(cells)) * per_char, index=cells)
        trained_tokens = pd.Series(np.bincount(codes, weights=trained.to_numpy(), minlength=len(cells)) * per_char,
                                   index=cells)
        label += "; characters counted over every member"
    else:
        means = _sampled_cell_chars(store, pool)
        total, trained = _char_parts(means, mask)
        got = plan.cells.set_index("cell")["got"]
        tokens, trained_tokens = total.reindex(got.index).fillna(0) * got * per_char, \
            trained.reindex(got.index).fillna(0) * got * per_char
        label += f"; characters from a sample of up to {SAMPLE_PER_CELL} trajectories per cell"
    plan.cells["tokens"] = plan.cells["cell"].map(tokens).fillna(0).round().astype(int)
    plan.cells["trained_tokens"] = plan.cells["cell"].map(trained_tokens).fillna(0).round().astype(int)
    plan.token_label = label
