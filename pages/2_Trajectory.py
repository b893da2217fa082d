"""Trajectory: one trajectory step by step. Edit any field, insert / delete / move steps, change the final
answer, choose which steps to train on, save as a revision, read and restore the history, annotate."""

from __future__ import annotations

import streamlit as st

from fireact_core import curation as cur
from fireact_core.errors import ConflictError, FireactError
from ui import annotator, page_setup

store = page_setup("Trajectory")
who = annotator()
ss = st.session_state
params = st.query_params.to_dict()
flt, sort, desc = cur.split_query(params)
tid = params.get("id")
try:
    with store.session():
        traj = cur.open_trajectory(store, tid)
        lints = store.lints_of(tid)
        review = store.review_state(tid)
        nav = store.neighbours(flt, tid, sort, desc)
        known_labels = store.known_labels()
        history = cur.revision_diffs(store, tid)
except FireactError as exc:
    st.title("🧵 Trajectory")
    st.info(cur.md_escape(exc))
    st.stop()

dk = f"draft:{tid}"


def next_gen() -> int:
    """A fresh number for the editor's widget keys, so a redrawn form starts from the draft, not old input."""
    ss["draft_gen"] = ss.get("draft_gen", 0) + 1
    return ss["draft_gen"]


if dk not in ss or (ss[dk]["base"] != traj.revision and not ss[dk].get("dirty")):
    ss[dk] = {"base": traj.revision, "traj": traj, "orig": traj, "gen": next_gen()}
draft = ss[dk]
prefix = f"e:{tid}:{draft['gen']}:"


def form_values(d: dict) -> tuple[list[dict], str | None, str | None]:
    p = f"e:{tid}:{d['gen']}:"
    fields = ("thought", "action", "observation", "train")
    steps = [{f: ss.get(f"{p}{i}:{f}") for f in fields} for i in range(len(d["traj"].steps))]
    return steps, ss.get(f"{p}final"), ss.get(f"{p}question")


def keep_typed(op=None, *args) -> None:
    """Move what was typed into the draft (kept while the user looks elsewhere), apply a step insertion /
    deletion / move if given, and redraw the form from the draft."""
    d = ss[dk]
    d["traj"] = cur.apply_form(d["traj"], *form_values(d))
    d["traj"] = op(d["traj"], *args) if op else d["traj"]
    d["gen"] = next_gen()


def go(traj_id: str | None) -> None:
    keep_typed()
    if traj_id:
        st.query_params["id"] = traj_id


st.title("🧵 Trajectory")
n1, n2, n3, n4 = st.columns([1, 1, 3, 1])
n1.button("◀ Previous", disabled=not nav["prev"], on_click=go, args=(nav["prev"],), shortcut="alt+left")
n2.button("Next ▶", disabled=not nav["next"], on_click=go, args=(nav["next"],), shortcut="alt+right")
n3.caption(f"{nav['position'] or '-'} of {nav['total']} in this filter" + (" (not in it)" if not nav["position"] else ""))
if n4.button("Back to Browse"):
    keep_typed()
    st.switch_page("pages/1_Browse.py", query_params=cur.browse_query(flt, sort, desc))

with st.container(border=True):
    st.caption("Question")
    st.text(traj.question)
    cols = st.columns(5)
    for col, (label, value) in zip(cols, [("Gold answer", traj.gold), ("Final answer", traj.final_answer),
                                          ("EM", traj.em), ("F1", traj.f1), ("Source", traj.source)]):
        col.caption(label)
        col.text("—" if value is None else str(value))
    st.caption(cur.md_escape(f"Task {traj.task} · method {traj.method} · model {traj.model or '—'} · status "
                             f"{traj.status} · revision {traj.revision}" + (f" by {traj.updated_by}" if traj.updated_by else "")))
for lint in (x for x in lints if x.step is None):
    st.warning(f"Lint: {cur.md_escape(lint.kind)}", icon="⚠️")

if not traj.question.strip():
    st.text_input("Question (imported without one: type it here)", value=draft["traj"].question,
                  key=f"{prefix}question")
st.text_input("Final answer (the argument of the finish action)", value=draft["traj"].final_answer or "",
              key=f"{prefix}final")
