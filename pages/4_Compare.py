"""Compare two runs over the same questions: the contingency table (each cell a filter of the list below) and,
per question, the two trajectories side by side with their steps aligned and differences marked."""

from __future__ import annotations

import streamlit as st

import ui_fork
from fireact_core.curation.cards import pair_cards_html
from fireact_core.curation.compare import CELL_LABELS
from fireact_core.curation.edits import browse_query, md_escape
from fireact_core.filters import TrajectoryFilter
from fireact_core.names import display_names
from fireact_core.reports.tables import Column
from ui import page_setup
from ui_table import pick_table

LIST_SIZE = 200


def plural(n: int, one: str, many: str) -> str:
    return f"{n} {one if n == 1 else many}"


store = page_setup("Compare", ":material/compare_arrows:")
params = st.query_params.to_dict()
if params.get("family"):  # a trajectory and its continuations
    ui_fork.family_view(store, params["family"])
    st.stop()
st.title("Compare two runs")
sources = store.facet_values()["source"]
short = display_names(sources)
if len(sources) < 2:
    st.info("Compare needs two runs (sources) in the database: import or generate another one first.")
    st.stop()


def pick(label: str, key: str, fallback: int) -> str:
    wanted = params.get(key)
    index = sources.index(wanted) if wanted in sources else min(fallback, len(sources) - 1)
    return st.selectbox(label, sources, index=index, key=f"cmp_{key}", format_func=short.get,
                        help="the full name is in the address (a= and b=)")


c1, c2 = st.columns(2)
with c1:
    run_a = pick("Run A", "a", 0)
with c2:
    run_b = pick("Run B", "b", 1)
cell = params.get("cell") if params.get("cell") in CELL_LABELS else None
st.query_params.update({"a": run_a, "b": run_b})
if run_a == run_b:
    st.info("Choose two different runs.")
    st.stop()

with store.session():
    counts = store.compare_counts(run_a, run_b)
    pairs = store.compare_pairs(run_a, run_b, cell, limit=LIST_SIZE)

st.subheader("Questions by outcome")
st.caption("Questions are paired by their normalised text. Click a cell to list its questions.")


def choose(value: str | None) -> None:
    if value:
        st.query_params["cell"] = value
    else:
        st.query_params.pop("cell", None)


grid = [["both_right", "only_a", "only_in_a"], ["only_b", "both_wrong", "only_in_b"]]
for row in grid:
    cols = st.columns(3)
    for col, name in zip(cols, row):
        col.button(f"{CELL_LABELS[name]}: {counts[name]}", key=f"cell_{name}", width="stretch",
                   type="primary" if cell == name else "secondary", on_click=choose, args=(name,))
if counts.get("unscored"):
    st.caption(f"{counts['unscored']} questions have no score in one of the runs.")
if cell:
    st.button("Show every question", on_click=choose, args=(None,))
    side = "b" if cell == "only_in_b" else "a"
    ids = [p.id_a if side == "a" else p.id_b for p in pairs]
    if ids and st.button(f"Open {plural(len(ids), 'trajectory', 'trajectories')} of run {side.upper()} in Browse"):
        st.switch_page("pages/1_Browse.py", query_params=browse_query(TrajectoryFilter(ids=ids)))

shown = plural(len(pairs), "question", "questions") + (f" ({CELL_LABELS[cell]})" if cell else "")
st.subheader(shown + (f", the first {LIST_SIZE}" if len(pairs) == LIST_SIZE else ""))
if not pairs:
    st.info("No question in this cell.")
    st.stop()
table = [{"question": p.question, "answer A": p.answer_a, "answer B": p.answer_b, "gold": p.gold,
          "outcome": CELL_LABELS.get(p.cell, p.cell)} for p in pairs]
picks = pick_table(table, "cmp_table", select="single", max_height=260, columns={
    "answer A": Column(width=170), "answer B": Column(width=170),
    "gold": Column(width=150), "outcome": Column(width=120)})
picked = picks.rows[0] if picks.rows else None
choice = st.selectbox("Question", range(len(pairs)), index=picked or 0, key=f"cmp_pair:{run_a}:{run_b}:{cell}:{picked}",
                      format_func=lambda i: f"{i + 1}. {pairs[i].question[:100]}")
pair = pairs[choice]
traj_a, traj_b = (store.get_trajectory(k) if k else None for k in (pair.id_a, pair.id_b))

st.caption("Question")
st.text(pair.question)
h1, h2 = st.columns(2)
for col, name, traj in ((h1, run_a, traj_a), (h2, run_b, traj_b)):
    with col:
        st.caption(f"Run {md_escape(short.get(name, name))}")
        if traj is None:
            st.text("(this question is not in this run)")
            continue
        st.text(f"Answer: {traj.final_answer}   EM: {traj.em}   steps: {len(traj.steps)}")
        if st.button("Open in the editor", key=f"open_{traj.id}"):
            st.switch_page("pages/2_Trajectory.py", query_params={"id": traj.id, "source": traj.source})
st.html(pair_cards_html(traj_a, traj_b, f"A: {short.get(run_a, run_a)}", f"B: {short.get(run_b, run_b)}"))
