"""Generate: run an agent (IO, CoT, ReAct, Reflexion) over a task's questions with a model and a search tool;
watch the progress of any run (started here or from the CLI), cancel it, open its trajectories in Browse."""

from __future__ import annotations

import streamlit as st

from fireact_core.generation import engine as engine
from fireact_core.errors import FireactError
from fireact_core.generation.models.pricing import price_table
from fireact_core.curation.edits import md_escape
from fireact_core.names import display_names
from fireact_core.generation.preflight import in_page_words, run_problems
from fireact_core.generation.prompts import import_fireact_prompt, save_examples, version_row
from fireact_core.records import METHODS
from fireact_core.generation.tasks import list_tasks
from fireact_core.generation.tools import SEARCH_KINDS
from ui import annotator, page_setup, panel_on_demand, plain_table, show_error

store = page_setup("Generate", ":material/play_arrow:")
who = annotator()
ss = st.session_state
params = st.query_params.to_dict()
st.title("Generate")

registered = {m.name: m for m in engine.registered_models(store)}
wanted = params.get("model", "")
preset = engine.model_settings(registered[wanted]) if wanted in registered else {}
BACKENDS = ["endpoint", "local folder"] + (["registered model"] if registered else [])

MORE = {"gen_tasks_dir": engine.default_tasks_dir(), "gen_questions": "", "gen_corpus": "", "gen_perturb": "off",
        "gen_perturb_p": 0.5, "gen_temperature": 0.0, "gen_concurrency": 0, "gen_max_steps": 0}
for key, value in MORE.items():
    ss.setdefault(key, value)


def more_summary() -> str:
    perturb = "off" if ss["gen_perturb"] == "off" else f"{ss['gen_perturb']} at p={ss['gen_perturb_p']:g}"
    files = [f"{what} {md_escape(ss[key])}" for what, key in (("tasks folder", "gen_tasks_dir"), ("questions file", "gen_questions"),
                                                   ("corpus", "gen_corpus")) if ss[key] != MORE[key]]
    return " · ".join([f"Temperature {ss['gen_temperature']:g}", f"concurrency {ss['gen_concurrency'] or 'adaptive'}",
                       f"max steps {ss['gen_max_steps'] or 'default'}", f"perturbation {perturb}", *files])


more = panel_on_demand("More settings: sampling, limits, perturbation, folders", "gen_more_open",
                       icon=":material/settings:", holds=tuple(MORE))
st.caption(more_summary())
if more:  # drawn while open; what it holds applies to the next Start
    with more:
        keep = {"persist_state": "page"}
        m1, m2, m3 = st.columns(3)
        m1.number_input("Temperature", 0.0, 2.0, step=0.1, key="gen_temperature", **keep)
        m1.number_input("Concurrency", 0, 256, key="gen_concurrency", **keep,
                        help="0: adaptive (rises while answers come back, halves on 429s and timeouts)")
        m1.number_input("Max steps", 0, 50, key="gen_max_steps", **keep,
                        help="0: 8 with the Studio's prompts, FireAct's 11 rounds in its layout")
        m2.selectbox("Perturb observations", ["off", "none", "random"], key="gen_perturb", **keep)
        m2.slider("Perturbation probability", 0.0, 1.0, key="gen_perturb_p", **keep)
        m3.text_input("Tasks folder", key="gen_tasks_dir", **keep)
        m3.text_input("Questions file (custom task)", key="gen_questions", **keep)
        m3.text_input("Corpus JSONL (local search; empty: shipped corpus)", key="gen_corpus", **keep)
tasks_dir, questions_path, corpus = ss["gen_tasks_dir"], ss["gen_questions"], ss["gen_corpus"]
perturb, perturb_p, temperature = ss["gen_perturb"], ss["gen_perturb_p"], ss["gen_temperature"]
concurrency, max_steps = ss["gen_concurrency"], ss["gen_max_steps"]

