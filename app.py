"""FireAct Studio: the app's entry point and its home page (what is in the database, how to import files, where
to go next).

Served by `streamlit run serve.py` (or `make run`; see serve.py). The sidebar lists Home first, then the pages
of ui_pages.py that are present in pages/, each with its Material icon; `st.navigation` runs the chosen one.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import ui
from ui_pages import PAGES
from fireact_core.demo import load_demo
from fireact_core.errors import FireactError
from fireact_core.records import METHODS
from fireact_core.reports.overview import import_uploads, summary
from fireact_core.generation.tasks import list_tasks

ROOT = Path(__file__).resolve().parent


def _remember(key: str, action) -> None:
    """Run an import action from a button callback; keep its reports or its error to show beside the button."""
    try:
        st.session_state["home_result"] = (key, action(), None)
    except FireactError as exc:
        st.session_state["home_result"] = (key, [], str(exc))


def _load_demo() -> None:
    _remember("demo", lambda: load_demo(ui.get_store(), force=True, by=ui.annotator()))  # only on an empty database


def _import() -> None:
    files = st.session_state.get("home_files") or []
    if not files:
        st.session_state["home_result"] = ("import", [], "choose one or more .json or .jsonl files to import first")
        return
    _remember("import", lambda: import_uploads(
        ui.get_store(), [(f.name, f.getvalue()) for f in files], source=st.session_state.get("home_source", "").strip(),
        task=st.session_state.get("home_task"), method=st.session_state.get("home_method"),
        eval_splits=[(f.name, f.getvalue()) for f in st.session_state.get("home_eval") or []], by=ui.annotator(),
    ))


def show_result(key: str) -> None:
    """The outcome of the last demo load or import, under the button that started it."""
    result = st.session_state.get("home_result")
    if not result or result[0] != key:
        return
    del st.session_state["home_result"]
    _, reports, error = result
    if error:
        st.error(error)
        return
    rows = [{"file": Path(r.path).name, "format": r.format, "source": r.source, "rows read": r.rows,
             "trajectories added": r.added, "lints": ", ".join(f"{k} {n}" for k, n in r.lints.items()) or "none"}
            for r in reports]
    st.success(f"{'Demo data loaded' if key == 'demo' else 'Imported'}: {sum(r.added for r in reports)} "
               f"trajectories added from {len(reports)} file(s).")
    ui.plain_table(rows)
    for r in reports:
        if r.renamed_from:
            st.info(f"{Path(r.path).name}: another file holds the source '{r.renamed_from}', so it was added as "
                    f"'{r.source}'.")


def show_overview(store) -> bool:
    """What the database holds; False when it holds nothing yet."""
    ov = summary(store)
    if ov.empty:
        st.info(f"The database `{store.path}` holds no trajectories yet. Load the demo data (two models' runs "
                "over the same questions, and a small fine-tuning set), or import FireAct files below "
                "(or on the command line: `fireact import FILE...`).")
        st.button("Load demo data", key="home_demo", type="primary", on_click=_load_demo)
        return False
    flagged = sum(row["trajectories"] for row in ov.lints if row["lint"] != "failed")
    cols = st.columns(4)
    cols[0].metric("Trajectories", ov.trajectories)
    cols[1].metric("Sources", len(ov.sources))
    cols[2].metric("Tasks", len(ov.by_task))
    cols[3].metric("Lint findings", flagged, help="trajectories flagged by a data check, failed ones not counted")
    st.subheader("By source")
    ui.plain_table(ov.sources)
    left, right = st.columns(2)
    left.subheader("By task")
    with left:
        ui.plain_table([{"task": k, "trajectories": n} for k, n in ov.by_task.items()])
    right.subheader("By method")
    with right:
        ui.plain_table([{"method": k, "trajectories": n} for k, n in ov.by_method.items()])
    st.subheader("Lints")
    if ov.lints:
        ui.plain_table(ov.lints)
    else:
        st.caption("No data check flagged anything.")
    return True


def show_import(empty: bool) -> None:
    """The import form: in the page on an empty database, behind an "Import files" button once there is data
    (the overview comes first, and a closed form costs the page nothing to draw)."""
    st.subheader("Import")
    if empty:
        import_form()
    else:
        with st.popover("Import files", icon=":material/upload_file:"):
            import_form()
    show_result("import")


def import_form() -> None:
    st.caption("FireAct evaluation runs (trajs/*.json, text or chat), Alpaca JSON, OpenAI chat JSONL or native "
               "JSONL; the format is told from the content. The same reader as `fireact import`.")
    st.file_uploader("Trajectory files", type=["json", "jsonl"], accept_multiple_files=True, key="home_files")
    c1, c2, c3 = st.columns(3)
    c1.text_input("Source name", key="home_source", placeholder="default: the file name")
    c2.selectbox("Task", [t for t in list_tasks() if t != "custom"], index=None, key="home_task",
                 placeholder="inferred per trajectory")
    c3.selectbox("Method", METHODS, index=None, key="home_method", placeholder="inferred per trajectory")
    st.file_uploader("Evaluation splits (optional): questions found there are flagged eval_contamination",
                     type=["json", "jsonl", "csv"], accept_multiple_files=True, key="home_eval")
    st.button("Import", key="home_import", on_click=_import)


def show_pages() -> None:
    present = [p for p in PAGES if (ROOT / p[0]).exists()]
    if not present:
        return
    st.subheader("Pages")
    cols = st.columns(2)
    for i, (path, label, icon, what) in enumerate(present):
        cols[i % 2].page_link(path, label=f"{label}: {what}", icon=icon)


def home() -> None:
    store = ui.page_setup("Home")
    st.title("FireAct Studio")
    st.caption("Generate, curate, mix and fine-tune on language-agent trajectories, after FireAct (Chen et al., 2023).")
    with st.container():  # always there, so what follows keeps its place (an open import form stays open)
        show_result("demo")
    has_data = show_overview(store)
    show_pages()
    show_import(empty=not has_data)
    st.caption(f"Database: `{store.path}` (set with --db on the command line or $FIREACT_DB).")


def navigation() -> None:
    """Home first, then every page of PAGES whose script is present."""
    pages = [st.Page(home, title="Home", icon=":material/home:", default=True)]
    pages += [st.Page(path, title=label, icon=icon, url_path=label) for path, label, icon, _ in PAGES
              if (ROOT / path).exists()]
    st.set_page_config(page_title="FireAct Studio", page_icon=":material/local_fire_department:", layout="wide")
    st.navigation(pages).run()


navigation()
