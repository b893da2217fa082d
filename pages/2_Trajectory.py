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
from ui_trajectory import field_values, history_panel, review_panel, step_editor

store = page_setup("Trajectory", ":material/timeline:")
who = annotator()
ss = st.session_state
params = st.query_params.to_dict()
flt, sort, desc = cur.split_query(params)
tid = params.get("id")
try:
    with store.session():
        cur.open_trajectory(store, tid)
        nav = store.position(flt, tid, sort, desc)  # the rows on each side are found when asked for
except FireactError as exc:
    st.title("Trajectory")
    st.info(cur.md_escape(exc))
    st.stop()

dk, open_key, whole_key = f"draft:{tid}", f"open:{tid}", f"whole:{tid}"


def next_gen() -> int:
    """A fresh number for the editor's widget keys, so a redrawn editor starts from the draft, not old input."""
    ss["draft_gen"] = ss.get("draft_gen", 0) + 1
    return ss["draft_gen"]


def form_values(d: dict) -> tuple[list[dict], str | None, str | None]:
    p = f"e:{tid}:{d['gen']}:"
    fields = ("thought", "action", "observation", "train")
    steps = [{f: ss.get(f"{p}{i}:{f}") for f in fields} for i in range(len(d["traj"].steps))]
    return steps, ss.get(f"{p}final"), ss.get(f"{p}question")


def shown(traj, gen: int) -> dict[str, object]:
    """What each of the editor's fields under `gen` would show for `traj`."""
    p = f"e:{tid}:{gen}:"
    values: dict[str, object] = {f"{p}final": traj.final_answer or "", f"{p}question": traj.question}
    for i, step in enumerate(traj.steps):
        values.update({f"{p}{i}:{field}": value for field, value in field_values(step).items()})
    return values


def merge() -> None:
    """Move what was just typed into the draft, which outlives the page (a widget's value does not). The fields
    are redrawn only when the edit changed another field (a finish action moves the final answer): a redraw
    gives every field a new key, and what is being typed elsewhere at that moment would be lost."""
    d = ss[dk]
    d["traj"] = cur.apply_form(d["traj"], *form_values(d))
    d["dirty"] = d["traj"] != d["orig"]
    if any(key in ss and ss[key] != value for key, value in shown(d["traj"], d["gen"]).items()):
        d["regen"] = True


def keep_typed(op=None, *args) -> None:
    """Merge what was typed, apply a step insertion / deletion / move if given, and redraw the editor."""
    if dk not in ss:
        return
    merge()
    d = ss[dk]
    if op:
        d["traj"] = op(d["traj"], *args)
        d["dirty"] = d["traj"] != d["orig"]
        d["regen"] = True


def go(step: int) -> None:
    keep_typed()
    if target := store.neighbour(flt, tid, sort, desc, step):
        st.query_params["id"] = target


def discard() -> None:
    for key in (dk, open_key, whole_key, f"conflict:{tid}"):
        ss.pop(key, None)


def set_open(steps: list[int]) -> None:
    merge()
    ss[open_key] = sorted(steps)


st.title("Trajectory")
n1, n2, n3, n4 = st.columns([1, 1, 3, 1])
n1.button("Previous (k)", icon=":material/arrow_back:", disabled=(nav.position or 0) <= 1, on_click=go, args=(-1,),
          shortcut="k")
n2.button("Next (j)", icon=":material/arrow_forward:", disabled=(nav.position or nav.total) >= nav.total,
          on_click=go, args=(1,), shortcut="j")
n3.caption(f"{nav.position or '-'} of {nav.total} in this filter" + (" (not in it)" if not nav.position else ""))
if n4.button("Back to Browse", icon=":material/list:"):
    keep_typed()
    st.switch_page("pages/1_Browse.py", query_params=cur.browse_query(flt, sort, desc))


def the_draft(traj) -> dict:
    """The draft of this trajectory in the session: started from the saved revision, kept while it has edits."""
    if dk not in ss or (ss[dk]["base"] != traj.revision and not ss[dk].get("dirty")):
        ss[dk] = {"base": traj.revision, "traj": traj, "orig": traj, "gen": next_gen()}
    if ss[dk].pop("regen", False):  # a field changed: redraw every field from the draft (a finish edit moves the answer)
        ss[dk]["gen"] = next_gen()
    return ss[dk]


def editor(traj, lints, draft: dict) -> set[int]:
    """Step cards, with the steps opened for editing (or every step and the final answer) as fields between them."""
    steps, prefix = draft["traj"].steps, f"e:{tid}:{draft['gen']}:"
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
            step_editor(i, steps, whole, prefix, keep_typed, merge)
    if whole:
        st.button("Add a step at the end", icon=":material/add:", on_click=keep_typed,
                  args=(cur.insert_step, len(steps)))
    return opened


def save(base: int) -> None:
    """A button callback (the fragment then runs once, on the saved revision): store the draft as a new revision."""
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


def save_area(traj, draft: dict, opened: set[int]) -> None:
    """Save (with a reason), the conflict with someone else's save, and what the last action did."""
    if draft["dirty"] or opened:
        st.text_input("Why (optional, kept in the history)", key=f"reason:{tid}")
        s1, s2 = st.columns([1, 4])
        s1.button("Save", icon=":material/save:", type="primary", disabled=not draft["dirty"], shortcut="ctrl+s",
                  on_click=save, args=(draft["base"],))
        s2.caption("Unsaved changes (Ctrl+S saves)" if draft["dirty"] else "No changes")
    if ss.get(f"conflict:{tid}"):
        st.error(cur.md_escape(ss[f"conflict:{tid}"]))
        c1, c2 = st.columns(2)
        c1.button(f"Save mine on top of revision {traj.revision}", on_click=save, args=(traj.revision,))
        if c2.button("Discard mine and load the saved one"):
            discard()
            st.rerun()
    if ss.get("traj_msg"):
        st.success(cur.md_escape(ss.pop("traj_msg")))
    if ss.get("traj_error"):
        st.error(cur.md_escape(ss.pop("traj_error")))


@st.fragment
def trajectory() -> None:
    """Everything below the navigation: an edit, a save, a review or a restore reruns this part alone (the
    sign-in, the sidebar and the position in the filter stay as they are)."""
    with store.session():
        traj = cur.open_trajectory(store, tid)
        lints = store.lints_of(tid)
        review = store.review_state(tid)
    ui.trajectory_header(traj, lints, review.status if review else None)
    draft = the_draft(traj)
    opened = editor(traj, lints, draft)
    edited = cur.apply_form(draft["traj"], *form_values(draft))
    draft["dirty"] = edited != draft["orig"]
    save_area(traj, draft, opened)
    ui_fork.fork_panel(store, traj, edited, draft["dirty"], who)
    review_panel(store, tid, who, review)
    history_panel(store, traj, who)


trajectory()
