"""Review queue: the next unreviewed trajectory in the current filter, read as step cards; rate it, label it,
accept / reject / skip with one key."""

from __future__ import annotations

import streamlit as st

import ui
from fireact_core.curation import edits as cur
from fireact_core.errors import FireactError
from ui import annotator, page_setup
from ui_team import assignment_panel, next_for

store = page_setup("Review", ":material/fact_check:")
who = annotator()
ss = st.session_state
flt, sort, desc = cur.split_query(st.query_params.to_dict())
query = cur.browse_query(flt, sort, desc)
skip_key = "review_skip:" + "&".join(f"{k}={v}" for k, v in sorted(query.items()))
skipped: list[str] = ss.setdefault(skip_key, [])

st.title("Review")
top, change = st.columns([4, 1])
top.caption("Filter: " + cur.md_escape(cur.describe_filter(flt)))
if change.button("Change the filter in Browse"):
    st.switch_page("pages/1_Browse.py", query_params=query)


def decide(tid: str, question: str, status: str | None) -> None:
    stars = ss.get(f"review_rating:{tid}")
    rating = None if stars is None else stars + 1
    try:
        if status or rating is not None:
            cur.review_decision(store, tid, who, status, ss.get("review_labels") or [], ss.get("review_comment"),
                                rating=rating)
        if not status:
            skipped.append(tid)
        ss["review_msg"] = f"{status or 'skipped'}: {question[:80]}"
        ss.pop("review_labels", None)
        ss.pop("review_comment", None)
    except FireactError as exc:
        ss["review_error"] = str(exc)


@st.fragment
def queue() -> None:
    """Progress, the next trajectory and its decision buttons: a decision (a click or its key) reruns this part
    alone, not the page around it (sign-in, sidebar, navigation)."""
    with store.session():
        reviewed, total = store.review_progress(flt)
        tid = next_for(store, who, flt, skipped, sort, desc)
        traj = store.get_trajectory(tid) if tid else None
        lints = store.lints_of(tid) if tid else []
        known = store.known_labels()
        old = store.review_state(tid) if tid else None
    st.progress(reviewed / total if total else 0.0, text=f"{reviewed} of {total} reviewed in this filter")
    assignment_panel(store, who, flt)
    if total == 0:
        st.info("No trajectory matches this filter: widen it in Browse.")
        return
    if traj is None:
        st.success("Every trajectory in this filter is reviewed" +
                   (f", apart from {len(skipped)} skipped." if skipped else "."))
        if skipped and st.button("Go through the skipped ones again"):
            ss[skip_key] = []
            st.rerun(scope="app")
        return
    b1, b2, b3, b4 = st.columns(4)
    args = (traj.id, traj.question)
    b1.button("Accept (a)", icon=":material/check_circle:", type="primary", on_click=decide, args=(*args, "accepted"),
              shortcut="a", width="stretch")
    b2.button("Reject (x)", icon=":material/cancel:", on_click=decide, args=(*args, "rejected"), shortcut="x",
              width="stretch")
    b3.button("Skip (s)", icon=":material/skip_next:", on_click=decide, args=(*args, None), shortcut="s",
              width="stretch")
    if b4.button("Open in the editor (e)", icon=":material/edit:", width="stretch", shortcut="e"):
        st.switch_page("pages/2_Trajectory.py", query_params={**query, "id": traj.id})
    if ss.get("review_msg"):
        st.caption("Last: " + cur.md_escape(ss.pop("review_msg")))
    if ss.get("review_error"):
        st.error(cur.md_escape(ss.pop("review_error")))

    l1, l2, l3 = st.columns([2, 2, 1])
    l1.multiselect("Labels to add", known, accept_new_options=True, key="review_labels")
    l2.text_input("Comment", key="review_comment")
    with l3:
        st.caption("Quality (kept with the decision)")
        st.feedback("stars", key=f"review_rating:{traj.id}", default=old.rating - 1 if old and old.rating else None)
    ui.trajectory_header(traj, lints)
    ui.step_cards(traj.steps, lints)


queue()
