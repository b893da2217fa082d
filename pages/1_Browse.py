"""Browse: filter trajectories (the filter lives in the address, so a view can be shared), open one,
tag, accept or reject many at once."""

from __future__ import annotations

import streamlit as st

from fireact_core.curation import browse_query, md_escape, split_query
from fireact_core.errors import FireactError
from fireact_core.filters import LIST_FIELDS, TrajectoryFilter
from fireact_core.store.curation import SORTABLE
from fireact_core.team import bulk_review
from ui import annotator, page_setup

PAGE_SIZE = 50
EM = {"any": None, "right": "right", "wrong": "wrong"}
REVIEW = {"any": None, "accepted": "accepted", "rejected": "rejected", "unreviewed": "unreviewed"}

store = page_setup("Browse")
who = annotator()
st.title("🔎 Browse")
facets = store.facet_values()
if not facets["source"]:
    st.info("The database holds no trajectories yet: import a file on the home page or with `fireact import FILE`.")
    st.stop()

url_filter, url_sort, url_desc = split_query(st.query_params.to_dict())
url_sig = browse_query(url_filter, url_sort, url_desc)
options = {name: sorted(set(facets.get(name, [])) | set(getattr(url_filter, name))) for name in LIST_FIELDS}

if st.session_state.get("browse_sig") != url_sig or "f_q" not in st.session_state:
    for name in LIST_FIELDS:
        st.session_state[f"f_{name}"] = getattr(url_filter, name)
    st.session_state.update({
        "f_q": url_filter.q or "", "f_em": url_filter.em or "any", "f_review": url_filter.review or "any",
        "f_status": url_filter.status, "f_smin": url_filter.steps_min, "f_smax": url_filter.steps_max,
        "f_sort": url_sort if url_sort in SORTABLE else "imported", "f_desc": url_desc, "f_page": 1,
        "browse_sig": url_sig,
    })

with st.sidebar:
    st.header("Filter")
    q = st.text_input("Search text", key="f_q", placeholder="questions, thoughts, actions, observations")
    lists = {name: st.multiselect(name.title(), options[name], key=f"f_{name}") for name in LIST_FIELDS}
    em = st.radio("Answer (EM)", list(EM), key="f_em", horizontal=True)
    review = st.radio("Review", list(REVIEW), key="f_review", horizontal=True)
    status = st.selectbox("Status", ["finished", "unfinished", "failed"], index=None, key="f_status",
                          placeholder="any")
    c1, c2 = st.columns(2)
    smin = c1.number_input("Min steps", min_value=0, value=None, step=1, key="f_smin")
    smax = c2.number_input("Max steps", min_value=0, value=None, step=1, key="f_smax")
    sort = st.selectbox("Sort by", list(SORTABLE), key="f_sort")
    desc = st.toggle("Descending", key="f_desc")

flt = TrajectoryFilter(**lists, q=q.strip() or None, em=EM[em], review=REVIEW[review], status=status,
                       steps_min=None if smin is None else int(smin), steps_max=None if smax is None else int(smax),
                       ids=url_filter.ids)
sig = browse_query(flt, sort, desc)
if sig != url_sig:
    st.query_params.from_dict(sig)
    st.session_state["browse_sig"] = sig
    st.session_state["f_page"] = 1
if flt.ids:
    st.info(f"Showing {len(flt.ids)} chosen trajectories (from a link).")
    if st.button("Show all, not just these"):
        st.query_params.from_dict(browse_query(flt.model_copy(update={"ids": []}), sort, desc))
        st.rerun()

with store.session():
    total = store.count_filtered(flt)
    pages = max(1, -(-total // PAGE_SIZE))
    page_no = min(int(st.session_state.get("f_page") or 1), pages)
    st.session_state["f_page"] = page_no
    rows = store.list_summaries(flt, sort, desc, PAGE_SIZE, (page_no - 1) * PAGE_SIZE)

st.subheader(f"{total} trajectories match")
table = [{"question": r.question, "answer": r.final_answer, "gold": r.gold, "EM": r.em, "F1": r.f1,
          "steps": r.n_steps, "method": r.method, "source": r.source, "lints": ", ".join(r.lints),
          "review": r.review or "", "status": r.status} for r in rows]
event = st.dataframe(table, on_select="rerun", selection_mode="multi-row", hide_index=True, key="browse_table",
                     width="stretch", column_config={"question": st.column_config.TextColumn(width="large")})
st.number_input(f"Page (of {pages}, {PAGE_SIZE} a page)", min_value=1, max_value=pages, step=1, key="f_page",
                width=220)
selected = [rows[i].id for i in event.selection.rows if i < len(rows)] if event else []


def open_trajectory(traj_id: str) -> None:
    st.switch_page("pages/2_Trajectory.py", query_params=browse_query(flt, sort, desc, id=traj_id))


left, right = st.columns(2)
with left:
    st.markdown("**Open**")
    if len(selected) == 1 and st.button("Open the selected trajectory", type="primary"):
        open_trajectory(selected[0])
    labels = {r.id: f"{i + 1 + (page_no - 1) * PAGE_SIZE}. {r.question[:90]}" for i, r in enumerate(rows)}
    choice = st.selectbox("Open a trajectory of this page", list(labels), index=None, key="browse_open",
                          format_func=labels.get, placeholder="choose one to open it")
    if choice:
        open_trajectory(choice)
    if rows and st.button("Review this filter"):
        st.switch_page("pages/3_Review.py", query_params=browse_query(flt, sort, desc))
with right:
    st.markdown("**Bulk: tag, accept, reject**")
    scope = st.radio("Apply to", ["selected rows", "every trajectory matching the filter"], key="bulk_scope",
                     captions=[f"{len(selected)} selected", f"{total} trajectories"])
    tag = st.text_input("Label to add", key="bulk_tag", placeholder="e.g. hallucination")
    b1, b2, b3 = st.columns(3)
    actions = {"tag": b1.button("Add label", disabled=not tag.strip()), "accepted": b2.button("Accept"),
               "rejected": b3.button("Reject")}
    chosen = next((k for k, v in actions.items() if v), None)
    targets = (selected if scope == "selected rows" else store.filter_ids(flt, sort, desc)) if chosen else []
    if chosen and not targets:
        st.warning("Nothing to apply it to: select rows in the table first.")
    elif chosen:
        try:
            n = bulk_review(store, who, targets, whole_filter=scope != "selected rows",
                            status=None if chosen == "tag" else chosen, add_labels=[tag.strip()] if chosen == "tag" else [])
            st.session_state["browse_done"] = f"{chosen if chosen != 'tag' else 'labelled'}: {n} trajectories"
            st.rerun()
        except FireactError as exc:
            st.error(md_escape(exc))
    if st.session_state.get("browse_done"):
        st.success(st.session_state.pop("browse_done"))
