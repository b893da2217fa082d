"""Team curation in the core and on the command line: identity modes, roles (the same refusals from the app's
functions and the CLI), balanced assignment, each annotator's queue, agreement figures checked against published
worked examples, and adjudication. Real DuckDB files built from FireAct's real evaluation run."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fireact_core.curation import edits as cur
from fireact_core.cli import main
from fireact_core.filters import TrajectoryFilter
from fireact_core.store import Store
from fireact_core.curation.team import AccessDenied, SignInRequired, add_user, auth_mode, bulk_review, identify, local_user
from fireact_core.curation.team import agreement as agr
from fireact_core.curation.team import assign as asg
from fireact_core.curation.team.roles import remove_user
from tests.conftest import copy_database
from tests.helpers.runs import RUN_A, build_two_runs

ME = local_user()


@pytest.fixture(scope="module")
def team_db(tmp_path_factory, two_runs_db):
    """The two FireAct runs, with an admin (the OS user), three annotators and a viewer."""
    path = copy_database(two_runs_db, tmp_path_factory.mktemp("team"))
    store = Store(path)
    add_user(store, ME, ME, "admin")
    for name in ("ann", "ben", "cat"):
        add_user(store, ME, name, "annotator")
    add_user(store, ME, "vic", "viewer")
    return path


@pytest.fixture
def db(team_db, tmp_path):
    return Store(copy_database(team_db, tmp_path))


def cli(db: Store, *args: str) -> int:
    return main(["--db", str(db.path), *args])


# identity

def test_auth_modes_parse_and_refuse_what_they_cannot_read():
    assert auth_mode("").kind == "local" and auth_mode("oidc").kind == "oidc"
    assert auth_mode("header:X-Forwarded-User") == auth_mode(" header:X-Forwarded-User ")
    assert auth_mode("header:X-Forwarded-User").header == "X-Forwarded-User"
    for bad in ("header:", "header:X Forwarded", "ldap", "header"):
        with pytest.raises(Exception, match="FIREACT_AUTH"):
            auth_mode(bad)


def test_identify_per_mode():
    header = auth_mode("header:X-Forwarded-User")
    assert identify(header, {"x-forwarded-user": " alice@lab.org "}) == "alice@lab.org"
    for headers in ({}, {"X-Forwarded-User": ""}, {"X-Other": "alice"}, None):
        with pytest.raises(SignInRequired, match="X-Forwarded-User header"):
            identify(header, headers)
    with pytest.raises(SignInRequired, match="control characters"):
        identify(header, {"X-Forwarded-User": "eve\nadmin"})
    oidc = auth_mode("oidc")
    assert identify(oidc, user={"is_logged_in": True, "email": "bo@lab.org", "name": "Bo"}) == "bo@lab.org"
    assert identify(oidc, user={"is_logged_in": True, "sub": "12345"}) == "12345"
    with pytest.raises(SignInRequired, match="sign in"):
        identify(oidc, user={"is_logged_in": False, "email": "bo@lab.org"})
    assert identify(auth_mode("local")) == ME


# roles

def test_no_users_means_everyone_is_an_admin_and_the_first_user_must_be_an_admin(store, shared):
    build_two_runs(store)
    tid = store.filter_ids(TrajectoryFilter(source=[RUN_A]))[0]
    cur.review_decision(store, tid, "anyone", "accepted")
    with pytest.raises(AccessDenied, match="first user must be an admin"):
        add_user(store, "anyone", "bob", "annotator")
    assert store.count_users() == 0
    add_user(store, "anyone", "boss", "admin")
    with pytest.raises(AccessDenied, match="anyone is not a registered user, so a viewer"):
        cur.review_decision(store, tid, "anyone", "rejected")
    assert store.review_state(tid).status == "accepted"


def test_viewer_cannot_write_and_annotator_cannot_do_admin_work(db):
    ids = db.filter_ids(TrajectoryFilter(source=[RUN_A]))
    traj = db.get_trajectory(ids[0])
    with pytest.raises(AccessDenied, match="vic is a viewer: accepting, rejecting.*annotators and admins"):
        cur.review_decision(db, ids[0], "vic", "accepted")
    with pytest.raises(AccessDenied, match="vic is a viewer: saving an edit"):
        cur.save_trajectory_edit(db, cur.set_final_answer(traj, "x"), base_revision=traj.revision, author="vic")
    with pytest.raises(AccessDenied, match="ann is an annotator: a decision on every trajectory of a filter"):
        bulk_review(db, "ann", ids, whole_filter=True, status="rejected")
    with pytest.raises(AccessDenied, match="adding users and changing roles is for admins"):
        add_user(db, "ann", "ann", "admin")
    with pytest.raises(AccessDenied, match="deleting is for admins"):
        remove_user(db, "ann", "ben")
    assert db.review_states(ids) == {} and db.get_trajectory(ids[0]).revision == traj.revision
    assert bulk_review(db, "ann", ids[:2], whole_filter=False, status="accepted") == 2
    assert bulk_review(db, ME, ids, whole_filter=True, status="rejected") == len(ids)
    assert {a.author for a in db.review_states(ids).values()} == {ME}


def test_the_last_admin_cannot_step_down(db):
    with pytest.raises(AccessDenied, match="only admin"):
        add_user(db, ME, ME, "annotator")
    add_user(db, ME, "ann", "admin")
    add_user(db, "ann", ME, "viewer")
    assert db.user_role(ME) == "viewer"


def test_cli_refuses_like_the_core_and_acts_as_only_for_admins(db, capsys):
    ids = db.filter_ids(TrajectoryFilter(source=[RUN_A]))
    assert cli(db, "--as", "vic", "review", ids[0], "--accept") == 2
    assert "vic is a viewer" in capsys.readouterr().err
    assert cli(db, "--as", "ann", "review", "--source", RUN_A, "--accept") == 2
    assert "a decision on every trajectory of a filter" in capsys.readouterr().err
    assert cli(db, "--as", "ann", "review", ids[0], "--accept") == 0
    assert db.review_state(ids[0]).author == "ann"
    assert cli(db, "--as", "ann", "users", "add", "ben", "--role", "admin") == 2
    capsys.readouterr()
    assert cli(db, "users", "--json") == 0
    users = json.loads(capsys.readouterr().out)
    assert [(u["name"], u["role"]) for u in users] == sorted([(ME, "admin"), ("ann", "annotator"), ("ben", "annotator"),
                                                              ("cat", "annotator"), ("vic", "viewer")])
    assert all(set(u) == {"name", "role", "created_at"} for u in users)
    add_user(db, ME, ME, "admin")
    add_user(db, ME, "ann", "admin")
    add_user(db, "ann", ME, "annotator")
    assert cli(db, "--as", "ben", "review", ids[1], "--accept") == 2
    assert "acting as another user is for admins" in capsys.readouterr().err


def test_every_write_records_who(db, shared):
    ids = db.filter_ids(TrajectoryFilter(source=[RUN_A]))
    traj = db.get_trajectory(ids[0])
    cur.save_trajectory_edit(db, cur.set_final_answer(traj, "Paris"), base_revision=traj.revision, author="ben")
    cur.review_decision(db, ids[0], "cat", "accepted")
    assert db.list_revisions(ids[0])[-1].author == "ben" and db.review_state(ids[0]).author == "cat"
    from fireact_core.mixing.versions import MixSpec, save_mix

    with pytest.raises(AccessDenied, match="vic is a viewer: saving a dataset version"):
        save_mix(db, MixSpec(size=4, sources=[RUN_A]), "mix-v", author="vic")
    version = save_mix(db, MixSpec(size=4, sources=[RUN_A]), "mix-b", author="ben")
    assert version.created_by == "ben" and db.get_dataset_version("mix-b").created_by == "ben"
    from fireact_core.generation.engine import RunConfig, prepare_run

    run = RunConfig(run="gen-cat", tasks_dir=str(shared / "tasks"), end=1, search="none")
    with pytest.raises(AccessDenied, match="vic is a viewer: starting a generation run"):
        prepare_run(db, run, by="vic")
    prepare_run(db, run, by="cat")
    assert db.owners_of("run") == {"gen-cat": "cat"}


# assignment

def test_assignment_is_balanced_and_keeps_what_is_there():
    ids = [f"t{i}" for i in range(10)]
    pairs = asg.plan_assignment(ids, ["a", "b", "c"], 2, {}, {})
    per = Counter(t for t, _ in pairs)
    load = Counter(a for _, a in pairs)
    assert set(per.values()) == {2} and max(load.values()) - min(load.values()) <= 1 and sum(load.values()) == 20
    pairs = asg.plan_assignment(["t0", "t1"], ["a", "b"], 2, {"t0": ["a"], "t1": ["a", "b"]}, {"a": 5})
    assert pairs == [("t0", "b")]
    assert asg.plan_assignment(["t0"], ["a", "b", "c"], 1, {}, {"a": 3, "b": 1, "c": 1}) == [("t0", "b")]


def test_assign_queue_and_progress(db, capsys):
    f = TrajectoryFilter(source=[RUN_A])
    ids = db.filter_ids(f)
    assert cli(db, "assign", "--source", RUN_A, "--to", "ann,ben,cat", "--overlap", "2", "--json") == 0
    out = json.loads(capsys.readouterr().out)
    assert out["trajectories"] == len(ids) and out["added"] == 2 * len(ids)
    assert max(out["per_annotator"].values()) - min(out["per_annotator"].values()) <= 1
    assigned = db.assignments_of(ids)
    assert all(len(v) == 2 for v in assigned.values()) and len(assigned) == len(ids)
    assert cli(db, "assign", "--source", RUN_A, "--to", "ann,ben,cat", "--overlap", "2", "--json") == 0
    assert json.loads(capsys.readouterr().out)["added"] == 0
    assert cli(db, "--as", "ann", "assign", "--source", RUN_A, "--to", "ann") == 2
    assert "assigning trajectories to annotators is for admins" in capsys.readouterr().err
    assert cli(db, "assign", "--source", RUN_A, "--to", "ann,vic") == 2
    assert "vic" in capsys.readouterr().err

    mine = [t for t in ids if "ann" in assigned[t]]
    first, is_mine = asg.next_in_queue(db, "ann", TrajectoryFilter())
    assert is_mine and first == mine[0]
    cur.review_decision(db, first, "ann", "accepted")
    other = next(a for a in assigned[first] if a != "ann")
    assert asg.next_in_queue(db, "ann", TrajectoryFilter())[0] == mine[1]
    # the other annotator still sees it: the first decision does not take it off their queue
    assert db.next_assigned(TrajectoryFilter(ids=[first]), other) == first
    assert db.next_assigned(TrajectoryFilter(ids=[first]), "ann") is None
    rows = {r["annotator"]: r for r in asg.progress(db, f)}
    assert rows["ann"]["assigned"] == len(mine) and rows["ann"]["done"] == 1 and rows["ann"]["reviewed"] == 1
    assert cli(db, "assign", ids[-1], "--to", "ann,ben,cat", "--remove", "--json") == 0
    assert json.loads(capsys.readouterr().out) == {"trajectories": 1, "removed": 2}
    assert db.assignments_of([ids[-1]]) == {}
    # someone not assigned anything gets the unassigned unreviewed trajectories: now the one taken off
    tid, is_mine = asg.next_in_queue(db, "dan", TrajectoryFilter())
    assert not is_mine and tid == ids[-1]
    assert asg.next_in_queue(db, "dan", TrajectoryFilter(), exclude=[tid])[0] not in ids


# agreement

def test_cohen_kappa_matches_the_textbook_example():
    # Cohen's kappa on Wikipedia: 50 proposals, yes/yes 20, yes/no 5, no/yes 10, no/no 15: po 0.7, pe 0.5, kappa 0.4
    a = ["y"] * 25 + ["n"] * 25
    b = ["y"] * 20 + ["n"] * 5 + ["y"] * 10 + ["n"] * 15
    po, kappa = agr.cohen(a, b)
    assert po == pytest.approx(0.7) and kappa == pytest.approx(0.4)
    assert agr.cohen(["y", "y"], ["y", "y"]) == (1.0, None)


def test_fleiss_kappa_matches_the_textbook_example():
    # Fleiss' kappa on Wikipedia: 10 items, 14 raters, 5 categories: P 0.378, pe 0.213, kappa 0.210
    table = [[0, 0, 0, 0, 14], [0, 2, 6, 4, 2], [0, 0, 3, 5, 6], [0, 3, 9, 2, 0], [2, 2, 8, 1, 1], [7, 7, 0, 0, 0],
             [3, 2, 6, 3, 0], [2, 5, 3, 2, 2], [6, 5, 2, 1, 0], [0, 2, 2, 3, 7]]
    items = [[cat for cat, n in enumerate(row) for _ in range(n)] for row in table]
    n, p, kappa = agr.fleiss(items)
    assert n == 10 and p == pytest.approx(0.378, abs=5e-4) and kappa == pytest.approx(0.210, abs=5e-4)


def test_agreement_report_from_the_store(db, capsys):
    ids = db.filter_ids(TrajectoryFilter(source=[RUN_A]))[:6]
    votes = {"ann": "AARRAA", "ben": "AARRRA", "cat": "AAAR"}
    asg.assign(db, ME, ids, ["ann", "ben", "cat"], overlap=3)
    cur.review_decision(db, ids[0], ME, "rejected")  # not assigned: not a vote
    for who, row in votes.items():
        for tid, v in zip(ids, row):
            cur.review_decision(db, tid, who, "accepted" if v == "A" else "rejected",
                                labels=["short"] if v == "R" and who != "cat" else [])
    assert cli(db, "agreement", "--json") == 0
    report = json.loads(capsys.readouterr().out)
    assert set(report) == {"pairs", "overall"}
    pairs = {(p["a"], p["b"]): p for p in report["pairs"]}
    assert set(pairs[("ann", "ben")]) == {"a", "b", "n", "agreement", "kappa"}
    assert pairs[("ann", "ben")]["n"] == 6 and pairs[("ann", "ben")]["agreement"] == pytest.approx(5 / 6, abs=1e-4)
    po, kappa = agr.cohen(list("AARRAA"), list("AARRRA"))
    assert pairs[("ann", "ben")]["kappa"] == pytest.approx(kappa, abs=1e-4)
    assert pairs[("ann", "cat")]["n"] == 4 and pairs[("ann", "cat")]["agreement"] == pytest.approx(0.75)
    overall = report["overall"]
    n, p, k = agr.fleiss([list("AAA"), list("AAA"), list("RRA"), list("RRR"), list("AR"), list("AA")])
    assert (overall["items"], overall["annotators"]) == (6, 3)
    assert overall["agreement"] == pytest.approx(p, abs=1e-4) and overall["kappa"] == pytest.approx(k, abs=1e-4)
    assert overall["labels"]["short"]["items"] == 6
    assert cli(db, "agreement", "--on-label", "short", "--json") == 0
    on_label = json.loads(capsys.readouterr().out)
    assert {(p["a"], p["b"]): p["agreement"] for p in on_label["pairs"]}[("ann", "cat")] == pytest.approx(0.5)


def test_disagreements_and_adjudication_are_final(db, capsys):
    tid = db.filter_ids(TrajectoryFilter(source=[RUN_A]))[0]
    asg.assign(db, ME, [tid], ["ann", "ben", "cat"], overlap=3)
    cur.review_decision(db, tid, "ann", "accepted", labels=["good"])
    cur.review_decision(db, tid, "ben", "rejected", labels=["good"])
    cur.review_decision(db, tid, "cat", "rejected")
    disputed = agr.disagreements(db)
    assert [d["trajectory_id"] for d in disputed] == [tid]
    assert disputed[0]["votes"] == {"ann": "accepted", "ben": "rejected", "cat": "rejected"} and disputed[0]["question"]
    with pytest.raises(AccessDenied, match="adjudicating a disagreement is for admins"):
        agr.adjudicate(db, "ann", tid, "accepted")
    assert cli(db, "adjudicate", tid, "--reject", "--note", "wrong answer", "--json") == 0
    saved = json.loads(capsys.readouterr().out)
    assert (saved["status"], saved["author"], saved["labels"]) == ("rejected", ME, ["good"])
    assert db.adjudication(tid).decided_by == ME and db.adjudication(tid).note == "wrong answer"
    assert agr.disagreements(db) == []
    with pytest.raises(AccessDenied, match="adjudicated .*final"):
        cur.review_decision(db, tid, "ann", "accepted")
    with pytest.raises(AccessDenied, match="final"):
        bulk_review(db, "ann", [tid], whole_filter=False, status="accepted")
    state = db.review_state(tid)
    assert (state.status, state.author, state.comment) == ("rejected", ME, "adjudicated: wrong answer")
    # the adjudication is not a vote: agreement still counts the three annotators only
    assert {(p["a"], p["b"]) for p in agr.agreement(db)["pairs"]} == {("ann", "ben"), ("ann", "cat"), ("ben", "cat")}