with st.form("generate"):
    c1, c2, c3 = st.columns(3)
    task = c1.selectbox("Task", list_tasks(), index=list_tasks().index(params.get("task", "hotpotqa"))
                        if params.get("task") in list_tasks() else list_tasks().index("hotpotqa"),
                        help="custom: its questions file is set under More settings")
    split = c1.text_input("Split", params.get("split", "dev"))
    pick = c1.radio("Questions", ["range", "sample"], horizontal=True)
    r1, r2 = c1.columns(2)
    start = r1.number_input("Start / sample size", 0, value=0)
    end = r2.number_input("End (0: to the end) / seed", 0, value=10)
    method = c2.selectbox("Method", METHODS, index=METHODS.index("react"))
    modes = ["few-shot", "fine-tuned (chat)", "fine-tuned (alpaca)"]
    mode = c2.selectbox("Prompt", modes, index=1 if params.get("mode") == "finetuned" or preset else 0)
    backend = c2.selectbox("Backend", BACKENDS, index=2 if preset and len(BACKENDS) > 2 else 0)
    reg_name = c2.selectbox("Registered model", list(registered) or ["(none)"],
                            index=list(registered).index(wanted) if wanted in registered else 0)
    model = c2.text_input("Model name", preset.get("model", wanted or "gpt-4o-mini"))
    base_url = c2.text_input("Base URL (empty: $OPENAI_BASE_URL)", "")
    api_key = c2.text_input("API key (empty: $OPENAI_API_KEY; never stored)", "", type="password")
    search = c3.selectbox("Search", SEARCH_KINDS, help="local: the corpus set under More settings (empty: the "
                          "shipped one)")
    local_model = c3.text_input("Local model folder", preset.get("local_model") or "")
    adapter = c3.text_input("Adapter folder (optional)", preset.get("adapter") or "")
    run_name = c3.text_input("Run name (empty: made from the settings)", "")
    submitted = st.form_submit_button("Start", type="primary")

if submitted:
    fields = {"backend": "openai" if backend == "endpoint" else "local", "model": model,
              "local_model": local_model or None, "adapter": adapter or None}
    if backend == "registered model" and reg_name in registered:
        fields.update(engine.model_settings(registered[reg_name]))
    fields["mode"] = "fewshot" if mode == "few-shot" else "finetuned"
    name = run_name.strip() or engine.default_run_name(task, split, method, fields["model"])
    try:
        cfg = engine.RunConfig(
            run=name, task=task, split=split, tasks_dir=tasks_dir or None, questions_path=questions_path or None,
            start=int(start) if pick == "range" else 0, end=(int(end) or None) if pick == "range" else None,
            sample=int(start) if pick == "sample" else None, seed=int(end) if pick == "sample" else 0,
            method=method, finetuned_format="alpaca" if "alpaca" in mode else "chat", base_url=base_url or None,
            api_key=api_key or None, search=search, corpus=corpus or None,
            perturb=None if perturb == "off" else f"{perturb}:{perturb_p}", temperature=float(temperature),
            concurrency=int(concurrency) or None, max_steps=int(max_steps) or None, **fields)
        problems = run_problems(cfg)
        for problem in problems:
            st.error(problem)
        if not problems:
            ss["gen_run"] = ss["gen_watch"] = engine.start_run(store, cfg, by=who)
            st.success(f"Started run '{ss['gen_run']}'.")
    except FireactError as exc:
        st.error(in_page_words(str(exc)))
    except ValueError as exc:
        st.error(f"Check the settings: {exc}")



