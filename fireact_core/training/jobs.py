"""The job runner: a local training job is its own process (or an `accelerate launch` of several), writing
to its run folder; the database learns how it is going whenever someone looks (`refresh_jobs`).

A job whose process is gone without having written `succeeded` to its status file is marked failed, with the
end of its log as the error, so a crash or a kill never leaves a job "running" for ever.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

from ..errors import FireactError
from ..files import read_json_lines, write_text
from ..curation.team.roles import actor
from .config import LocalTrainConfig, default_run_folder
from .data import export_dataset, export_pair_dataset
from .local import METRICS_FILE, REPORT_FILE, STATUS_FILE, result_folder
from ..records import JobKind, RegisteredModel, TrainJob

if TYPE_CHECKING:
    from ..store import Store

LOG_FILE = "train.log"
CONFIG_FILE = "config.json"
PROJECT_ROOT = Path(__file__).resolve().parents[2]
_CHILDREN: dict[int, subprocess.Popen] = {}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def launch_command(config: LocalTrainConfig, config_path: Path) -> list[str]:
    """`python -m fireact_core.training.local`, under `accelerate launch` for several processes or a config."""
    entry = ["-m", "fireact_core.training.local", "--config", str(config_path)]
    if not config.distributed:
        return [sys.executable, *entry]
    cmd = [sys.executable, "-m", "accelerate.commands.launch"]
    if config.accelerate_config:
        cmd += ["--config_file", config.accelerate_config]
        if config.num_processes > 1:
            cmd += ["--num_processes", str(config.num_processes)]
    else:
        cmd += ["--multi_gpu", "--num_processes", str(config.num_processes), "--num_machines", "1",
                "--mixed_precision", "no", "--dynamo_backend", "no", "--main_process_port", str(_free_port())]
    return [*cmd, *entry]


def _spawn(cmd: list[str], run: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "TOKENIZERS_PARALLELISM": "false",
           "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p)}
    with (run / LOG_FILE).open("ab") as log:
        log.write(f"$ {' '.join(cmd)}\n".encode())
        log.flush()
        proc = subprocess.Popen(cmd, cwd=run, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    _CHILDREN[proc.pid] = proc
    return proc


def start_local_job(store: Store, config: LocalTrainConfig, by: str | None = None) -> TrainJob:
    """Export the dataset version into a new run folder, save the config, start the training process."""
    by = actor(store, by, "train")
    config.check_paths()
    kind: JobKind = "full" if config.method == "full" else "lora"
    job = TrainJob(kind=kind, dataset=config.dataset, base_model=str(Path(config.base_model).resolve()))
    run = Path(config.out).expanduser().resolve() if config.out else default_run_folder(store, job.id)
    if (run / STATUS_FILE).exists() and not config.resume:
        raise FireactError(f"{run} holds another run already: choose a new run folder (or resume that run)")
    run.mkdir(parents=True, exist_ok=True)
    config.out = str(run)
    if not config.train_file:
        export = export_pair_dataset if config.objective == "dpo" else export_dataset
        info = export(store, config.dataset, run / "data")
        config.train_file, config.val_file = info["train_file"], info["val_file"]
    if config.dataset:
        config.dataset_hash = store.get_dataset_version(config.dataset).content_hash
    config.save(run / CONFIG_FILE)
    job.out, job.config = str(run), config.to_dict()
    store.save_job(job)
    store.record_owner("train_job", job.id, by)
    return _launch(store, job, config)


def _launch(store: Store, job: TrainJob, config: LocalTrainConfig) -> TrainJob:
    run = job.folder
    try:
        proc = _spawn(launch_command(config, run / CONFIG_FILE), run)
    except OSError as exc:
        store.update_job(job.id, status="failed", error=f"could not start the training process: {exc}")
        raise FireactError(f"could not start the training process: {exc}") from exc
    return store.update_job(job.id, status="running", pid=proc.pid, error=None)


def resume_job(store: Store, job_id: str, by: str | None = None) -> TrainJob:
    """Start a stopped local job again from its newest checkpoint, in the same run folder."""
    actor(store, by, "train")
    job = store.get_job(job_id)
    if job.kind == "openai":
        raise FireactError(f"job {job_id} runs at OpenAI: it cannot be resumed from here")
    if job.status in ("running", "queued") and process_alive(job.pid):
        raise FireactError(f"job {job_id} is still running")
    config = LocalTrainConfig.load(job.folder / CONFIG_FILE)
    config.resume = True
    config.save(job.folder / CONFIG_FILE)
    write_text(job.folder / STATUS_FILE, json.dumps({"state": "starting", "step": job.steps}))
    store.update_job(job_id, config=config.to_dict())
    return _launch(store, store.get_job(job_id), config)


def process_alive(pid: int | None) -> bool:
    """Whether the job's process still runs (a zombie, or a reused pid running something else, does not)."""
    if not pid:
        return False
    child = _CHILDREN.get(pid)
    if child is not None:
        return child.poll() is None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat, cmdline = Path(f"/proc/{pid}/stat"), Path(f"/proc/{pid}/cmdline")
    try:
        if stat.read_text().rsplit(")", 1)[1].split()[0] == "Z":
            return False
        return b"fireact_core" in cmdline.read_bytes() or b"accelerate" in cmdline.read_bytes()
    except (OSError, IndexError):
        return True


