"""A journey per page in real Chromium, against one `streamlit run serve.py` for the whole module: the reading view
and its draft guard (Trajectory, Browse), the confirmation of a whole-filter action (Browse), a review keystroke
with a rating (Review), aligned cards (Compare), and panels that follow an action (Generate's newest run, Mix's
version just saved, Train's form, the Dashboard's model x method table, Home first in the sidebar)."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from playwright.sync_api import expect

from fireact_core.filters import TrajectoryFilter
from fireact_core.store import Store
from tests.conftest import copy_database, ROOT, free_port, screenshot, settle, wait_for_app, wait_for_port
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serpapi_server import FakeSerpAPI
from tests.helpers.runs import RUN_A, RUN_B

pytestmark = pytest.mark.timeout(600)
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"
expect.set_options(timeout=60_000)


@pytest.fixture(scope="module")
def app(tmp_path_factory, two_runs_db):
    """The two runs of the curation tests and a dataset version, served by one Streamlit for every test here,
    with stand-in model and search servers for Generate."""
    from fireact_core.mixing.versions import MixSpec, save_mix

    folder = tmp_path_factory.mktemp("pages")
    store = Store(copy_database(two_runs_db, folder))
    save_mix(store, MixSpec.parse({"sources": [RUN_A], "size": 20, "val_fraction": 0.1, "seed": 1}), "first-mix")
    llm, serp = FakeOpenAI(), FakeSerpAPI()
    env = {**os.environ, "FIREACT_DB": str(store.path), "OPENAI_BASE_URL": llm.start(), "OPENAI_API_KEY": "sk-pages",
           "FIREACT_SERPAPI_URL": serp.start(), "FIREACT_TASKS_DIR": str(TASKS),
           "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "serve.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=(folder / "streamlit.log").open("w"), stderr=subprocess.STDOUT)
    try:
        wait_for_port(port, proc)
        yield f"http://127.0.0.1:{port}", Store(store.path, lock_timeout=120)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        llm.stop()
        serp.stop()


def opened(page, url: str, ready: str) -> None:
    """Go to `url` and wait for the element the page draws last."""
    page.goto(url)
    page.locator(ready).first.wait_for(timeout=90_000)
    wait_for_app(page, timeout=90_000)


def test_trajectory_reads_as_cards_and_keeps_an_unsaved_draft(app, page):
    base, store = app
    tid = store.filter_ids(TrajectoryFilter(source=[RUN_A], em="wrong"), limit=1)[0]
    traj = store.get_trajectory(tid)
    opened(page, f"{base}/Trajectory?id={tid}", "[data-testid=step-card]")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_test_id("step-card")).to_have_count(len(traj.steps))
    header = main.get_by_test_id("trajectory-header")
    expect(header).to_contain_text(traj.question)
    expect(header).to_contain_text(traj.gold)
    expect(main.locator(".fa-chip").first).to_have_text(traj.steps[0].action.name)
    expect(main.get_by_label("Comment")).to_have_count(0)  # the Review panel is drawn when opened
    main.get_by_text("Review", exact=True).click()
    expect(main.get_by_label("Comment")).to_have_count(1)
    expect(main.get_by_label("Thought")).to_have_count(0)  # no step is open for editing
    # opened by its address as the first page of this server: still the app's navigation, Home first
    expect(page.get_by_test_id("stSidebarNav").get_by_role("link").first).to_contain_text("Home")
    screenshot(page, "pages-trajectory-read")

    main.get_by_role("button", name="step 1", exact=True).click()
    thought = main.get_by_label("Thought")
    thought.fill("A draft nobody saved yet.")
    thought.press("Control+Enter")
    settle(page)
    page.get_by_test_id("stSidebarNav").get_by_role("link", name=re.compile("Browse$")).click()
    drafts = page.get_by_test_id("stMain").get_by_text("Unsaved edits")
    drafts.wait_for()
    page.get_by_test_id("stMain").get_by_test_id("stPageLink-NavLink").filter(has_text=traj.question[:40]).click()
    main.get_by_test_id("step-card").first.wait_for()
    expect(main.get_by_label("Thought")).to_have_value("A draft nobody saved yet.")
    expect(main.get_by_text("Unsaved edits: they stay here")).to_be_visible()
    assert store.get_trajectory(tid).revision == 0
    main.get_by_role("button").filter(has_text=re.compile(r"Save.*Ctrl")).click()
    main.get_by_text("Saved revision 1").wait_for()
    assert store.get_trajectory(tid).steps[0].thought == "A draft nobody saved yet."


def test_browse_confirms_a_whole_filter_action_and_keeps_the_page_in_the_address(app, page):
    base, store = app
    flt = TrajectoryFilter(source=[RUN_B], em="wrong", steps_max=2)
    n = store.count_filtered(flt)
    opened(page, f"{base}/Browse?source={RUN_B}&em=wrong&steps_max=2", "[data-testid=fa-pick-table]")
    main = page.get_by_test_id("stMain")
    rows = main.get_by_test_id("fa-pick-row")
    expect(rows).to_have_count(min(n, 50))
    rows.nth(0).get_by_role("checkbox").click()
    settle(page)
    rows.nth(1).click()  # a click anywhere on a row but its link selects it too
    settle(page)
    expect(rows.nth(1)).to_have_attribute("aria-selected", "true")
    main.get_by_role("button", name="Tag, accept or reject").click()
    bulk = page.get_by_test_id("stPopoverBody")
    expect(bulk.get_by_text("2 selected")).to_be_visible()
    bulk.get_by_text("every trajectory matching the filter").click()
    settle(page)
    bulk.get_by_role("button", name="Reject", exact=True).click()
    bulk.get_by_text(f"Reject all {n} trajectories matching this filter?").wait_for()
    assert store.count_filtered(flt.model_copy(update={"review": "rejected"})) == 0
    screenshot(page, "pages-browse-confirm")
    bulk.get_by_role("button", name=f"Reject all {n}").click()
    main.get_by_text(f"rejected: {n} trajectories").wait_for()
    assert store.count_filtered(flt.model_copy(update={"review": "rejected"})) == n

    # "More filters and order" is drawn when opened: the address's value reaches it then, and what is set in it
    # holds after it closes and another filter changes
    sidebar = page.get_by_test_id("stSidebar")
    expect(sidebar.get_by_text("Set: at most 2 steps")).to_be_visible()
    expect(sidebar.get_by_label("Max steps")).to_have_count(0)
    sidebar.get_by_text("More filters and order").click()
    expect(sidebar.get_by_label("Max steps")).to_have_value("2")
    sidebar.get_by_test_id("stRadio").filter(has_text="Review").get_by_text("rejected", exact=True).click()
    main.get_by_text(f"{n} trajectories match").wait_for()
    sidebar.get_by_text("More filters and order").click()
    expect(sidebar.get_by_label("Max steps")).to_have_count(0)
    sidebar.get_by_test_id("stRadio").filter(has_text="Answer (EM)").get_by_text("any", exact=True).click()
    both = flt.model_copy(update={"em": None, "review": "rejected"})
    main.get_by_text(f"{store.count_filtered(both)} trajectories match").wait_for()
    # the address follows the page's rerun: wait for the one without the answer filter
    page.wait_for_url(lambda url: "review=rejected" in url and "em=" not in url)
    assert "steps_max=2" in page.url
    sidebar.get_by_text("More filters and order").click()
    expect(sidebar.get_by_label("Max steps")).to_have_value("2")

    opened(page, f"{base}/Browse?source={RUN_A}&page=3", "[data-testid=fa-pick-table]")
    expect(page.get_by_label(re.compile("^Page"))).to_have_value("3")
    page.get_by_label(re.compile("^Page")).fill("4")
    page.get_by_label(re.compile("^Page")).press("Enter")
    page.wait_for_url(re.compile(r".*page=4"))

    # a question in the table is a link to its trajectory; the filter stays in the address
    first_of_page = store.filter_ids(TrajectoryFilter(source=[RUN_A]), limit=151)[150]
    settle(page)
    link = main.get_by_test_id("fa-pick-row").first.get_by_role("link")
    expect(link).to_have_text(store.get_trajectory(first_of_page).question)
    link.click()
    page.wait_for_url(re.compile(f".*/Trajectory\\?.*id={first_of_page}"))
    assert "source=" in page.url
    main.get_by_test_id("step-card").first.wait_for()


def test_review_takes_a_rating_and_a_key_moves_on(app, page):
    base, store = app
    flt = TrajectoryFilter(source=[RUN_A], em="right")
    first, second = store.filter_ids(flt, limit=2)
    opened(page, f"{base}/Review?source={RUN_A}&em=right", "[data-testid=step-card]")
    main = page.get_by_test_id("stMain")
    expect(main.get_by_test_id("trajectory-header")).to_contain_text(store.get_trajectory(first).question)
    main.get_by_test_id("stFeedback").get_by_test_id("stFeedbackButton").nth(3).click()  # the fourth star
    settle(page)
    main.locator("h1").first.click()
    page.keyboard.press("a")
    expect(main.get_by_test_id("trajectory-header")).to_contain_text(store.get_trajectory(second).question)
    state = store.review_state(first)
    assert state.status == "accepted" and state.rating == 4


def test_compare_aligns_the_same_cards(app, page):
    base, store = app
    opened(page, f"{base}/Compare?a={RUN_A}&b={RUN_B}&cell=only_b", "[data-testid=aligned-step]")
    pair = page.locator(".fireact-compare")
    expect(pair.get_by_test_id("step-card").nth(1)).to_be_visible()
    expect(pair.locator("mark").first).to_be_attached()
    second = store.compare_pairs(RUN_A, RUN_B, "only_b", limit=200)[1]
    page.get_by_test_id("fa-pick-row").nth(1).click()  # a row picked in the list is the question shown below
    expect(page.get_by_test_id("stMain").get_by_role("combobox", name="Question")).to_have_value(
        re.compile(r"^2\. " + re.escape(second.question[:60])))
    expect(page.get_by_test_id("fa-pick-row").nth(1)).to_have_attribute("aria-selected", "true")


def test_generate_follows_the_run_just_started(app, page):
    base, store = app
    opened(page, f"{base}/Generate", "[data-testid=stFormSubmitButton]")
    main = page.get_by_test_id("stMain")
    main.get_by_label("Run name (empty: made from the settings)").fill("pages-run")
    main.get_by_label("End (0: to the end) / seed").fill("2")
    main.get_by_role("button", name="Start").click()
    main.get_by_text("Started run 'pages-run'").wait_for()
    expect(main.get_by_role("combobox", name="Run")).to_have_value("pages-run")
    main.get_by_text(re.compile(r"2/2 questions · finished")).wait_for(timeout=90_000)
    screenshot(page, "pages-generate")


def test_mix_train_dashboard_home(app, page):
    base, store = app
    opened(page, f"{base}/Mix", "[data-testid=mix-composition]")
    main = page.get_by_test_id("stMain")
    main.get_by_label("Name", exact=True).fill("second-mix")
    main.get_by_role("button", name="Save version").click()
    settle(page)  # the save's run has ended: the buttons below are its own, not the ones drawn before it
    expect(main.get_by_text("Saved 'second-mix'")).to_be_visible()
    expect(main.get_by_role("combobox", name="Version")).to_have_value("second-mix")
    main.get_by_role("button", name="Prepare download").click()
    settle(page)
    expect(main.get_by_role("button", name=re.compile("Download second-mix"))).to_be_visible()

    opened(page, f"{base}/Train", "[data-testid=stForm]")
    local = page.get_by_role("tabpanel", name="Local")
    expect(local.get_by_label("Epochs", exact=True)).to_have_count(1)
    expect(local.get_by_label("Max steps", exact=True)).to_have_count(0)
    local.get_by_test_id("stButtonGroup").get_by_text("Max steps", exact=True).click()
    expect(local.get_by_label("Max steps", exact=True)).to_have_count(1)
    expect(local.get_by_label("Epochs", exact=True)).to_have_count(0)

    opened(page, f"{base}/Dashboard", "[data-testid=fa-pick-table]")
    screenshot(page, "pages-dashboard-runs")
    page.get_by_role("tab", name="Models & methods").click()
    page.get_by_text("EM by model and method").wait_for()
    screenshot(page, "pages-dashboard-models")
