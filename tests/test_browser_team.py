"""Header identity end to end, in real Chromium against `streamlit run serve.py` with FIREACT_AUTH=header:...: the
browser sends the header as a reverse proxy would, the Review page shows who is signed in and records their
decision under that name; a browser without the header is refused and writes nothing."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from fireact_core.filters import TrajectoryFilter
from fireact_core.store import Store
from fireact_core.curation.team.assign import next_in_queue
from tests.conftest import copy_database, screenshot, wait_for_app
from tests.helpers.runs import RUN_A

expect.set_options(timeout=30_000)
HEADER = "X-Forwarded-User"


@pytest.fixture
def app(tmp_path, streamlit_app, monkeypatch, two_runs_db):
    path = copy_database(two_runs_db, tmp_path)
    store = Store(path)
    store.save_user("boss", "admin", "test")
    store.save_user("ann@lab.org", "annotator", "boss")
    del store
    monkeypatch.setenv("FIREACT_AUTH", f"header:{HEADER}")
    return streamlit_app(path), path


def test_proxy_header_names_the_user_and_a_request_without_it_is_refused(app, browser):
    base, path = app
    proxied = browser.new_context(viewport={"width": 1400, "height": 1000}, extra_http_headers={HEADER: "ann@lab.org"})
    page = proxied.new_page()
    page.goto(f"{base}/Review?source={RUN_A}")
    wait_for_app(page)
    page.get_by_test_id("stSidebar").get_by_text("ann@lab.org · annotator").wait_for()
    shown, _ = next_in_queue(Store(path, lock_timeout=120), "ann@lab.org", TrajectoryFilter(source=[RUN_A]))
    page.get_by_role("button", name="Accept (a)").click()
    page.get_by_text("Last: accepted").wait_for()
    screenshot(page, "team-review-header")
    proxied.close()

    bare = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = bare.new_page()
    page.goto(f"{base}/Review?source={RUN_A}")
    wait_for_app(page)
    expect(page.get_by_text(f"this server takes the user from the {HEADER} header")).to_be_visible()
    expect(page.get_by_role("button", name="Accept (a)")).to_have_count(0)
    bare.close()

    store = Store(path, lock_timeout=120)
    states = store.review_states(store.filter_ids(TrajectoryFilter(source=[RUN_A])))
    assert [(tid, s.status, s.author) for tid, s in states.items()] == [(shown, "accepted", "ann@lab.org")]
