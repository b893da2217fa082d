"""The Trajectory page's panels: a step's editing fields, the review of the trajectory and its history of
revisions. They run inside the page's fragment, so what they change reruns that part of the page alone."""

from __future__ import annotations

from typing import Callable

import streamlit as st

from fireact_core.curation import edits as cur
from fireact_core.errors import FireactError
from fireact_core.records import Annotation, Step, Trajectory
from ui import Store, panel_on_demand


def step_editor(i: int, steps: list[Step], whole: bool, prefix: str, keep_typed: Callable[..., None],
                merge: Callable[[], None]) -> None:
    """The fields of step i under the editor's keys `prefix`; every change goes into the draft at once (`merge`),
    and with the whole trajectory open, buttons move, insert or delete the step (`keep_typed` with the edit)."""
    with st.container(border=True):
        if whole:
            head, b1, b2, b3, b4 = st.columns([6, 1, 1, 1, 1])
            head.markdown(f"**Step {i + 1}**")
            b1.button("", icon=":material/arrow_upward:", key=f"{prefix}{i}:up", help="move up", on_click=keep_typed,
                      args=(cur.move_step, i, i - 1), disabled=i == 0)
            b2.button("", icon=":material/arrow_downward:", key=f"{prefix}{i}:down", help="move down",
                      on_click=keep_typed, args=(cur.move_step, i, i + 1), disabled=i == len(steps) - 1)
            b3.button("", icon=":material/add:", key=f"{prefix}{i}:ins", help="insert a step after this one",
                      on_click=keep_typed, args=(cur.insert_step, i + 1))
            b4.button("", icon=":material/delete:", key=f"{prefix}{i}:del", help="delete this step",
                      on_click=keep_typed, args=(cur.delete_step, i))
        else:
            st.markdown(f"**Editing step {i + 1}**")
        _step_fields(i, steps[i], prefix, merge)


def field_values(step: Step) -> dict[str, object]:
    """What the editor's fields of `step` show, by field name (the step's drawn fields and the page's check of
    whether an edit changed another field both read them here)."""
    return {"thought": step.thought or "", "action": step.action.raw if step.action else "",
            "observation": step.observation or "", "train": step.flags.train}


def _step_fields(i: int, step: Step, prefix: str, on_change: Callable[[], None]) -> None:
    if step.raw is not None and step.thought is None and step.action is None:
        st.caption("Text kept verbatim (it did not parse): fill in the fields below to fix it")
        st.text(step.raw)
    shown = field_values(step)
    st.text_area("Thought", value=shown["thought"], key=f"{prefix}{i}:thought", on_change=on_change,
                 height="content")
    st.text_input("Action — tool[argument]", value=shown["action"], key=f"{prefix}{i}:action", on_change=on_change)
    st.text_area("Observation", value=shown["observation"], key=f"{prefix}{i}:observation", on_change=on_change,
                 height="content")
    st.toggle("Train on this step", value=shown["train"], key=f"{prefix}{i}:train", on_change=on_change)


def review_panel(store: Store, tid: str, who: str, review: Annotation | None) -> None:
    """The latest review of the trajectory (`review`, as the page read it: decision, labels, rating, comment) and
    a form to give another, in a panel drawn while open (it stays open from one trajectory to the next); a caption
    under it says what the latest review holds."""
    panel = panel_on_demand("Review", "traj_review_open", icon=":material/fact_check:")
    st.caption(cur.md_escape(review_summary(review)))
    if not panel:
        return
    with store.session():
        known_labels = store.known_labels()
    with panel:
        seq = review.seq if review else 0
        choices = ["none", "accepted", "rejected"]
        st.radio("Decision", choices, horizontal=True, key=f"ann:{tid}:{seq}:status",
                          index=choices.index(review.status if review and review.status else "none"))
        st.multiselect("Labels", sorted(set(known_labels) | set(review.labels if review else [])),
                                default=review.labels if review else [], accept_new_options=True,
                                key=f"ann:{tid}:{seq}:labels")
        st.radio("Quality", [None, 1, 2, 3, 4, 5], horizontal=True, key=f"ann:{tid}:{seq}:rating",
                          index=review.rating if review and review.rating else 0,
                          format_func=lambda v: "—" if v is None else "★" * v)
        st.text_area("Comment", value=(review.comment or "") if review else "", key=f"ann:{tid}:{seq}:comment")
        st.button("Save review", on_click=_save_review, args=(store, tid, who, f"ann:{tid}:{seq}:"))
        if st.session_state.get("review_error"):
            st.error(cur.md_escape(st.session_state.pop("review_error")))


def review_summary(review: Annotation | None) -> str:
    """The latest review in a line: decision, rating, labels, whether it has a comment, who and when."""
    if review is None:
        return "Not reviewed yet."
    parts = [review.status or "no decision"]
    if review.rating:
        parts.append("★" * review.rating)
    if review.labels:
        parts.append("labels: " + ", ".join(review.labels))
    if review.comment:
        parts.append("with a comment")
    return f"Latest review: {', '.join(parts)} (by {review.author}, {review.at:%Y-%m-%d %H:%M} UTC)"


def _save_review(store: Store, tid: str, who: str, key: str) -> None:
    """A button callback (the page's fragment then runs once, showing the new review): the form as a review."""
    ss = st.session_state
    status = ss.get(f"{key}status")
    try:
        cur.annotation_event(store, tid, who, status=None if status in (None, "none") else status,
                             labels=ss.get(f"{key}labels") or [], rating=ss.get(f"{key}rating"),
                             comment=ss.get(f"{key}comment"))
    except FireactError as exc:
        ss["review_error"] = str(exc)


def _restore(store: Store, traj: Trajectory, rev: int, who: str) -> None:
    """A button callback: save revision `rev` again as the newest one (the page's draft is dropped)."""
    try:
        cur.restore_revision(store, traj.id, rev, who, base_revision=traj.revision)
        st.session_state.pop(f"draft:{traj.id}", None)
        st.session_state["traj_msg"] = f"Restored revision {rev} as a new revision."
    except FireactError as exc:
        st.session_state["traj_error"] = str(exc)


def history_panel(store: Store, traj: Trajectory, who: str) -> None:
    """Every revision with its diff; restoring one saves it as a new revision (the page's draft is dropped). The
    revisions are read and their diffs drawn only while the panel is open (an expander that reruns on opening)."""
    tid = traj.id
    panel = st.expander("History", key=f"history:{tid}", on_change="rerun", icon=":material/history:")
    if not panel.open:
        return
    with panel:
        for rev, diff in cur.revision_diffs(store, tid):
            st.text(f"Revision {rev.rev} · {rev.author} · {rev.at:%Y-%m-%d %H:%M:%S} UTC" +
                    (f" · {rev.reason}" if rev.reason else ""))
            st.code(diff, language="diff")
            if rev.rev != traj.revision:
                st.button(f"Restore revision {rev.rev}", key=f"restore:{tid}:{rev.rev}", on_click=_restore,
                          args=(store, traj, rev.rev, who))
