"""Team curation in the app under AppTest: sign-in per identity mode, the Review page's assignment form,
queue and progress, a viewer's refusal, and the Dashboard's agreement tab with adjudication. Each session signs
in as its own user (OIDC mode, `AppTest.user`); every action goes through the widgets and is checked in the store."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from fireact_core.curation import edits as cur
from fireact_core.filters import TrajectoryFilter
from fireact_core.store import Store
from fireact_core.curation.team import agreement as agr
from fireact_core.curation.team import assign as asg
from tests.conftest import copy_database, ROOT, signed_in_pages_database
from tests.helpers.runs import RUN_A
from tests.helpers.pages import button, ok
from tests.helpers.pages import open_page as signed_in_page


@pytest.fixture(scope="module")
def team_db(tmp_path_factory, two_runs_db):
    path = copy_database(two_runs_db, tmp_path_factory.mktemp("team_pages"))
    store = Store(path)
    store.save_user("boss", "admin", "test")
    for name in ("ann", "ben"):
        store.save_user(name, "annotator", "boss")
    store.save_user("vic", "viewer", "boss")
    return path


@pytest.fixture
def db(team_db, tmp_path, monkeypatch):
    return signed_in_pages_database(team_db, tmp_path, monkeypatch)


def open_page(name: str, who: str, **params: str) -> AppTest:
    return ok(signed_in_page(name, who, **params))


def error(at: AppTest) -> str:
    """The first error's text as a person reads it (markdown escapes removed)."""
    assert at.error, "no error shown"
    return at.error[0].value.replace("\\", "")


def test_a_request_without_identity_is_refused(db, monkeypatch):
    at = AppTest.from_file(str(ROOT / "pages" / "3_Review.py"), default_timeout=60)
    at.user = {"is_logged_in": False}
    at.secrets["auth"] = {"redirect_uri": "http://127.0.0.1:8501/oauth2callback", "cookie_secret": "x" * 32,
                          "client_id": "studio", "client_secret": "s",
                          "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration"}
    at.run()
    assert "sign in" in error(at) and button(at, "Sign in") and not at.title
    at = AppTest.from_file(str(ROOT / "pages" / "3_Review.py"), default_timeout=60)
    at.user = {"is_logged_in": False}
    at.run()  # no [auth] in the secrets: says what is missing
    assert "[auth] section in .streamlit/secrets.toml" in at.error[1].value.replace("\\", "") and not at.button
    monkeypatch.setenv("FIREACT_AUTH", "header:X-Forwarded-User")
    at = open_page("3_Review.py", "ann")  # AppTest sends no headers: as a request that skipped the proxy
    assert "X-Forwarded-User header" in error(at) and not at.button and not at.title


def test_a_team_server_with_no_users_serves_nobody(tmp_path, monkeypatch, shared):
    empty = Store(tmp_path / "empty.duckdb")
    monkeypatch.setenv("FIREACT_DB", str(empty.path))
    monkeypatch.setenv("FIREACT_AUTH", "oidc")
    at = open_page("1_Browse.py", "ann")
    assert "no users yet" in error(at) and "fireact users add" in error(at)


