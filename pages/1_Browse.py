"""Browse: filter trajectories (the filter lives in the address, so a view can be shared), open one,
tag, accept or reject many at once."""

from __future__ import annotations

import streamlit as st

import ui_fork
from fireact_core.curation.edits import SORT_KEYS, browse_query, md_escape, split_query
from fireact_core.errors import FireactError
from fireact_core.filters import LIST_FIELDS, TrajectoryFilter
from fireact_core.names import display_names
from fireact_core.reports.tables import Column
from fireact_core.curation.team import bulk_review
from ui import annotator, confirm, page_setup, panel_on_demand
from ui_table import pick_table

PAGE_SIZE = 50
EM = {"any": None, "right": "right", "wrong": "wrong"}
REVIEW = {"any": None, "accepted": "accepted", "rejected": "rejected", "unreviewed": "unreviewed"}

COLUMNS = {
    "EM": Column(width=44, fmt="%.0f", help="exact match: 1 right, 0 wrong"), "F1": Column(width=48, fmt="%.2f"),
    "question": Column(help="click a question to open its trajectory"), "answer": Column(width=130),
    "gold": Column(width=120), "steps": Column(width=52), "lints": Column(width=130), "review": Column(width=84),
    "source": Column(width=170, help="short name; the full one shows when the pointer rests on it"),
    "method": Column(width=70), "status": Column(width=84),
}

store = page_setup("Browse", ":material/search:")
if st.session_state.get("browse_go"):  # a trajectory was chosen: open it before querying this page again
    st.switch_page("pages/2_Trajectory.py", query_params={
        **{k: v for k, v in st.query_params.to_dict().items() if k != "page"}, "id": st.session_state.pop("browse_go")})
who = annotator()
st.title("Browse")
facets = store.facet_values()
if not facets["source"]:
    st.info("The database holds no trajectories yet: import a file on the home page or with `fireact import FILE`.")
    st.stop()

url_filter, url_sort, url_desc = split_query(st.query_params.to_dict())
url_sig = browse_query(url_filter, url_sort, url_desc)
options = {name: sorted(set(facets.get(name, [])) | set(getattr(url_filter, name))) for name in LIST_FIELDS}
short = display_names(options["source"])
try:
    url_page = max(1, int(st.query_params.get("page") or 1))
except ValueError:
    url_page = 1

if st.session_state.get("browse_sig") != url_sig or "f_q" not in st.session_state:
    for name in LIST_FIELDS:
        st.session_state[f"f_{name}"] = getattr(url_filter, name)
    st.session_state.update({
        "f_q": url_filter.q or "", "f_em": url_filter.em or "any", "f_review": url_filter.review or "any",
        "f_status": url_filter.status, "f_smin": url_filter.steps_min, "f_smax": url_filter.steps_max,
        "f_sort": url_sort if url_sort in SORT_KEYS else "imported", "f_desc": url_desc, "f_page": 1,
        "browse_sig": url_sig,
    })
if st.session_state.get("browse_url_page") != url_page:
    st.session_state.update({"f_page": url_page, "browse_url_page": url_page})

MORE = ("model", "lint", "label")  # the list filters drawn in "More filters"


def more_summary() -> str:
    """What is set behind "More filters and order" (read from the widgets' values), shown beside it."""
    ss = st.session_state
    parts = []
    for name in MORE:
        if values := ss.get(f"f_{name}"):
            parts.append(f"{name} {', '.join(values[:3])}" + (f" and {len(values) - 3} more" if len(values) > 3 else ""))
    parts += [f"{what} {ss[key]}" for what, key in (("review", "f_review"), ("status", "f_status"))
              if ss.get(key) not in (None, "any")]
    lo, hi = ss.get("f_smin"), ss.get("f_smax")
    if lo is not None or hi is not None:
        parts.append(f"at least {lo} steps" if hi is None else f"at most {hi} steps" if lo is None
                     else f"{lo} to {hi} steps")
    if ss.get("f_sort", "imported") != "imported" or ss.get("f_desc"):
        parts.append(f"by {ss.get('f_sort', 'imported')}{' descending' if ss.get('f_desc') else ''}")
    return "; ".join(parts)


def list_filter(name: str, **kw) -> None:
    st.multiselect(name.title(), options[name], key=f"f_{name}",
                   format_func=(lambda v: short.get(v, v)) if name == "source" else str, **kw)


with st.sidebar:
    st.header("Filter")
    q = st.text_input("Search text", key="f_q", placeholder="questions, thoughts, actions, observations")
    for name in LIST_FIELDS:
        if name not in MORE:
            list_filter(name)
    st.radio("Answer (EM)", list(EM), key="f_em", horizontal=True)
    more = panel_on_demand("More filters and order", "browse_more", icon=":material/filter_list:",
                           holds=tuple(f"f_{k}" for k in (*MORE, "review", "status", "smin", "smax", "sort", "desc")))
    if summary := more_summary():
        st.caption(f"Set: {md_escape(summary)}")
    if more:  # drawn while open; their values are kept while it is closed
        with more:
            for name in MORE:
                list_filter(name, persist_state="page")
            st.radio("Review", list(REVIEW), key="f_review", horizontal=True, persist_state="page")
            st.selectbox("Status", ["finished", "unfinished", "failed"], index=None, key="f_status",
                         placeholder="any", persist_state="page")
            c1, c2 = st.columns(2)
            c1.number_input("Min steps", min_value=0, value=None, step=1, key="f_smin", persist_state="page")
            c2.number_input("Max steps", min_value=0, value=None, step=1, key="f_smax", persist_state="page")
            st.selectbox("Sort by", list(SORT_KEYS), key="f_sort", persist_state="page")
            st.toggle("Descending", key="f_desc", persist_state="page")
    ss = st.session_state
    lists = {name: ss[f"f_{name}"] for name in LIST_FIELDS}
    em, review, status, smin, smax, sort, desc = (ss[f"f_{k}"] for k in ("em", "review", "status", "smin", "smax",
                                                                           "sort", "desc"))

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
if page_no > 1:
    st.query_params["page"] = str(page_no)