def read_status(run: str | Path) -> dict[str, Any]:
    path = Path(run) / STATUS_FILE
    try:
        return json.loads(path.read_text()) if path.exists() else {}
    except (OSError, json.JSONDecodeError):
        return {}


def read_metrics(run: str | Path) -> list[dict[str, Any]]:
    """Every row of metrics.jsonl (a row half-written at this moment is skipped)."""
    return list(read_json_lines(Path(run) / METRICS_FILE))


def read_data_report(run: str | Path) -> dict[str, Any]:
    path = Path(run) / REPORT_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def log_tail(run: str | Path, lines: int = 30) -> str:
    path = Path(run) / LOG_FILE
    if not path.exists():
        return ""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 64_000))
        text = f.read().decode("utf-8", "replace")
    return "\n".join(text.splitlines()[-lines:])


def _losses(run: Path) -> dict[str, Any]:
    losses = [(r["step"], r["loss"]) for r in read_metrics(run) if "loss" in r]
    if not losses:
        return {}
    return {"steps": losses[-1][0], "loss_first": losses[0][1], "loss_last": losses[-1][1]}


def register_result(store: Store, job: TrainJob) -> RegisteredModel:
    config = LocalTrainConfig.from_dict(job.config)
    objective = f"-{config.objective}" if config.objective != "sft" else ""
    name = config.model_name or f"{job.dataset}-{job.kind}{objective}-{job.id[:6]}"
    model = store.register_model(RegisteredModel(name=name, kind=job.kind, path_or_id=str(result_folder(config)),
                                                 base_model=job.base_model, dataset=job.dataset, job=job.id,
                                                 config=job.config))
    from .model_card import write_model_card

    try:
        write_model_card(store, model)
    except (OSError, FireactError):  # the model stands; the card is written again when a run of it ends
        pass
    return model


def refresh_local_job(store: Store, job: TrainJob) -> TrainJob:
    """Bring a local job's row up to date with its run folder and its process."""
    if job.finished or not job.out:
        return job
    run = Path(job.out)
    status, progress = read_status(run), _losses(run)
    steps = status.get("step", progress.get("steps", job.steps)) or 0
    fields = {"steps": steps, **{k: v for k, v in progress.items() if k != "steps"}}
    if status.get("state") == "succeeded":
        job = store.update_job(job.id, status="succeeded", error=None, **fields)
        register_result(store, job)
        return job
    if process_alive(job.pid):
        changed = any(getattr(job, k) != v for k, v in fields.items())
        return store.update_job(job.id, **fields) if changed else job
    tail = log_tail(run)
    reason = status.get("error") if status.get("state") == "failed" else (
        "the training process ended without finishing (killed, out of memory, or crashed)")
    return store.update_job(job.id, status="failed", error=f"{reason}\n--- end of {run / LOG_FILE} ---\n{tail}",
                            **fields)


def refresh_jobs(store: Store, remote: bool = True, api_key: str | None = None) -> list[str]:
    """Update every unfinished job; returns the problems met on the way (remote API errors), one line each."""
    problems = []
    for job in store.list_jobs():
        if job.finished:
            continue
        try:
            if job.kind == "openai":
                if remote:
                    from .openai_jobs import refresh_openai_job

                    refresh_openai_job(store, job, api_key=api_key)
            else:
                refresh_local_job(store, job)
        except FireactError as exc:
            problems.append(f"job {job.id}: {exc}")
    return problems


def _stop_group(pid: int, grace_s: float = 10.0) -> None:
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.killpg(pid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + grace_s
        while time.monotonic() < deadline and process_alive(pid):
            time.sleep(0.1)
        if not process_alive(pid):
            return


def cancel_job(store: Store, job_id: str, api_key: str | None = None, by: str | None = None) -> TrainJob:
    """Stop a job: its whole process group (every rank), or the remote job."""
    actor(store, by, "train")
    job = store.get_job(job_id)
    if job.finished:
        raise FireactError(f"job {job_id} has already {job.status}")
    if job.kind == "openai":
        from .openai_jobs import cancel_openai_job

        return cancel_openai_job(store, job, api_key=api_key)
    if job.pid:
        _stop_group(job.pid)
    return store.update_job(job_id, status="cancelled", error=f"cancelled at step {job.steps}")


def follow_job(store: Store, job_id: str, on_progress: Callable[[TrainJob, dict[str, Any]], None] | None = None,
               poll_s: float = 1.0) -> TrainJob:
    """Poll a job until it ends, calling `on_progress(job, status)` after each look."""
    while True:
        job = store.get_job(job_id)
        job = refresh_local_job(store, job) if job.kind != "openai" else job
        if on_progress:
            on_progress(job, read_status(job.out) if job.out else {})
        if job.finished:
            return job
        time.sleep(poll_s)