def test_admin_assigns_on_review_and_each_queue_serves_its_assignment_first(db):
    flt = TrajectoryFilter(source=[RUN_A], em="wrong")
    ids = db.filter_ids(flt)
    at = open_page("3_Review.py", "boss", source=RUN_A, em="wrong")
    assert "boss · admin" in at.sidebar.caption[0].value
    at.session_state["team_panel"] = True  # open the assignment panel
    at.run()
    at.multiselect(key="team_assign_to").set_value(["ann", "ben"])
    at.number_input(key="team_overlap").set_value(1)
    button(at, "Assign every trajectory of this filter").click().run()
    assert "assignments added" in at.success[0].value
    assigned = db.assignments_of(ids)
    assert len(assigned) == len(ids) and all(len(v) == 1 for v in assigned.values())
    ben_first = next(t for t in ids if assigned[t] == ["ben"])

    ben = open_page("3_Review.py", "ben", source=RUN_A, em="wrong")
    assert any("Assigned to you" in c.value for c in ben.caption)
    ben.session_state["team_panel"] = True
    ben.run()
    assert not [f for f in ben.get("form")]  # no assignment form for annotators
    button(ben, "Accept (a)").click().run()
    state = db.review_state(ben_first)  # the trajectory the page showed first was ben's first assignment
    assert (state.status, state.author) == ("accepted", "ben")
    rows = {r["annotator"]: r for r in asg.progress(db, flt)}
    assert rows["ben"]["done"] == 1 and rows["ann"]["done"] == 0
    progress = ben.dataframe[0].value
    assert set(progress["annotator"]) == {"ann", "ben"}


def test_viewer_sees_the_queue_but_cannot_decide(db):
    at = open_page("3_Review.py", "vic", source=RUN_A)
    button(at, "Accept (a)").click().run()
    assert "vic is a viewer" in error(at)
    assert db.review_states(db.filter_ids(TrajectoryFilter(source=[RUN_A]))) == {}


def test_dashboard_agreement_and_adjudication(db):
    ids = db.filter_ids(TrajectoryFilter(source=[RUN_A]))[:4]
    asg.assign(db, "boss", ids, ["ann", "ben"], overlap=2)
    for tid, a, b in zip(ids, "AARA", "ARRA"):
        cur.review_decision(db, tid, "ann", "accepted" if a == "A" else "rejected")
        cur.review_decision(db, tid, "ben", "accepted" if b == "A" else "rejected")
    at = open_page("8_Dashboard.py", "boss")
    at.session_state["dash_tab"] = "Team"
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Items rated by 2+"] == "4" and metrics["Agreement (accept/reject)"] == "75%"
    assert "Disagreements waiting for adjudication: 1" in [c.value for c in at.caption]
    assert at.dataframe[0].value.iloc[0][["a", "b", "n", "agreement"]].tolist() == ["ann", "ben", 4, 0.75]
    at.button(key=f"team_rej:{ids[1]}").click().run()
    assert "adjudicated" in at.success[0].value
    assert db.adjudication(ids[1]).decided_by == "boss" and db.review_state(ids[1]).status == "rejected"
    assert agr.disagreements(db) == []
    ann = open_page("8_Dashboard.py", "ann")
    ann.session_state["dash_tab"] = "Team"
    ann.run()
    assert not ann.exception and not [b for b in ann.button if b.label in ("Accept", "Reject", "Add or change")]
    at.text_input(key="team_user_name").input("cat@lab.org")
    at.selectbox(key="team_user_role").select("viewer")
    button(at, "Add or change").click().run()
    assert db.user_role("cat@lab.org") == "viewer" and "cat@lab.org is now viewer" in at.success[0].value.replace("\\", "")
    at.text_input(key="team_user_name").input("boss")
    at.selectbox(key="team_user_role").select("annotator")
    button(at, "Add or change").click().run()
    assert "boss is the only admin" in error(at) and db.user_role("boss") == "admin"


def test_an_annotator_whose_assignment_is_done_is_told_so(db):
    ids = db.filter_ids(TrajectoryFilter(source=[RUN_A]))[:2]
    asg.assign(db, "boss", ids, ["ann", "ben"], overlap=2)
    at = open_page("3_Review.py", "ann", ids=",".join(ids))
    for _ in ids:
        button(at, "Accept (a)").click().run()
    assert "Your assignment in this filter is done: 2 of 2 decided" in at.info[0].value
    assert [s.author for s in db.review_states(ids).values()] == ["ann", "ann"]
    ben = open_page("3_Review.py", "ben", ids=",".join(ids))  # ann's decisions leave ben's queue as it was
    assert any("Assigned to you" in c.value for c in ben.caption)