else:
    st.query_params.pop("page", None)
st.session_state["browse_url_page"] = page_no

drafts = [k.split(":", 1)[1] for k, v in st.session_state.items()
          if isinstance(k, str) and k.startswith("draft:") and isinstance(v, dict) and v.get("dirty")]
if drafts:
    with st.container(border=True):
        st.markdown(f"**Unsaved edits** on {len(drafts)} {'trajectory' if len(drafts) == 1 else 'trajectories'}: "
                    "open one to save or discard them.")
        for tid in drafts[:5]:
            st.page_link("pages/2_Trajectory.py", label=md_escape(st.session_state[f"draft:{tid}"]["orig"].question[:90]),
                         icon=":material/edit_note:", query_params={"id": tid})

st.subheader(f"{total} trajectories match")
table = [{"EM": r.em, "F1": r.f1, "question": r.question, "answer": r.final_answer, "gold": r.gold,
          "steps": r.n_steps, "lints": ", ".join(r.lints), "review": r.review or "", "source": short.get(r.source, r.source),
          "method": r.method, "status": r.status} for r in rows]
picks = pick_table(table, "browse_table", columns=COLUMNS, titles={"source": [r.source for r in rows]},
                   select="multi", open_column="question", max_height=400)
st.number_input(f"Page (of {pages}, {PAGE_SIZE} a page; the page is in the address)", min_value=1, max_value=pages,
                step=1, key="f_page", width=260)
selected = [rows[i].id for i in picks.rows]


def open_trajectory(traj_id: str) -> None:
    st.switch_page("pages/2_Trajectory.py", query_params=browse_query(flt, sort, desc, id=traj_id))


def apply_bulk(what: str, label: str, ids: list[str] | None) -> None:
    """Tag, accept or reject `ids` (None: every trajectory matching the filter now)."""
    targets = store.filter_ids(flt, sort, desc) if ids is None else ids
    try:
        n = bulk_review(store, who, targets, whole_filter=ids is None, status=None if what == "tag" else what,
                        add_labels=[label] if what == "tag" else [])
        st.session_state["browse_done"] = f"{what if what != 'tag' else 'labelled'}: {n} trajectories"
    except FireactError as exc:
        st.session_state["browse_error"] = str(exc)


if picks.opened is not None:
    open_trajectory(rows[picks.opened].id)
left, right = st.columns(2)
with left:
    st.markdown("**Open**")
    if len(selected) == 1 and st.button("Open the selected trajectory", type="primary"):
        open_trajectory(selected[0])
    labels = {r.id: f"{i + 1 + (page_no - 1) * PAGE_SIZE}. {r.question[:90]}" for i, r in enumerate(rows)}
    choice = st.selectbox("Open a trajectory of this page", list(labels), index=None, key="browse_open",
                          format_func=labels.get, placeholder="choose one to open it",
                          on_change=lambda: st.session_state.update(browse_go=st.session_state.get("browse_open")))
    if choice:
        open_trajectory(choice)
    if rows and st.button("Review this filter"):
        st.switch_page("pages/3_Review.py", query_params=browse_query(flt, sort, desc))
with right:
    st.markdown("**Bulk: tag, accept, reject, repair**")
    bulk, repair = st.columns(2)
    with bulk.popover("Tag, accept or reject", icon=":material/sell:", width="stretch"):
        scope = st.radio("Apply to", ["selected rows", "every trajectory matching the filter"], key="bulk_scope",
                         captions=[f"{len(selected)} selected", f"{total} trajectories"])
        tag = st.text_input("Label to add", key="bulk_tag", placeholder="e.g. hallucination")
        b1, b2, b3 = st.columns(3)
        actions = {"tag": b1.button("Add label", disabled=not tag.strip()), "accepted": b2.button("Accept"),
                   "rejected": b3.button("Reject")}
        chosen = next((k for k, v in actions.items() if v), None)
        whole = scope != "selected rows"
        if chosen and not whole and not selected:
            st.warning("Nothing to apply it to: select rows in the table first.")
        elif chosen and whole:
            st.session_state["browse_confirm"] = (chosen, tag.strip(), total, sig)
        elif chosen:
            apply_bulk(chosen, tag.strip(), selected)
            st.rerun()
        pending = st.session_state.get("browse_confirm")
        if pending and pending[3] == sig and whole:
            what, label, count, _ = pending
            verb = {"tag": f"Add the label '{label}' to", "accepted": "Accept", "rejected": "Reject"}[what]
            confirm("browse_confirm", md_escape(f"{verb} all {count} trajectories matching this filter?"),
                    f"{dict(tag='Label', accepted='Accept', rejected='Reject')[what]} all {count}", apply_bulk, what,
                    label, None)
    ui_fork.repair_panel(store, flt, who, repair)
    if st.session_state.get("browse_done"):
        st.success(st.session_state.pop("browse_done"))
    if st.session_state.get("browse_error"):
        st.error(md_escape(st.session_state.pop("browse_error")))
