"""Records of training: a job (local or remote) and a model it produced."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from ..records import new_id, now

JobKind = Literal["lora", "full", "openai"]
JobStatus = Literal["queued", "running", "succeeded", "failed", "cancelled"]
FINAL_STATUSES = ("succeeded", "failed", "cancelled")


class TrainJob(BaseModel):
    """One training run: local (LoRA or full, a process on this machine) or remote (an OpenAI job)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(default_factory=new_id)
    kind: JobKind
    status: JobStatus = "queued"
    dataset: str
    base_model: str
    out: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    steps: int = 0
    loss_first: float | None = None
    loss_last: float | None = None
    error: str | None = None
    pid: int | None = None
    remote_id: str | None = None
    created_at: datetime = Field(default_factory=now)
    updated_at: datetime = Field(default_factory=now)

    @property
    def finished(self) -> bool:
        return self.status in FINAL_STATUSES

    def summary(self) -> dict[str, Any]:
        """What `fireact jobs --json` prints."""
        return self.model_dump(mode="json", include={"id", "kind", "status", "dataset", "base_model", "out", "steps",
                                                      "loss_first", "loss_last", "error"})


class RegisteredModel(BaseModel):
    """A model a job produced: a LoRA adapter folder, a full model folder, or a remote fine-tuned model name."""

    model_config = ConfigDict(extra="forbid")

    name: str
    kind: JobKind
    path_or_id: str
    base_model: str
    dataset: str | None = None
    job: str | None = None
    config: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime = Field(default_factory=now)

    def summary(self) -> dict[str, Any]:
        """What `fireact models --json` prints."""
        return self.model_dump(mode="json", include={"name", "kind", "path_or_id", "base_model", "dataset", "job"})
