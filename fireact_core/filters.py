"""The filter that Browse, the review queue, Compare and the dashboards' drill-downs share.

It round-trips through a URL query string, so a filtered view can be shared, reloaded, and opened
from another page (`Browse?source=run-a&em=wrong&q=Paris`).
"""

from __future__ import annotations

from typing import Any, Literal, Mapping

from pydantic import BaseModel, ConfigDict, ValidationError

LIST_FIELDS = ("source", "model", "task", "method", "lint", "label")


class TrajectoryFilter(BaseModel):
    model_config = ConfigDict(extra="ignore")

    source: list[str] = []
    model: list[str] = []
    task: list[str] = []
    method: list[str] = []
    lint: list[str] = []
    label: list[str] = []
    em: Literal["right", "wrong"] | None = None
    review: Literal["accepted", "rejected", "unreviewed"] | None = None
    status: Literal["finished", "unfinished", "failed"] | None = None
    steps_min: int | None = None
    steps_max: int | None = None
    q: str | None = None
    ids: list[str] = []

    def to_query(self) -> dict[str, str]:
        """Query-string parameters; lists are comma-joined, empty fields left out."""
        out: dict[str, str] = {}
        for key, value in self.model_dump().items():
            if value in (None, "", []):
                continue
            out[key] = ",".join(value) if isinstance(value, list) else str(value)
        return out

    @classmethod
    def from_query(cls, params: Mapping[str, Any]) -> "TrajectoryFilter":
        data: dict[str, Any] = {}
        for key, value in params.items():
            if isinstance(value, list):
                value = ",".join(value)
            if value in (None, ""):
                continue
            if key in LIST_FIELDS or key == "ids":
                data[key] = [v for v in str(value).split(",") if v]
            else:
                data[key] = value
        try:
            return cls.model_validate(data)
        except ValidationError:
            valid = {k: v for k, v in data.items() if _valid(k, v)}
            return cls.model_validate(valid)

    def is_empty(self) -> bool:
        return not self.to_query()


def _valid(key: str, value: Any) -> bool:
    try:
        TrajectoryFilter.model_validate({key: value})
        return True
    except ValidationError:
        return False
