"""The demo data in datasets/: FireAct-format runs and fine-tuning examples written for this project.

`make run` (through `fireact demo`) loads it into a database that holds no trajectories yet, so the app has
something to show on first start. Loading goes through the same importer as `fireact import`.
"""

from __future__ import annotations

from pathlib import Path

from .errors import PrerequisiteError
from .io.importer import ImportReport, import_files
from .store import Store

DEMO_DIR = Path(__file__).resolve().parents[1] / "datasets"
EVAL_SPLIT = Path("tasks") / "hotpotqa" / "test.json"


def demo_files(folder: Path = DEMO_DIR) -> list[Path]:
    """The trajectory files of the demo: evaluation runs (trajs/) and fine-tuning data (finetune/)."""
    files = sorted((folder / "trajs").glob("*.json")) + sorted((folder / "finetune").glob("*.json"))
    if not files:
        raise PrerequisiteError(
            f"no demo data in {folder}: run from a checkout of FireAct Studio "
            "(the files are written by datasets/make_demo.py)"
        )
    return files


def load_demo(store: Store, force: bool = False, folder: Path = DEMO_DIR, by: str | None = None) -> list[ImportReport]:
    """Import the demo files (with the demo's evaluation split, so leaks are flagged).

    Without `force` nothing happens when the database already holds trajectories (an empty list comes back).
    Loading again adds nothing: trajectory ids come from the file's content.
    """
    if not force and store.count_trajectories() > 0:
        return []
    return import_files(store, demo_files(folder), eval_splits=[folder / EVAL_SPLIT], by=by)