def progress(name: str) -> None:
    with store.session():
        run = engine.run_view(store, name)
        events = store.run_events(name, limit=20)
    status = "stalled (no sign of life)" if run.stalled else run.status
    st.progress(run.fraction, text=f"{run.attempted}/{run.total} questions · {status}")
    m = st.columns(6)
    m[0].metric("EM so far", f"{run.em:.3f}" if run.em is not None else "-")
    m[1].metric("Finished", run.finished)
    m[2].metric("Failed", run.failed)
    m[3].metric("Tokens", f"{run.tokens:,}")
    m[4].metric("Cost", f"${run.cost_usd:.4f}")
    m[5].metric("ETA", f"{int(run.eta_s // 60)}:{int(run.eta_s % 60):02d}" if run.eta_s is not None else "-")
    b1, b2 = st.columns(2)
    if run.status == "running" and b1.button("Cancel run", key=f"cancel:{name}"):
        engine.cancel_run(store, name, by=who)
        st.toast(f"Asked run '{name}' to stop.")
    if b2.button("Open in Browse", key=f"browse:{name}"):
        st.switch_page("pages/1_Browse.py", query_params={"source": name})
    if run.error:
        st.error(run.error)
    plain_table([{"at": e.at, "kind": e.kind, "message": e.message} for e in events])


RUNS = store.list_runs()


@st.fragment(run_every=2 if any(r.status == "running" for r in RUNS) else 10)
def runs_panel() -> None:
    """The run being watched: the newest one unless another was chosen; a run started here or from the command
    line shows up on its own."""
    runs = [r.name for r in store.list_runs()]
    if not runs:
        st.info("No runs yet: fill in the form and press Start, or run `fireact generate ...`.")
        return
    if ss.get("gen_newest") != runs[-1]:  # a new run appeared: follow it
        ss["gen_newest"] = ss["gen_watch"] = runs[-1]
    if ss.get("gen_watch") not in runs:
        ss["gen_watch"] = runs[-1]
    short = display_names(runs)
    progress(st.selectbox("Run", runs, key="gen_watch", format_func=lambda r: short.get(r, r)))


runs_panel()

examples_panel = panel_on_demand("Few-shot examples (versioned)", "gen_examples_open", icon=":material/library_books:")
if examples_panel:
    with examples_panel:
        e1, e2 = st.columns(2)
        ex_task = e1.selectbox("Task", [t for t in list_tasks() if t != "custom"], key="ex_task")
        ex_method = e2.selectbox("Method", METHODS, key="ex_method")
        row = version_row(store, ex_task, ex_method)
        examples, version, layout = row.examples, row.version, row.layout
        st.caption(f"Version {version}" + (" (shipped)" if version == 0 else "") + (
            f"; FireAct's layout, from {row.source}: sent exactly as FireAct's generation.py sends it"
            if layout == "fireact" else "; examples are separated by a line reading ---"))
        text = st.text_area("Examples", "\n---\n".join(examples), height=300, key=f"ex:{ex_task}:{ex_method}:{version}")
        note = st.text_input("What changed", key="ex_note")
        if st.button("Save as a new version"):
            try:
                parts = [text] if layout == "fireact" else text.split("\n---\n")
                saved = save_examples(store, ex_task, ex_method, parts, who, note or None, layout, row.source)
                st.success(f"Saved version {saved}.")
            except FireactError as exc:
                show_error(exc)
        f1, f2 = st.columns([3, 1], vertical_alignment="bottom")
        folder = f1.text_input("FireAct prompt folder ({method}_{task}[_google].txt files)", key="ex_fireact_dir")
        if f2.button("Load as a new version"):
            try:
                saved = import_fireact_prompt(store, folder, ex_task, ex_method, who)
                st.success(f"Saved version {saved} from {folder}.")
            except FireactError as exc:
                show_error(exc)

prices_panel = panel_on_demand("Price table (USD per million tokens)", "gen_prices_open", icon=":material/payments:")
if prices_panel:
    with prices_panel:
        prices = price_table(store)
        rows = [{"model": m, "input": p[0], "output": p[1]} for m, p in prices.items()]
        if not st.toggle("Edit prices", key="prices_edit"):  # the editor's grid loads only when asked for
            plain_table(rows)
        else:
            edited = st.data_editor(rows, num_rows="dynamic", key="prices", width="stretch")
            if st.button("Save prices"):
                store.save_model_prices({r["model"]: (r["input"] or 0.0, r["output"] or 0.0) for r in edited
                                         if r.get("model")})
                st.success("Prices saved; new runs use them.")
