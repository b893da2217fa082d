"""Trajectory: one trajectory, read as compact step cards. Edit one step in place or the whole trajectory
(insert / delete / move steps, the final answer, which steps to train on), save as a revision, read and restore
the history, annotate. Edits not saved yet stay as a draft while you look elsewhere."""

from __future__ import annotations

import streamlit as st

import ui
import ui_fork
from fireact_core.curation import edits as cur
from fireact_core.errors import ConflictError, FireactError
from ui import annotator, page_setup

store = page_setup("Trajectory", ":material/timeline:")
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
    st.title("Trajectory")
    st.info(cur.md_escape(exc))
    st.stop()

dk, open_key, whole_key = f"draft:{tid}", f"open:{tid}", f"whole:{tid}"


def next_gen() -> int:
    """A fresh number for the editor's widget keys, so a redrawn editor starts from the draft, not old input."""
    ss["draft_gen"] = ss.get("draft_gen", 0) + 1
    return ss["draft_gen"]


if dk not in ss or (ss[dk]["base"] != traj.revision and not ss[dk].get("dirty")):
    ss[dk] = {"base": traj.revision, "traj": traj, "orig": traj, "gen": next_gen()}
draft = ss[dk]
if draft.pop("regen", False):  # a field changed: redraw every field from the draft (a finish edit moves the answer)
    draft["gen"] = next_gen()
prefix = f"e:{tid}:{draft['gen']}:"


def form_values(d: dict) -> tuple[list[dict], str | None, str | None]:
    p = f"e:{tid}:{d['gen']}:"
    fields = ("thought", "action", "observation", "train")
    steps = [{f: ss.get(f"{p}{i}:{f}") for f in fields} for i in range(len(d["traj"].steps))]
    return steps, ss.get(f"{p}final"), ss.get(f"{p}question")


def merge() -> None:
    """Move what was just typed into the draft, which outlives the page (a widget's value does not)."""
    d = ss[dk]
    d["traj"] = cur.apply_form(d["traj"], *form_values(d))
    d["dirty"] = d["traj"] != d["orig"]
    d["regen"] = True


def keep_typed(op=None, *args) -> None:
    """Merge what was typed, apply a step insertion / deletion / move if given, and redraw the editor."""
    merge()
    d = ss[dk]
    if op:
        d["traj"] = op(d["traj"], *args)
        d["dirty"] = d["traj"] != d["orig"]


def go(traj_id: str | None) -> None:
    keep_typed()
    if traj_id:
        st.query_params["id"] = traj_id


def discard() -> None:
    for key in (dk, open_key, whole_key, f"conflict:{tid}"):
        ss.pop(key, None)


def set_open(steps: list[int]) -> None:
    merge()
    ss[open_key] = sorted(steps)


st.title("Trajectory")
n1, n2, n3, n4 = st.columns([1, 1, 3, 1])
n1.button("Previous (k)", icon=":material/arrow_back:", disabled=not nav.prev, on_click=go, args=(nav.prev,),
          shortcut="k")
n2.button("Next (j)", icon=":material/arrow_forward:", disabled=not nav.next, on_click=go, args=(nav.next,),
          shortcut="j")
n3.caption(f"{nav.position or '-'} of {nav.total} in this filter" + (" (not in it)" if not nav.position else ""))
if n4.button("Back to Browse", icon=":material/list:"):
    keep_typed()
    st.switch_page("pages/1_Browse.py", query_params=cur.browse_query(flt, sort, desc))

ui.trajectory_header(traj, lints, review.status if review else None)
steps = draft["traj"].steps
whole = st.toggle("Edit the whole trajectory (steps, order, final answer, training flags)", key=f"t:{whole_key}",
                  value=ss.get(whole_key, False), on_change=lambda: ss.update({whole_key: ss[f"t:{whole_key}"]}))
if not whole:
    st.pills("Edit a step", list(range(len(steps))), selection_mode="multi", format_func=lambda i: f"step {i + 1}",
             key=f"p:{open_key}:{draft['gen']}", default=[i for i in ss.get(open_key, []) if i < len(steps)],
             on_change=lambda: set_open(ss[f"p:{open_key}:{ss[dk]['gen']}"]),
             help="open a step's fields here; what you type is kept as a draft until you save or discard it")
