"""Experiment tracking of a local job: its curves where researchers look for them, kept in its run folder.

`report_to` picks one tracker; each writes locally and needs no network:

    tensorboard  event files in RUN/tensorboard     (`tensorboard --logdir RUN/tensorboard`)
    wandb        an offline W&B run in RUN/wandb    (`wandb sync RUN/wandb/offline-run-*` uploads it later)
    mlflow       an MLflow file store in RUN/mlruns (`mlflow ui --backend-store-uri RUN/mlruns`)
    none         only metrics.jsonl (always written)

The run is opened here (rank 0 only) before training starts, with fixed local settings, and transformers' own
callback for the tracker logs into it; `open_tracking` closes it after the final evaluation, so the eval loss
lands in the same run. Nothing is read from the tracker's environment variables, so a remote address or a key
in the environment is never used.
"""

from __future__ import annotations

import importlib.util
import os
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Iterator

from ..errors import missing_package

TRACKERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlflow", "none": None}
FOLDERS = {"tensorboard": "tensorboard", "wandb": "wandb", "mlflow": "mlruns"}
PROJECT = "fireact"


def check_tracker(report_to: str) -> None:
    """Raise PrerequisiteError (with what to install) when the tracker's package is absent."""
    package = TRACKERS.get(report_to)
    if package and importlib.util.find_spec(package) is None:
        raise missing_package(package, "train")


def tracker_folder(run: str | Path, report_to: str) -> Path | None:
    """Where the tracker writes inside a run folder (None for `none`)."""
    return Path(run) / FOLDERS[report_to] if report_to in FOLDERS else None


@contextmanager
def _env(**values: str | None) -> Iterator[None]:
    """Set (or, for None, remove) environment variables for the block, then put them back."""
    old = {k: os.environ.get(k) for k in values}
    for key, value in values.items():
        _set(key, value)
    try:
        yield
    finally:
        for key, value in old.items():
            _set(key, value)


def _set(key: str, value: str | None) -> None:
    if value is None:
        os.environ.pop(key, None)
    else:
        os.environ[key] = value


@contextmanager
def _tensorboard(folder: Path, is_main: bool, name: str, config: dict[str, Any]) -> Iterator[list]:
    from transformers.integrations import TensorBoardCallback

    callback = TensorBoardCallback()
    callback.logging_dir = str(folder)  # also where it reopens a writer for the evaluation after training
    try:
        yield [callback]
    finally:
        if callback.tb_writer is not None:
            callback.tb_writer.close()


@contextmanager
def _wandb(folder: Path, is_main: bool, name: str, config: dict[str, Any]) -> Iterator[list]:
    with _env(WANDB_MODE="offline", WANDB_LOG_MODEL="false", WANDB_WATCH="false", WANDB_BASE_URL=None,
              WANDB_RUN_ID=None, WANDB_RESUME=None):
        import wandb
        from transformers.integrations import WandbCallback

        run = None
        if is_main:
            folder.mkdir(parents=True, exist_ok=True)
            settings = wandb.Settings(mode="offline", silent=True, console="off", x_disable_stats=True,
                                      save_code=False, disable_git=True)
            run = wandb.init(dir=str(folder.parent), project=PROJECT, name=name, config=config, settings=settings,
                             reinit="finish_previous")
        try:
            yield [WandbCallback()]
        finally:
            if run is not None:
                run.finish()


@contextmanager
def _mlflow(folder: Path, is_main: bool, name: str, config: dict[str, Any]) -> Iterator[list]:
    with _env(MLFLOW_ALLOW_FILE_STORE="true", MLFLOW_TRACKING_URI=None, MLFLOW_RUN_ID=None,
              MLFLOW_EXPERIMENT_NAME=None, MLFLOW_NESTED_RUN=None, HF_MLFLOW_LOG_ARTIFACTS=None):
        import mlflow
        from transformers.integrations import MLflowCallback

        previous = mlflow.get_tracking_uri() if is_main else None
        if is_main:
            mlflow.set_tracking_uri(folder.resolve().as_uri())
            mlflow.set_experiment(PROJECT)
            mlflow.start_run(run_name=name)
        try:
            yield [MLflowCallback()]
        finally:
            if is_main:
                mlflow.end_run()
            if previous is not None:
                mlflow.set_tracking_uri(previous)


OPENERS = {"tensorboard": _tensorboard, "wandb": _wandb, "mlflow": _mlflow}


@contextmanager
def open_tracking(report_to: str, run: str | Path, name: str, config: dict[str, Any],
                  is_main: bool = True) -> Iterator[list]:
    """The Trainer callbacks for `report_to`, with the tracker's local run open for as long as the block lasts
    (`is_main`: this process is rank 0, the only one that opens a run)."""
    check_tracker(report_to)
    folder = tracker_folder(run, report_to)
    if report_to not in OPENERS or folder is None:
        yield []
        return
    with OPENERS[report_to](folder, is_main, name, config) as callbacks:
        yield callbacks
