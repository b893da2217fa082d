"""Forks in the app: continue a trajectory from a step (the Trajectory page), repair a filter's failures (Browse),
and the family of a parent and its continuations (Compare). Runs go on in the background with progress."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import streamlit as st

from fireact_core.generation import engine as engine, forking as forking
from fireact_core.curation.edits import md_escape
from fireact_core.errors import FireactError
from fireact_core.filters import TrajectoryFilter
from fireact_core.generation.tools import SEARCH_KINDS
from fireact_core.records import Trajectory
from ui import Store

if TYPE_CHECKING:
    from streamlit.delta_generator import DeltaGenerator


def _model_form(store: Store, traj: Trajectory, key: str) -> dict[str, Any]:
    """Model, endpoint, search and temperature, prefilled with what `traj` was made with; keys come from the
    environment, never from here."""
    recorded = forking.fork_config(store, traj, "form", {})
    c1, c2, c3, c4 = st.columns([3, 3, 2, 2])
    model = c1.text_input("Model", value=recorded.model, key=f"{key}:model")
    base_url = c2.text_input("Endpoint (OpenAI-compatible; empty: $OPENAI_BASE_URL)", value=recorded.base_url or "",
                             key=f"{key}:url")
    search = c3.selectbox("Search", SEARCH_KINDS, index=SEARCH_KINDS.index(recorded.search), key=f"{key}:search")
    temperature = c4.number_input("Temperature", 0.0, 2.0, float(recorded.temperature), 0.1, key=f"{key}:temp")
    local = recorded.backend == "local"
    return {"model": model.strip() or None, "base_url": base_url.strip() or None, "search": search,
            "temperature": temperature, **({"backend": "local"} if local else {})}


def run_progress(store: Store, name: str) -> None:
    """A fork run's progress bar and tally; Browse opens what it stored."""
    run = engine.run_view(store, name)
    status = "stalled (no sign of life)" if run.stalled else run.status
    st.progress(run.fraction, text=md_escape(f"run {name}: {run.attempted}/{run.total} stored · {status}"))
    source = store.get_source(name)
    tally = (source.meta.get("repair") if source else None) or {}
    if tally:
        st.caption(f"{tally['tried']} continuations tried, {tally['kept']} kept (scored right)")
    if run.error:
        st.error(md_escape(run.error))


def children_list(store: Store, traj: Trajectory) -> None:
    """The parent of a continuation, and the continuations of this trajectory, each with a link."""
    link = store.fork_parent(traj.id)
    if link is not None:
        st.page_link("pages/2_Trajectory.py", label=f"Continued from {link.parent_id} after step {link.fork_step} "
                     f"(revision {link.parent_revision}, {link.kind})", icon=":material/call_split:",
                     query_params={"id": link.parent_id})
    links = store.fork_children(traj.id)
    if not links:
        return
    rows = {t.id: t for t in store.iter_trajectories(ids=[x.child_id for x in links])}
    st.markdown(f"**Continuations** ({len(links)})")
    for x in links:
        child = rows.get(x.child_id)
        if child is None:
            continue
        st.page_link("pages/2_Trajectory.py", icon=":material/subdirectory_arrow_right:",
                     label=md_escape(f"{child.id} · after step {x.fork_step} · {x.kind} · answer {child.final_answer} "
                                     f"· EM {child.em}"), query_params={"id": child.id})
    st.page_link("pages/4_Compare.py", label="Compare this trajectory with its continuations",
                 icon=":material/compare_arrows:", query_params={"family": traj.id})


def fork_panel(store: Store, saved: Trajectory, draft: Trajectory, dirty: bool, who: str) -> None:
    """Continue from a step: of the draft when there are unsaved edits, else of the saved revision."""
    ss = st.session_state
    key = f"fork:{saved.id}"
    children_list(store, saved)
    if ss.get(f"{key}:run"):  # a run of this session goes on: its progress shows
        ss.setdefault(f"{key}:open", True)
    panel = st.expander("Continue from a step", key=f"{key}:open", on_change="rerun", icon=":material/call_split:")
    if not panel.open:  # its form, and the reads behind it, run only while it is open
        return
    with panel:
        st.caption("Steps 1..K are kept as they stand" + (" (with your unsaved edits)" if dirty else "") +
                   "; the model goes on with the prompt layout and tools this trajectory was made with.")
        c1, c2, c3 = st.columns([2, 1, 3])
        k = c1.selectbox("Keep steps 1..K", list(range(len(draft.steps) + 1)), index=min(1, len(draft.steps)),
                         key=f"{key}:k", format_func=lambda i: f"K = {i}" + (" (question only)" if i == 0 else ""))
        n = c2.number_input("Samples (N)", 1, 20, 1, key=f"{key}:n")
        run = c3.text_input("Run name (empty: continue_ID_time)", key=f"{key}:runname")
        try:
            overrides = _model_form(store, saved, key)
        except FireactError as exc:  # what it was made with does not make settings (an unknown backend)
            st.error(md_escape(exc))
            return
        if st.button("Continue", icon=":material/play_arrow:", type="primary", key=f"{key}:go"):
            try:
                jobs = forking.make_jobs(store, [(draft, int(k))], int(n),
                                         run.strip() or forking.fork_run_name("continue", saved.id), overrides,
                                         drafts={saved.id} if dirty else set())
                ss[f"{key}:run"] = forking.start_forks(store, jobs, by=who)
            except FireactError as exc:
                st.error(md_escape(exc))
        if ss.get(f"{key}:run"):
            _live(store, ss[f"{key}:run"])


