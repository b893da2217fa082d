"""Team curation in the app: who is signed in, the review queue's assignment, progress per annotator and
agreement. Pages call these functions; the rules live in fireact_core.curation.team."""

from __future__ import annotations

import streamlit as st

from fireact_core.curation import team as team
from fireact_core.curation.edits import md_escape
from fireact_core.errors import FireactError
from fireact_core.filters import TrajectoryFilter
from fireact_core.curation.team import agreement as agr
from fireact_core.curation.team import assign as asg

USER_KEY = "_team_user"


def current_user(store) -> str:
    """The signed-in user of this request, per $FIREACT_AUTH; a request with no identity sees why and stops
    (in oidc mode, with a sign-in button)."""
    try:
        mode = team.auth_mode()
        user = None
        if mode.kind == "oidc":
            user = st.user.to_dict()
        who = team.identify(mode, headers=st.context.headers.to_dict() if mode.kind == "header" else None, user=user)
        if mode.team and store.count_users() == 0:
            raise team.SignInRequired("this server has no users yet: on the server, register the first admin with "
                                      "`fireact users add NAME --role admin`")
    except team.SignInRequired as exc:
        st.error(md_escape(exc), icon=":material/lock:")
        if mode.kind == "oidc" and not (user or {}).get("is_logged_in"):
            if _login_configured():
                st.button("Sign in", icon=":material/login:", on_click=st.login, type="primary")
            else:
                st.error("FIREACT_AUTH=oidc needs an [auth] section in .streamlit/secrets.toml: see docs/deploy.md")
        st.stop()
    except FireactError as exc:
        st.error(md_escape(exc))
        st.stop()
    return who


def _login_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # noqa: BLE001 - no secrets file, or one that does not parse: not configured
        return False


def sign_in(store) -> str:
    """Every page's first step: who is signed in (a request with no identity stops here), shown in the sidebar.
    Read afresh on every run, and kept for the rest of the run (`signed_in`)."""
    with store.session():
        who = current_user(store)
        role = team.role_of(store, who)
    st.session_state[USER_KEY] = who
    st.sidebar.caption(f":material/person: {md_escape(who)} · {role}")
    if team.auth_mode().kind == "oidc":
        st.sidebar.button("Sign out", icon=":material/logout:", on_click=st.logout, key="team_logout")
    return who


def signed_in(store) -> str:
    """The user `sign_in` found at the start of this run."""
    return st.session_state.get(USER_KEY) or current_user(store)


def next_for(store, who: str, flt: TrajectoryFilter, skipped: list[str], sort: str, desc: bool) -> str | None:
    """The Review page's next trajectory for `who`: their assignment first; says so above the trajectory."""
    tid, mine = asg.next_in_queue(store, who, flt, exclude=skipped, sort=sort, descending=desc)
    if tid and mine:
        st.caption(":material/assignment_ind: Assigned to you")
    elif tid is None:
        mine_done = next((r for r in store.assignment_progress(flt) if r.annotator == who), None)
        if mine_done and mine_done.assigned:
            st.info(f"Your assignment in this filter is done: {mine_done.done} of {mine_done.assigned} decided "
                    "(skipped ones come back below); what is assigned to others stays in their queues.")
    return tid


def _assign(store, who: str, flt: TrajectoryFilter) -> None:
    ss = st.session_state
    try:
        out = asg.assign(store, who, store.filter_ids(flt), ss.get("team_assign_to") or [], int(ss.get("team_overlap", 1)))
        ss["team_assigned"] = (f"{out['added']} assignments added over {out['trajectories']} trajectories: " +
                               ", ".join(f"{a} {n}" for a, n in out["per_annotator"].items()), None)
    except FireactError as exc:
        ss["team_assigned"] = (None, str(exc))


def _assign_form(store, who: str, flt: TrajectoryFilter) -> None:
    names = [u.name for u in store.list_users() if u.role != "viewer"]
    with st.form("team_assign", border=False):
        st.multiselect("Annotators", names, key="team_assign_to", placeholder="choose annotators")
        st.number_input("Annotators per trajectory", 1, max(1, len(names)), 1, key="team_overlap")
        st.form_submit_button("Assign every trajectory of this filter", icon=":material/group_add:", on_click=_assign,
                              args=(store, who, flt))
    done, error = st.session_state.pop("team_assigned", (None, None))
    if done:
        st.success(md_escape(done))
    if error:
        st.error(md_escape(error))