for i, step in enumerate(draft["traj"].steps):
    with st.container(border=True):
        head, b1, b2, b3, b4 = st.columns([6, 1, 1, 1, 1])
        tool = (step.action.name or "malformed") if step.action else "no action"
        head.markdown(f"**Step {i + 1}** · {tool if tool.isidentifier() or tool == 'no action' else 'action'}")
        b1.button("↑", key=f"{prefix}{i}:up", help="move up", on_click=keep_typed, args=(cur.move_step, i, i - 1),
                  disabled=i == 0)
        b2.button("↓", key=f"{prefix}{i}:down", help="move down", on_click=keep_typed,
                  args=(cur.move_step, i, i + 1), disabled=i == len(draft["traj"].steps) - 1)
        b3.button("＋", key=f"{prefix}{i}:ins", help="insert a step after this one", on_click=keep_typed,
                  args=(cur.insert_step, i + 1))
        b4.button("🗑", key=f"{prefix}{i}:del", help="delete this step", on_click=keep_typed, args=(cur.delete_step, i))
        if draft["traj"].steps == traj.steps:
            for lint in (x for x in lints if x.step == i):
                st.warning(f"Lint: {cur.md_escape(lint.kind)}", icon="⚠️")
                if lint.detail:
                    st.text(lint.detail)
        if step.raw is not None and step.thought is None and step.action is None:
            st.caption("Text kept verbatim (it did not parse): fill in the fields below to fix it")
            st.text(step.raw)
        st.text_area(":blue[**Thought**]", value=step.thought or "", key=f"{prefix}{i}:thought", height=80)
        st.text_input(":orange[**Action**] — tool[argument]", value=step.action.raw if step.action else "",
                      key=f"{prefix}{i}:action")
        st.text_area(":gray[**Observation**]", value=step.observation or "", key=f"{prefix}{i}:observation",
                     height=100)
        st.toggle("Train on this step", value=step.flags.train, key=f"{prefix}{i}:train")
st.button("＋ Add a step at the end", on_click=keep_typed, args=(cur.insert_step, len(draft["traj"].steps)))

edited = cur.apply_form(draft["traj"], *form_values(draft))
draft["dirty"] = edited != draft["orig"]
reason = st.text_input("Why (optional, kept in the history)", key=f"reason:{tid}")
conflict = ss.get(f"conflict:{tid}")


def save(base: int) -> None:
    try:
        saved = cur.save_trajectory_edit(store, edited, base_revision=base, author=who, reason=reason)
    except ConflictError as exc:
        ss[f"conflict:{tid}"] = str(exc)
        st.rerun()
    except FireactError as exc:
        st.error(cur.md_escape(exc))
        return
    for key in (dk, f"conflict:{tid}", f"reason:{tid}"):
        ss.pop(key, None)
    ss["traj_msg"] = f"Saved revision {saved.revision} (EM {saved.em}, F1 {saved.f1})."
    st.rerun()


s1, s2 = st.columns([1, 4])
if s1.button("💾 Save", type="primary", disabled=not draft["dirty"], shortcut="ctrl+s"):
    save(draft["base"])
s2.caption("Unsaved changes" if draft["dirty"] else "No changes")
if conflict:
    st.error(cur.md_escape(conflict))
    c1, c2 = st.columns(2)
    if c1.button(f"Save mine on top of revision {traj.revision}"):
        save(traj.revision)
    if c2.button("Discard mine and load the saved one"):
        for key in (dk, f"conflict:{tid}"):
            ss.pop(key, None)
        st.rerun()
if ss.get("traj_msg"):
    st.success(cur.md_escape(ss.pop("traj_msg")))

with st.container(border=True):
    st.subheader("Review")
    seq = review.seq if review else 0
    status = st.radio("Decision", ["none", "accepted", "rejected"], horizontal=True, key=f"ann:{tid}:{seq}:status",
                      index=["none", "accepted", "rejected"].index(review.status if review and review.status else "none"))
    labels = st.multiselect("Labels", sorted(set(known_labels) | set(review.labels if review else [])),
                            default=review.labels if review else [], accept_new_options=True, key=f"ann:{tid}:{seq}:labels")
    rating = st.radio("Quality", [None, 1, 2, 3, 4, 5], horizontal=True, key=f"ann:{tid}:{seq}:rating",
                      index=review.rating if review and review.rating else 0, format_func=lambda v: "—" if v is None else "★" * v)
    comment = st.text_area("Comment", value=(review.comment or "") if review else "", key=f"ann:{tid}:{seq}:comment")
    if st.button("Save review"):
        try:
            cur.annotation_event(store, tid, who, status=None if status == "none" else status, labels=labels,
                                 rating=rating, comment=comment)
            st.rerun()
        except FireactError as exc:
            st.error(cur.md_escape(exc))
    if review:
        st.caption(cur.md_escape(f"Last review by {review.author} at {review.at:%Y-%m-%d %H:%M} UTC"))

with st.expander("History", expanded=False):
    for rev, diff in history:
        st.text(f"Revision {rev.rev} · {rev.author} · {rev.at:%Y-%m-%d %H:%M:%S} UTC" + (f" · {rev.reason}" if rev.reason else ""))
        st.code(diff, language="diff")
        if rev.rev != traj.revision and st.button(f"Restore revision {rev.rev}", key=f"restore:{tid}:{rev.rev}"):
            try:
                cur.restore_revision(store, tid, rev.rev, who, base_revision=traj.revision)
                ss.pop(dk, None)
                ss["traj_msg"] = f"Restored revision {rev.rev} as a new revision."
                st.rerun()
            except FireactError as exc:
                st.error(cur.md_escape(exc))
