"""What the Train page shows about a job: its row, curves, log, events, data report; and the form's defaults."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .jobs import log_tail, read_data_report, read_metrics
from .openai_jobs import read_events
from ..records import TrainJob

CURVES = [("loss", "training loss"), ("eval_loss", "eval loss"), ("learning_rate", "learning rate"),
          ("tokens_per_s", "tokens/s")]


def job_rows(jobs: list[TrainJob]) -> list[dict[str, Any]]:
    """One row per job for a table (newest first)."""
    return [{**j.summary(), "created": j.created_at.strftime("%Y-%m-%d %H:%M"),
             "error": (j.error or "").splitlines()[0] if j.error else ""} for j in jobs]


def job_label(job: TrainJob) -> str:
    return f"{job.id} · {job.kind} · {job.dataset} · {job.status}"


def job_detail(job: TrainJob) -> dict[str, Any]:
    """Metrics rows, log tail, remote events and the data report of a job's run folder."""
    run = Path(job.out) if job.out else None
    if run is None:
        return {"metrics": [], "log": "", "events": [], "report": {}}
    return {"metrics": read_metrics(run), "log": log_tail(run, 60), "report": read_data_report(run),
            "events": read_events(run) if job.kind == "openai" else []}


def curves_figure(metrics: list[dict[str, Any]]):
    """Plotly subplots of loss / eval loss, learning rate and tokens/s against the step (None without data)."""
    present = [(key, title) for key, title in CURVES if any(key in r for r in metrics)]
    if not present:
        return None
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    panels = [p for p in (("loss", "eval_loss"), ("learning_rate",), ("tokens_per_s",))
              if any(k in dict(present) for k in p)]
    fig = make_subplots(rows=1, cols=len(panels),
                        subplot_titles=[" / ".join(dict(CURVES)[k] for k in p if k in dict(present)) for p in panels])
    for col, keys in enumerate(panels, start=1):
        for key in keys:
            rows = [r for r in metrics if key in r]
            if rows:
                fig.add_trace(go.Scatter(x=[r["step"] for r in rows], y=[r[key] for r in rows], name=dict(CURVES)[key],
                                         mode="lines+markers" if len(rows) < 30 else "lines"), row=1, col=col)
        fig.update_xaxes(title_text="step", row=1, col=col)
    fig.update_layout(height=320, margin={"l": 20, "r": 20, "t": 40, "b": 20}, legend={"orientation": "h"})
    return fig


def describe_report(report: dict[str, Any]) -> str:
    if not report:
        return ""
    what = f"{report['dropped']} dropped" if report["overflow"] == "drop" else f"{report['truncated']} truncated"
    return (f"{report['examples']} training examples, {report['over_max_length']} longer than {report['max_length']} "
            f"tokens ({what}); {report['kept']} kept, {report['tokens']:,} tokens, {report['trained_tokens']:,} "
            f"with loss; {report.get('val_examples', 0)} validation examples")
