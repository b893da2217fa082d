"""Hugging Face folder export against the peer: `fireact export --format hf` beside Hugging Face `datasets`
writing the same rows, in the same run.

    python bench/export_bench.py [--repeat 3]

Imports FireAct's multi-task chat file (and the multi-method Alpaca file) into a temporary database and saves a
version of every trajectory. Then, after a warm-up run of each, each measured `--repeat` times, taking turns (the median shown with the
spread):

    ours  export_dataset(..., "hf", DIR): members read from their snapshots, flagged messages, Parquet per split
          through pyarrow, the dataset card
    peer  the same members read the same way, then `datasets.Dataset.from_list(rows).to_parquet(...)` per split
          (what a user would write by hand; no card)

and prints both times and their ratio (peer / ours: above 1 means the export is faster than the peer), then the
same split into reading the members (shared by both) and writing them.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fireact_core.mixing.hub_cards import dataset_card
from fireact_core.mixing.export import export_dataset
from fireact_core.mixing.folders import HF_COLUMNS, WRITERS, _rows_by_split
from fireact_core.io.importer import import_files
from fireact_core.mixing.versions import MixSpec, save_mix
from fireact_core.records import DatasetVersion
from fireact_core.store import Store

SHARED = Path(__file__).resolve().parents[2] / "shared" / "fireact"


def peer(store: Store, name: str, out: Path) -> int:
    """The same rows written by Hugging Face `datasets`, one Parquet file per split."""
    version = store.get_dataset_version(name)
    rows = {split: [{k: r[k] for k in HF_COLUMNS} for r in members]
            for split, members in _rows_by_split(store, version).items()}
    return peer_write(rows, out)


def peer_write(rows: dict[str, list[dict]], out: Path) -> int:
    import datasets

    (out / "data").mkdir(parents=True, exist_ok=True)
    for split, members in rows.items():
        datasets.Dataset.from_list(members).to_parquet(str(out / "data" / f"{split}.parquet"))
    return sum(len(m) for m in rows.values())


def ours_write(version: DatasetVersion, rows: dict[str, list[dict]], out: Path) -> None:
    (out / "data").mkdir(parents=True)
    written = WRITERS["hf"](out, rows, version)
    (out / "README.md").write_text(dataset_card(version, "hf", rows, written), encoding="utf-8")


def timed_pair(first, second, repeat: int) -> tuple[tuple, tuple]:
    """(median, min, max) seconds of each function, after one warm-up run of each, the two taking turns."""
    first(), second()
    times: tuple[list, list] = ([], [])
    for _ in range(repeat):
        for fn, out in ((first, times[0]), (second, times[1])):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    return tuple((statistics.median(t), min(t), max(t)) for t in times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    import datasets

    datasets.disable_progress_bars()
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(Path(tmp) / "bench.duckdb")
        import_files(store, [SHARED / "finetune" / "gpt_multitask.jsonl",
                             SHARED / "finetune" / "alpaca_hotpotqa_multimethod.json"])
        n = store.count_trajectories()
        version = save_mix(store, MixSpec.parse({"size": n, "val_fraction": 0.1, "filters": {"dedupe": False}}), "all")
        runs = iter(range(10_000))
        ours, theirs = timed_pair(lambda: export_dataset(store, "all", "hf", Path(tmp) / f"ours-{next(runs)}"),
                                  lambda: peer(store, "all", Path(tmp) / f"peer-{next(runs)}"), args.repeat)
        saved = store.get_dataset_version("all")
        rows = _rows_by_split(store, saved)
        plain = {split: [{k: r[k] for k in HF_COLUMNS} for r in members] for split, members in rows.items()}
        reading, _ = timed_pair(lambda: _rows_by_split(store, saved), lambda: None, args.repeat)
        ours_w, theirs_w = timed_pair(lambda: ours_write(saved, rows, Path(tmp) / f"ours-w-{next(runs)}"),
                                      lambda: peer_write(plain, Path(tmp) / f"peer-w-{next(runs)}"), args.repeat)
    print(f"version of {version.size} trajectories ({version.n_train} train, {version.n_val} validation)")
    for label, (median, low, high) in (("whole: fireact export --format hf", ours),
                                       ("whole: read + datasets to_parquet", theirs),
                                       ("  reading the members (shared)", reading),
                                       ("  writing: ours (Parquet + card)", ours_w),
                                       ("  writing: datasets to_parquet", theirs_w)):
        print(f"{label:36} {median * 1000:8.0f} ms  (min {low * 1000:.0f}, max {high * 1000:.0f})")
    print(f"ratio peer / ours, whole export: {theirs[0] / ours[0]:.2f}; writing only: {theirs_w[0] / ours_w[0]:.2f}")


if __name__ == "__main__":
    main()
