"""Fine-tuning through the OpenAI API (or any server that speaks it): export, upload, create, follow, cancel.

The API key comes from the caller or $OPENAI_API_KEY and is never stored; the base URL (config, else
$OPENAI_BASE_URL) is kept with the job so that it is followed at the same server. Every API error surfaces as
an `OpenAIJobError` carrying the API's own message.
"""

from __future__ import annotations

import json
import os
import re
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..mixing.export import write_splits
from ..errors import FireactError, PrerequisiteError, missing_package
from ..files import read_json_lines, write_file, write_text
from ..redact import redact_value, remember, url_password
from ..curation.team.roles import actor
from .config import OpenAITrainConfig, default_run_folder
from .local import METRICS_FILE
from ..records import JobStatus, RegisteredModel, TrainJob

if TYPE_CHECKING:
    from ..store import Store

STATUS: dict[str, JobStatus] = {"validating_files": "queued", "queued": "queued", "running": "running", "succeeded": "succeeded",
          "failed": "failed", "cancelled": "cancelled"}
EVENTS_FILE = "events.jsonl"
STEP_RE = re.compile(r"Step (\d+)/(\d+): training loss=([0-9.eE+-]+)")


class OpenAIJobError(FireactError):
    """The fine-tuning API refused or could not be reached; the message is the API's."""


def make_client(base_url: str = "", api_key: str | None = None):
    try:
        from openai import OpenAI
    except ImportError as exc:
        raise missing_package("openai") from exc
    key = api_key or os.environ.get("OPENAI_API_KEY")
    remember(key, url_password(base_url))
    if not key:
        raise PrerequisiteError("no OpenAI API key: set OPENAI_API_KEY or type the key on the Train page")
    return OpenAI(api_key=key, base_url=base_url or os.environ.get("OPENAI_BASE_URL") or None, max_retries=2,
                  timeout=60)


def call(what: str, fn: Callable, *args: Any, **kwargs: Any) -> Any:
    """Run one API call; its failure becomes an OpenAIJobError that says which call and what the API said."""
    import openai

    try:
        return fn(*args, **kwargs)
    except openai.APIStatusError as exc:
        err = exc.body.get("error", exc.body) if isinstance(exc.body, dict) else None
        message = err.get("message") if isinstance(err, dict) else None
        raise OpenAIJobError(f"OpenAI API error on {what}: HTTP {exc.status_code}: {message or exc.message}") from exc
    except openai.APIConnectionError as exc:
        raise OpenAIJobError(f"OpenAI API unreachable on {what}: {exc}") from exc
    except openai.APIError as exc:
        raise OpenAIJobError(f"OpenAI API error on {what}: {exc.message}") from exc


def export_chat_files(store: Store, dataset: str, folder: Path) -> dict[str, Path]:
    """The version's train (and val) members as OpenAI chat JSONL; steps not trained on get `weight: 0`."""
    return {split: path for split, (path, _) in write_splits(store, dataset, "openai-jsonl", folder).items()}


def preference_row(pair: Any) -> dict[str, Any]:
    """A step pair as the API's preference fine-tuning reads it: the shared context as the input messages, one
    assistant message on each side."""
    return {"input": {"messages": pair.prompt}, "preferred_output": pair.chosen,
            "non_preferred_output": pair.rejected}


def export_preference_files(store: Store, dataset: str, folder: Path) -> dict[str, Any]:
    """A version of step pairs' train (and val) pairs in the API's preference JSONL."""
    from ..curation.pairs import dataset_pairs, pair_level

    if pair_level(store.get_dataset_version(dataset)) != "step":
        raise FireactError(f"dataset version '{dataset}' holds trajectory-level pairs: OpenAI's preference "
                           "fine-tuning takes one assistant message on each side, so make a version of step pairs")
    by_split = dataset_pairs(store, dataset)
    if not by_split.get("train"):
        raise FireactError(f"dataset version '{dataset}' gives no preference pair in its train split")
    folder.mkdir(parents=True, exist_ok=True)
    files = {}
    for split in ("train", "val"):
        if by_split.get(split):
            with write_file(folder / f"{split}.jsonl", force=True) as out:
                for pair in by_split[split]:
                    out.write(json.dumps(preference_row(pair), ensure_ascii=False) + "\n")
            files[split] = folder / f"{split}.jsonl"
    return files


def _upload(client: Any, path: Path) -> str:
    with path.open("rb") as f:
        return call(f"files.create ({path.name})", client.files.create, file=(path.name, f.read()),
                    purpose="fine-tune").id


