"""Training jobs and the models they produced (SQL lives here; the tables are in schema.py)."""

from __future__ import annotations

import json
from typing import Any

from ..errors import FireactError, NotFoundError
from ..records import now
from ..redact import redact_text, redact_value
from ..records import RegisteredModel, TrainJob
from .connection import naive, utc
from .repository import Repository


JOB_COLUMNS = ["id", "kind", "status", "dataset", "base_model", "out", "config", "steps", "loss_first", "loss_last",
               "error", "pid", "remote_id", "created_at", "updated_at"]
MODEL_COLUMNS = ["name", "kind", "path_or_id", "base_model", "dataset", "job", "config", "created_at"]
UPDATABLE = {"status", "out", "config", "steps", "loss_first", "loss_last", "error", "pid", "remote_id"}


def _job_row(job: TrainJob) -> list[Any]:
    data = job.model_dump()
    data["config"] = json.dumps(redact_value(job.config), sort_keys=True, default=str)
    data["error"] = redact_text(data["error"])
    data["created_at"], data["updated_at"] = naive(job.created_at), naive(job.updated_at)
    return [data[c] for c in JOB_COLUMNS]


def _job_from(row: tuple) -> TrainJob:
    data = dict(zip(JOB_COLUMNS, row))
    data["config"] = json.loads(data["config"] or "{}")
    data["steps"] = data["steps"] or 0
    data["created_at"], data["updated_at"] = utc(data["created_at"]), utc(data["updated_at"])
    return TrainJob.model_validate(data)


def _model_from(row: tuple) -> RegisteredModel:
    data = dict(zip(MODEL_COLUMNS, row))
    data["config"] = json.loads(data["config"] or "{}")
    data["created_at"] = utc(data["created_at"])
    return RegisteredModel.model_validate(data)


class JobRepository(Repository):
    """Training jobs and the model registry."""

    def save_job(self, job: TrainJob) -> TrainJob:
        """Insert a job, or replace the row of a job with the same id."""
        with self.db.transaction() as con:
            con.execute("DELETE FROM train_jobs WHERE id = ?", [job.id])
            con.execute(f"INSERT INTO train_jobs ({', '.join(JOB_COLUMNS)}) VALUES ({', '.join('?' * len(JOB_COLUMNS))})",
                        _job_row(job))
        return job

    def update_job(self, job_id: str, **fields: Any) -> TrainJob:
        """Change some fields of a job (status, steps, losses, error, pid ...) and stamp `updated_at`."""
        unknown = set(fields) - UPDATABLE
        if unknown:
            raise FireactError(f"job fields {sorted(unknown)} cannot be updated; allowed: {sorted(UPDATABLE)}")
        if "config" in fields:
            fields["config"] = json.dumps(redact_value(fields["config"]), sort_keys=True, default=str)
        if "error" in fields:
            fields["error"] = redact_text(fields["error"])
        sets = ", ".join(f"{k} = ?" for k in fields)
        with self.db.transaction() as con:
            con.execute(f"UPDATE train_jobs SET {sets}, updated_at = ? WHERE id = ?",
                        [*fields.values(), naive(now()), job_id])
        return self.get_job(job_id)

    def get_job(self, job_id: str) -> TrainJob:
        with self.db.connect() as con:
            row = con.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM train_jobs WHERE id = ?", [job_id]).fetchone()
        if row is None:
            raise NotFoundError(f"no training job '{job_id}': `fireact jobs` lists them")
        return _job_from(row)

    def list_jobs(self, status: str | None = None) -> list[TrainJob]:
        """Newest first; `status` keeps only the jobs in that state."""
        where, params = ("WHERE status = ?", [status]) if status else ("", [])
        with self.db.connect() as con:
            rows = con.execute(f"SELECT {', '.join(JOB_COLUMNS)} FROM train_jobs {where} "
                               "ORDER BY created_at DESC, id", params).fetchall()
        return [_job_from(r) for r in rows]

    def register_model(self, model: RegisteredModel) -> RegisteredModel:
        """Add a model to the registry; a name already taken by another job's model is refused."""
        with self.db.transaction() as con:
            row = con.execute("SELECT job FROM models WHERE name = ?", [model.name]).fetchone()
            if row is not None and row[0] != model.job:
                raise FireactError(f"a model named '{model.name}' is already registered (from job {row[0]}): "
                                   "choose another name")
            con.execute("DELETE FROM models WHERE name = ?", [model.name])
            data = model.model_dump()
            data["config"] = json.dumps(redact_value(model.config), sort_keys=True, default=str)
            data["created_at"] = naive(model.created_at)
            con.execute(f"INSERT INTO models ({', '.join(MODEL_COLUMNS)}) VALUES ({', '.join('?' * len(MODEL_COLUMNS))})",
                        [data[c] for c in MODEL_COLUMNS])
        return model

    def get_model(self, name: str) -> RegisteredModel:
        with self.db.connect() as con:
            row = con.execute(f"SELECT {', '.join(MODEL_COLUMNS)} FROM models WHERE name = ?", [name]).fetchone()
        if row is None:
            raise NotFoundError(f"no registered model '{name}': `fireact models` lists them")
        return _model_from(row)

    def list_models(self) -> list[RegisteredModel]:
        with self.db.connect() as con:
            rows = con.execute(f"SELECT {', '.join(MODEL_COLUMNS)} FROM models ORDER BY created_at DESC, name").fetchall()
        return [_model_from(r) for r in rows]

    def model_of_job(self, job_id: str) -> RegisteredModel | None:
        with self.db.connect() as con:
            row = con.execute(f"SELECT {', '.join(MODEL_COLUMNS)} FROM models WHERE job = ?", [job_id]).fetchone()
        return _model_from(row) if row else None