if draft.get("dirty"):
    d1, d2 = st.columns([4, 1])
    d1.info("Unsaved edits: they stay here while you look at other pages. Save them below, or discard them.",
            icon=":material/edit_note:")
    d2.button("Discard my edits", icon=":material/undo:", on_click=discard)


def step_editor(i: int, step) -> None:
    """The fields of step i; every change goes into the draft at once."""
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
        if step.raw is not None and step.thought is None and step.action is None:
            st.caption("Text kept verbatim (it did not parse): fill in the fields below to fix it")
            st.text(step.raw)
        st.text_area(":blue[**Thought**]", value=step.thought or "", key=f"{prefix}{i}:thought", on_change=merge,
                     height="content")
        st.text_input(":orange[**Action**] — tool[argument]", value=step.action.raw if step.action else "",
                      key=f"{prefix}{i}:action", on_change=merge)
        st.text_area(":gray[**Observation**]", value=step.observation or "", key=f"{prefix}{i}:observation",
                     on_change=merge, height="content")
        st.toggle("Train on this step", value=step.flags.train, key=f"{prefix}{i}:train", on_change=merge)


opened = set(range(len(steps))) if whole else {i for i in ss.get(open_key, []) if i < len(steps)}
step_lints = lints if steps == traj.steps else [x for x in lints if x.step is None]
if not traj.question.strip():
    st.text_input("Question (imported without one: type it here)", value=draft["traj"].question,
                  key=f"{prefix}question", on_change=merge)
if whole:
    st.text_input("Final answer (the argument of the finish action)", value=draft["traj"].final_answer or "",
                  key=f"{prefix}final", on_change=merge)
run: list[int] = []
for i in range(len(steps) + 1):
    if i < len(steps) and i not in opened:
        run.append(i)
        continue
    if run:
        ui.step_cards(steps[run[0]:run[-1] + 1], step_lints, first=run[0])
        run = []
    if i < len(steps):
        step_editor(i, steps[i])
if whole:
    st.button("Add a step at the end", icon=":material/add:", on_click=keep_typed, args=(cur.insert_step, len(steps)))

edited = cur.apply_form(draft["traj"], *form_values(draft))
draft["dirty"] = edited != draft["orig"]
conflict = ss.get(f"conflict:{tid}")


def save(base: int) -> None:
    """A button callback (the page then runs once, on the saved revision): store the draft as a new revision."""
    merge()
    try:
        saved = cur.save_trajectory_edit(store, ss[dk]["traj"], base_revision=base, author=who,
                                         reason=ss.get(f"reason:{tid}"))
    except ConflictError as exc:
        ss[f"conflict:{tid}"] = str(exc)
        return
    except FireactError as exc:
        ss["traj_error"] = str(exc)
        return
    for key in (dk, open_key, whole_key, f"conflict:{tid}", f"reason:{tid}"):
        ss.pop(key, None)
    ss["traj_msg"] = f"Saved revision {saved.revision} (EM {saved.em}, F1 {saved.f1})."


if draft["dirty"] or opened:
    st.text_input("Why (optional, kept in the history)", key=f"reason:{tid}")
    s1, s2 = st.columns([1, 4])
    s1.button("Save", icon=":material/save:", type="primary", disabled=not draft["dirty"], shortcut="ctrl+s",
              on_click=save, args=(draft["base"],))
    s2.caption("Unsaved changes (Ctrl+S saves)" if draft["dirty"] else "No changes")
if conflict:
    st.error(cur.md_escape(conflict))
    c1, c2 = st.columns(2)
    c1.button(f"Save mine on top of revision {traj.revision}", on_click=save, args=(traj.revision,))
    if c2.button("Discard mine and load the saved one"):
        discard()
        st.rerun()
if ss.get("traj_msg"):
    st.success(cur.md_escape(ss.pop("traj_msg")))
if ss.get("traj_error"):
    st.error(cur.md_escape(ss.pop("traj_error")))

ui_fork.fork_panel(store, traj, edited, draft["dirty"], who)

with st.expander("Review", expanded=True, icon=":material/fact_check:"):
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

with st.expander("History", expanded=False, icon=":material/history:"):
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