def start_openai_job(store: Store, config: OpenAITrainConfig, api_key: str | None = None,
                     by: str | None = None) -> TrainJob:
    """Export, upload and create the remote job; the job is recorded only once the API has accepted it."""
    by = actor(store, by, "train")
    config.check_paths()
    config.dataset_hash = store.get_dataset_version(config.dataset).content_hash
    job = TrainJob(kind="openai", dataset=config.dataset, base_model=config.model)
    run = Path(config.out).expanduser().resolve() if config.out else default_run_folder(store, job.id)
    config.out = str(run)
    config.base_url = config.base_url or os.environ.get("OPENAI_BASE_URL", "")
    client = make_client(config.base_url, api_key)
    dpo = config.method == "dpo"
    files = (export_preference_files if dpo else export_chat_files)(store, config.dataset, run / "data")
    ids = {split: _upload(client, path) for split, path in files.items()}
    options: dict[str, Any] = {"model": config.model, "training_file": ids["train"]}
    if "val" in ids:
        options["validation_file"] = ids["val"]
    if dpo:
        hyper: dict[str, Any] = {"n_epochs": config.epochs} if config.epochs else {}
        if config.beta:
            hyper["beta"] = config.beta
        options["method"] = {"type": "dpo", "dpo": {"hyperparameters": hyper}}
    elif config.epochs:
        options["hyperparameters"] = {"n_epochs": config.epochs}
    if config.suffix:
        options["suffix"] = config.suffix
    if config.seed:
        options["seed"] = config.seed
    remote = call("fine_tuning.jobs.create", client.fine_tuning.jobs.create, **options)
    job.remote_id, job.out, job.status = remote.id, str(run), STATUS.get(remote.status, "queued")
    job.config = {**config.to_dict(), "files": ids}
    saved = store.save_job(job)
    store.record_owner("train_job", saved.id, by)
    return saved


def _write_run_files(run: Path, events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """events.jsonl (oldest first) and metrics.jsonl from the "Step N/M: training loss=X" events."""
    run.mkdir(parents=True, exist_ok=True)
    write_text(run / EVENTS_FILE, "".join(json.dumps(redact_value(e)) + "\n" for e in events))
    rows = []
    for e in events:
        m = STEP_RE.search(e.get("message", ""))
        if m:
            rows.append({"step": int(m.group(1)), "max_steps": int(m.group(2)), "loss": float(m.group(3))})
    write_text(run / METRICS_FILE, "".join(json.dumps(r) + "\n" for r in rows))
    return rows


def read_events(run: str | Path) -> list[dict[str, Any]]:
    return list(read_json_lines(Path(run) / EVENTS_FILE))


def refresh_openai_job(store: Store, job: TrainJob, api_key: str | None = None) -> TrainJob:
    """Ask the API how the job is going; record status, events and losses; register the model on success."""
    if job.finished:
        return job
    client = make_client(job.config.get("base_url", ""), api_key)
    remote = call(f"fine_tuning.jobs.retrieve ({job.remote_id})", client.fine_tuning.jobs.retrieve, job.remote_id)
    page = call(f"fine_tuning.jobs.list_events ({job.remote_id})", client.fine_tuning.jobs.list_events,
                job.remote_id, limit=100)
    events = sorted((e.model_dump() for e in page.data), key=lambda e: (e["created_at"], e["id"]))
    rows = _write_run_files(job.folder, events)
    fields: dict[str, Any] = {"status": STATUS.get(remote.status, job.status)}
    if rows:
        fields.update(steps=rows[-1]["step"], loss_first=rows[0]["loss"], loss_last=rows[-1]["loss"])
    if remote.status == "failed":
        err = remote.error
        fields["error"] = f"the fine-tuning job failed at the API: {getattr(err, 'message', None) or err}"
    job = store.update_job(job.id, **fields)
    if remote.status == "succeeded" and remote.fine_tuned_model:
        name = job.config.get("model_name") or remote.fine_tuned_model
        store.register_model(RegisteredModel(name=name, kind="openai", path_or_id=remote.fine_tuned_model,
                                             base_model=job.base_model, dataset=job.dataset, job=job.id,
                                             config=job.config))
    return job


def cancel_openai_job(store: Store, job: TrainJob, api_key: str | None = None) -> TrainJob:
    client = make_client(job.config.get("base_url", ""), api_key)
    remote = call(f"fine_tuning.jobs.cancel ({job.remote_id})", client.fine_tuning.jobs.cancel, job.remote_id)
    return store.update_job(job.id, status=STATUS.get(remote.status, "cancelled"), error="cancelled")


def follow_openai_job(store: Store, job_id: str, on_event: Callable[[str], None] | None = None, poll_s: float = 5.0,
                      api_key: str | None = None, timeout_s: float | None = None) -> TrainJob:
    """Poll until the job ends, passing each new event's message to `on_event`."""
    seen = 0
    deadline = time.monotonic() + timeout_s if timeout_s else None
    while True:
        job = refresh_openai_job(store, store.get_job(job_id), api_key)
        events = read_events(job.folder)
        for e in events[seen:]:
            if on_event:
                on_event(e.get("message", ""))
        seen = len(events)
        if job.finished:
            return job
        if deadline and time.monotonic() > deadline:
            raise OpenAIJobError(f"job {job_id} still {job.status} after {timeout_s:.0f}s; `fireact jobs` follows it")
        time.sleep(poll_s)