def _live(store: Store, name: str) -> None:
    running = store.get_run(name).status == "running"

    @st.fragment(run_every=1 if running else None)
    def panel() -> None:
        run_progress(store, name)
        if running and store.get_run(name).status != "running":
            st.rerun()  # the whole page: the new continuations join the list

    panel()


def repair_panel(store: Store, flt: TrajectoryFilter, who: str, place: DeltaGenerator) -> None:
    """Browse: continue the failed or wrong trajectories of the filter from before their first wrong step. The
    form opens from a button in `place`; a repair started here shows its progress below it."""
    ss = st.session_state
    with place.popover("Repair wrong ones", icon=":material/healing:", width="stretch"):
        st.markdown("**Repair the failed or wrong trajectories of this filter**")
        st.caption("Each is continued from the step before its first lint (or a chosen rule's); only continuations "
                   "that score right are kept, labelled 'repaired'.")
        c1, c2, c3 = st.columns([1, 2, 1])
        n = c1.number_input("Samples each (N)", 1, 20, 1, key="repair:n")
        rule = c2.text_input("Rule (a lint kind; empty: the first lint)", key="repair:rule")
        limit = c3.number_input("At most", 1, 10000, 100, key="repair:limit")
        c4, c5 = st.columns(2)
        model = c4.text_input("Model (empty: as each was made)", key="repair:model")
        base_url = c5.text_input("Endpoint (empty: $OPENAI_BASE_URL)", key="repair:url")
        if st.button("Repair", icon=":material/healing:", key="repair:go"):
            try:
                ss["repair:run"] = forking.repair(
                    store, flt, n=int(n), rule=rule.strip() or None, by=who, limit=int(limit), background=True,
                    overrides={"model": model.strip() or None, "base_url": base_url.strip() or None})
            except FireactError as exc:
                st.error(md_escape(exc))
    if ss.get("repair:run"):
        _live(store, ss["repair:run"])
        st.page_link("pages/1_Browse.py", label="Browse the repaired ones", icon=":material/list:",
                     query_params={"source": ss["repair:run"]})


def family_view(store: Store, traj_id: str) -> None:
    """Compare: a parent and one of its continuations side by side, the kept steps aligned one to one."""
    from fireact_core.curation.cards import pair_cards_html
    from fireact_core.curation.compare import align_fork

    try:
        parent, children = forking.family(store, traj_id)
    except FireactError as exc:
        st.info(md_escape(exc))
        return
    st.title("Compare a trajectory with its continuations")
    st.caption("Question")
    st.text(parent.question)
    if not children:
        st.info("This trajectory has no continuations yet: continue it from a step on the Trajectory page.")
        return
    st.dataframe([{"trajectory": t.id, "after step": x.fork_step, "kind": x.kind, "answer": t.final_answer,
                   "EM": t.em, "steps": len(t.steps)} for x, t in children], hide_index=True, width="stretch")
    ids = [t.id for _, t in children]
    wanted = traj_id if traj_id in ids else ids[0]
    pick = st.selectbox("Continuation", ids, index=ids.index(wanted), key=f"family:{parent.id}",
                        format_func=lambda i: f"{i} (after step {dict((t.id, x.fork_step) for x, t in children)[i]})")
    link, child = next((x, t) for x, t in children if t.id == pick)
    st.text(f"Parent answer: {parent.final_answer}   EM: {parent.em}      Continuation answer: {child.final_answer}   "
            f"EM: {child.em}")
    origin = f"revision {link.parent_revision}" + (", with edits not saved" if child.meta.get("fork", {}).get(
        "from_draft") else "")
    st.caption(f"Steps 1..{link.fork_step} are shared (kept from {origin}); the rest is the continuation's own.")
    pairs = align_fork(parent.steps, child.steps, link.fork_step)
    st.html(pair_cards_html(parent, child, f"Parent {parent.id}", f"Continuation {child.id}", pairs=pairs))
    if st.button("Open the continuation in the editor", key=f"family_open:{child.id}"):
        st.switch_page("pages/2_Trajectory.py", query_params={"id": child.id})
