"""Train: fine-tune on a dataset version (locally with LoRA or full, or through the OpenAI API), watch jobs
live, cancel or resume them, and send the models they produce to Generate for evaluation."""

from __future__ import annotations

import streamlit as st

from fireact_core.errors import FireactError
from fireact_core.generation.tasks import list_tasks
from fireact_core.generation.tools import SEARCH_KINDS
from fireact_core.training import LocalTrainConfig, OpenAITrainConfig
from fireact_core.training import jobs as runner
from fireact_core.training.evaluate import default_tasks_dir, start_evaluation
from fireact_core.training.model_card import models_with_facts
from fireact_core.training.openai_jobs import start_openai_job
from fireact_core.training.views import curves_figure, describe_report, job_detail, job_label, job_rows
from ui import annotator, page_setup, show_error
from ui_train import LENGTH, config_form

store = page_setup("Train", ":material/model_training:")
who = annotator()
st.title("Train")
datasets = [v.name for v in store.list_dataset_versions()]


def start(kind: str, values: dict, api_key: str = "") -> None:
    try:
        if kind == "local":
            job = runner.start_local_job(store, LocalTrainConfig(**values), by=who)
        else:
            job = start_openai_job(store, OpenAITrainConfig(**values), api_key=api_key or None, by=who)
    except FireactError as exc:
        show_error(exc)
        return
    st.success(f"Job {job.id} started ({job.status}); follow it under Jobs.")


tab_local, tab_openai, tab_jobs, tab_models = st.tabs(["Local", "OpenAI", "Jobs", "Models"])
with tab_local:
    if not datasets:
        st.info("No dataset version yet: make one on the Mix page, then train on it here.")
    else:
        length = st.segmented_control("Train for", list(LENGTH), default="epochs", key="local.length",
                                      format_func=LENGTH.get, help="a number of passes over the data, or of "
                                      "optimiser steps: one or the other") or "epochs"
        with st.form("local"):
            values = config_form(LocalTrainConfig, "local", datasets, length)
            if st.form_submit_button("Start training", type="primary"):
                start("local", values)
with tab_openai:
    if not datasets:
        st.info("No dataset version yet: make one on the Mix page, then fine-tune on it here.")
    else:
        with st.form("openai"):
            values = config_form(OpenAITrainConfig, "openai", datasets)
            key = st.text_input("API key (empty: $OPENAI_API_KEY; never stored)", type="password")
            if st.form_submit_button("Create fine-tuning job", type="primary"):
                start("openai", values, key)


def job_actions(job, api_key: str) -> None:
    c1, c2, _ = st.columns([1, 1, 4])
    try:
        if not job.finished and c1.button("Cancel", key=f"cancel.{job.id}"):
            runner.cancel_job(store, job.id, api_key=api_key or None, by=who)
            st.rerun()
        if job.kind != "openai" and job.status in ("failed", "cancelled") and c2.button("Resume", key=f"resume.{job.id}",
                                                                                      help="from the newest checkpoint"):
            runner.resume_job(store, job.id, by=who)
            st.rerun()
    except FireactError as exc:
        show_error(exc)


def show_job(job_id: str, api_key: str) -> None:
    job = store.get_job(job_id)
    if job.kind == "openai" and not job.finished:
        try:
            from fireact_core.training.openai_jobs import refresh_openai_job

            job = refresh_openai_job(store, job, api_key=api_key or None)
        except FireactError as exc:
            show_error(exc)
    detail = job_detail(job)
    st.markdown(f"**{job.status}** · {job.kind} on `{job.dataset}` from `{job.base_model}` · step {job.steps}"
                + (f" · loss {job.loss_first:.4f} → {job.loss_last:.4f}" if job.loss_first is not None else ""))
    if job.status == "failed":
        st.error(f"Job {job.id} failed")
        st.code(job.error or "", language=None)
    if describe_report(detail["report"]):
        st.caption(describe_report(detail["report"]))
    fig = curves_figure(detail["metrics"])
    if fig is not None:
        st.plotly_chart(fig, key=f"curves.{job.id}")
    job_actions(job, api_key)
    if detail["events"]:
        st.dataframe([{"level": e["level"], "message": e["message"]} for e in detail["events"][-20:]], hide_index=True)
    if detail["log"] and job.status != "failed":
        with st.expander("Log (last lines)"):
            st.code(detail["log"], language=None)


runner.refresh_jobs(store, remote=False)
LIVE = any(not j.finished for j in store.list_jobs())  # while a job runs, the Jobs and Models tabs refresh themselves


def follow_jobs(seen_live: bool) -> None:
    """Once the last running job has ended, redraw the whole page (new models, no more polling)."""
    if seen_live and not any(not j.finished for j in store.list_jobs()):
        st.rerun(scope="app")


@st.fragment(run_every=3 if LIVE else None)
def jobs_panel() -> None:
    for problem in runner.refresh_jobs(store, remote=False):
        st.warning(problem)
    jobs = store.list_jobs()
    if not jobs:
        st.info("No training job yet: start one under Local or OpenAI, or with `fireact train`.")
        return
    st.dataframe(job_rows(jobs), hide_index=True, key="jobs.table")
    ids = [j.id for j in jobs]
    by_id = {j.id: j for j in jobs}
    chosen = st.selectbox("Job", ids, format_func=lambda i: job_label(by_id[i]), key="jobs.chosen")
    key = st.text_input("API key for OpenAI jobs (empty: $OPENAI_API_KEY)", type="password", key="jobs.key")
    show_job(chosen, key)
    follow_jobs(LIVE)


@st.fragment(run_every=3 if LIVE else None)
def models_panel() -> None:
    models = store.list_models()
    if not models:
        st.info("No model yet: a job that succeeds registers its adapter, model folder or fine-tuned name here.")
        return
    st.dataframe([{k: v for k, v in facts.items() if k not in ("settings", "scores")}
                  | {"evaluations": len(facts["scores"])} for facts in models_with_facts(store)], hide_index=True)
    name = st.selectbox("Model", [m.name for m in models], key="models.chosen")
    c1, c2, c3, c4 = st.columns(4)
    task = c1.selectbox("Task", list_tasks(), index=list_tasks().index("hotpotqa"))
    split = c2.text_input("Split", "dev")
    sample = int(c3.number_input("Questions (sample)", 1, 100_000, 50))
    search = c4.selectbox("Search", SEARCH_KINDS, index=SEARCH_KINDS.index("local"))
    tasks_dir = st.text_input("Tasks folder", default_tasks_dir())
    if st.button("Evaluate now", type="primary", help="a ReAct run of this model in fine-tuned mode"):
        try:
            run = start_evaluation(store, name, task, split, by=who, sample=sample, search=search, tasks_dir=tasks_dir)
            st.success(f"Evaluation run {run} started; follow it on the Generate page.")
        except FireactError as exc:
            show_error(exc)
    st.page_link("pages/5_Generate.py", label=f"Evaluate {name} on {task} {split} (fine-tuned mode)",
                 icon=":material/play_arrow:",
                 query_params={"model": name, "mode": "finetuned", "task": task, "split": split})


with tab_jobs:
    jobs_panel()
with tab_models:
    models_panel()