def assignment_panel(store, who: str, flt: TrajectoryFilter) -> None:
    """Progress per annotator in this filter; for admins, assigning the filter's trajectories."""
    panel = st.expander("Assignment and progress per annotator", icon=":material/groups:", key="team_panel",
                        on_change="rerun")
    if not panel.open:  # its queries run only while it is open
        return
    with panel, store.session():
        if team.allowed(store, who, "assign"):
            _assign_form(store, who, flt)
        rows = asg.progress(store, flt)
        if rows:
            st.dataframe(rows, hide_index=True, width="stretch", column_config={
                "share_done": st.column_config.ProgressColumn("done", min_value=0.0, max_value=1.0, format="percent")})
        else:
            st.caption("Nobody is assigned or has reviewed anything in this filter yet.")


def _adjudicate(store, who: str, tid: str, status: str) -> None:
    try:
        agr.adjudicate(store, who, tid, status, note=st.session_state.get(f"team_note:{tid}"))
        st.session_state["team_done"] = f"{tid}: {status} (adjudicated)"
    except FireactError as exc:
        st.session_state["team_error"] = str(exc)


def agreement_section(store, who: str) -> None:
    """The Dashboard's Team tab: agreement figures, the disagreements waiting for an admin, users and roles."""
    st.subheader("Agreement between annotators")
    report = agr.agreement(store)
    if st.session_state.get("team_done"):
        st.success(md_escape(st.session_state.pop("team_done")))
    if st.session_state.get("team_error"):
        st.error(md_escape(st.session_state.pop("team_error")))
    if not report["pairs"]:
        st.caption("No trajectory has decisions from two annotators yet: assign with an overlap of 2 or more.")
    else:
        _agreement_figures(store, who, report)
    users_section(store, who)


def _agreement_figures(store, who: str, report: dict) -> None:
    overall = report["overall"]
    c = st.columns(3)
    c[0].metric("Items rated by 2+", overall["items"])
    c[1].metric("Agreement (accept/reject)", "—" if overall["agreement"] is None else f"{overall['agreement']:.0%}")
    c[2].metric("Fleiss' kappa", "—" if overall["kappa"] is None else f"{overall['kappa']:.2f}")
    left, right = st.columns(2)
    on = left.selectbox("Pairs agree on", [agr.REVIEW, *overall["labels"]], key="team_agree_on",
                        format_func=lambda x: x if x == agr.REVIEW else f"label {x}")
    pairs = report["pairs"] if on == agr.REVIEW else agr.agreement(store, label=on)["pairs"]
    left.caption("Percent agreement and Cohen's kappa per pair of annotators")
    left.dataframe(pairs, hide_index=True, width="stretch")
    right.caption("Each label: Fleiss' kappa")
    right.dataframe([{"label": k, **v} for k, v in overall["labels"].items()], hide_index=True, width="stretch")
    disputed = agr.disagreements(store)
    st.caption(f"Disagreements waiting for adjudication: {len(disputed)}")
    admin = team.allowed(store, who, "adjudicate")
    for d in disputed[:20]:
        with st.container(border=True):
            st.text(d["question"] or d["trajectory_id"])
            st.caption(md_escape("; ".join(f"{a}: {s or 'no decision'} {'/'.join(d['labels'][a])}".strip()
                                           for a, s in d["votes"].items())))
            if admin:
                tid = d["trajectory_id"]
                a, b, note = st.columns([1, 1, 3])
                a.button("Accept", key=f"team_acc:{tid}", on_click=_adjudicate, args=(store, who, tid, "accepted"))
                b.button("Reject", key=f"team_rej:{tid}", on_click=_adjudicate, args=(store, who, tid, "rejected"))
                note.text_input("Note", key=f"team_note:{tid}", label_visibility="collapsed", placeholder="why (optional)")


def _save_user(store, who: str) -> None:
    ss = st.session_state
    try:
        team.add_user(store, who, ss.get("team_user_name", ""), ss.get("team_user_role", "annotator"))
        ss["team_done"] = f"{ss.get('team_user_name', '').strip()} is now {ss.get('team_user_role')}"
    except FireactError as exc:
        ss["team_error"] = str(exc)


def users_section(store, who: str) -> None:
    """Who may do what; admins add users and change roles here as with `fireact users add`."""
    st.subheader("Users and roles")
    users = store.list_users()
    if users:
        st.dataframe([u.model_dump() for u in users],
                     hide_index=True, width="stretch")
    else:
        st.caption("No users registered: everyone acts as an admin (see docs/deploy.md).")
    if not team.allowed(store, who, "users"):
        return
    name, role, go = st.columns([3, 2, 1], vertical_alignment="bottom")
    name.text_input("User name", key="team_user_name", placeholder="as the sign-in names them")
    role.selectbox("Role", team.ROLES, index=1, key="team_user_role")
    go.button("Add or change", key="team_user_save", on_click=_save_user, args=(store, who))
