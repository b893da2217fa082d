"""Curation journeys in real Chromium against `streamlit run serve.py` on 127.0.0.1: filter to wrong answers, open
one, edit a thought and the final answer, save, reload and see the edit and its revision, restore the original,
compare two runs with aligned steps, and model text that holds a script, HTML or a markdown image shown as text."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from fireact_core.filters import TrajectoryFilter
from fireact_core.store import Store
from fireact_core.curation.team import local_user
from tests.conftest import copy_database, screenshot, settle, wait_for_app
from tests.helpers.runs import RUN_A, RUN_B, XSS, XSS_QUESTION

XSS_ID = "xss0000000000001"
ME = local_user()
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def runs_db(two_runs_db):
    """The real FireAct run imported as run A, and a second run over the same questions, built once."""
    return two_runs_db


@pytest.fixture
def app(runs_db, tmp_path, streamlit_app):
    path = copy_database(runs_db, tmp_path)
    return streamlit_app(path), Store(path, lock_timeout=120)


def commit(locator, text: str) -> None:
    """Type into a Streamlit text field and commit it (Enter for inputs, a click elsewhere for text areas)."""
    locator.fill(text)
    locator.press("Control+Enter" if locator.evaluate("e => e.tagName") == "TEXTAREA" else "Enter")


def test_filter_open_edit_save_reload_restore(app, page):
    base, store = app
    page.goto(f"{base}/Browse?source={RUN_A}")
    wait_for_app(page)
    main = page.get_by_test_id("stMain")
    total = store.count_filtered(TrajectoryFilter(source=[RUN_A]))
    main.get_by_text(f"{total} trajectories match").wait_for()
    page.get_by_test_id("stSidebar").get_by_text("wrong", exact=True).click()
    wrong = store.count_filtered(TrajectoryFilter(source=[RUN_A], em="wrong"))
    main.get_by_text(f"{wrong} trajectories match").wait_for()
    assert "em=wrong" in page.url
    screenshot(page, "curation-browse")

    first = store.filter_ids(TrajectoryFilter(source=[RUN_A], em="wrong"), limit=1)[0]
    original = store.get_trajectory(first)
    main.get_by_test_id("stSelectbox").filter(has_text="Open a trajectory of this page").locator("input").click()
    page.get_by_role("option").first.click()
    page.wait_for_url(re.compile(r".*/Trajectory\?.*id=" + first))
    settle(page)
    main.get_by_test_id("trajectory-header").get_by_text(original.question, exact=True).wait_for()
    expect(main.get_by_test_id("step-card")).to_have_count(len(original.steps))
    page.get_by_test_id("stSidebar").get_by_text(f"{ME} · admin").wait_for()  # local mode: the OS user
    main.get_by_text("Edit the whole trajectory").click()
    settle(page)
    commit(main.locator("textarea").first, "Edited in the browser: check the film's director first.")
    settle(page)
    live = main.locator('[data-testid="stElementContainer"]:not([data-stale="true"])')  # not a leftover of the last run
    commit(live.get_by_label("Final answer (the argument of the finish action)"), original.gold)
    settle(page)
    expect(live.get_by_label("Action — tool[argument]").last).to_have_value(f"finish[{original.gold}]")
    expect(live.locator("textarea").first).to_have_value("Edited in the browser: check the film's director first.")
    main.get_by_role("button", name="Save").first.click()
    main.get_by_text("Saved revision 1").wait_for()
    saved = store.get_trajectory(first)
    assert saved.steps[0].thought.startswith("Edited in the browser") and saved.final_answer == original.gold
    assert saved.em == 1.0 and saved.updated_by == ME

    page.reload()
    wait_for_app(page)
    main.get_by_text(f"revision 1 by {ME}").first.wait_for()
    expect(main.get_by_test_id("step-card").first).to_contain_text("Edited in the browser")
    main.get_by_test_id("stExpander").get_by_text("History", exact=True).click()
    main.get_by_text(re.compile(rf"Revision 1 · {re.escape(ME)}")).wait_for()
    settle(page)  # the run that opened the History is over: Restore is a button of the finished page
    screenshot(page, "curation-trajectory")
    main.get_by_role("button", name="Restore revision 0").click()
    main.get_by_text("Restored revision 0 as a new revision.").wait_for()
    settle(page)
    expect(main.get_by_test_id("step-card").first).to_contain_text(original.steps[0].thought or "")
    restored = store.get_trajectory(first)
    assert restored.revision == 2 and restored.steps == original.steps and restored.final_answer == original.final_answer


def test_compare_aligned_steps_and_model_text_shown_as_text(app, page):
    base, store = app
    counts = store.compare_counts(RUN_A, RUN_B)
    page.goto(f"{base}/Compare?a={RUN_A}&b={RUN_B}")
    wait_for_app(page)
    main = page.get_by_test_id("stMain")
    main.get_by_role("button", name=f"only B right: {counts['only_b']}").click()
    page.wait_for_url(re.compile(r".*cell=only_b"))
    main.get_by_text(f"{counts['only_b']} questions (only B right)").wait_for()
    settle(page)
    rows = main.locator('.fireact-compare [data-testid="aligned-step"]')
    expect(rows.nth(1)).to_be_attached()
    expect(main.locator(".fireact-compare [data-testid=step-card]").nth(3)).to_be_visible()
    expect(main.locator(".fireact-compare mark").first).to_be_attached()
    main.locator(".fireact-compare").scroll_into_view_if_needed()
    screenshot(page, "curation-compare")
    script_html_and_markdown_image_render_as_text(base, page)


def script_html_and_markdown_image_render_as_text(base: str, page) -> None:
    dialogs: list[str] = []
    page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
    for path, name in ((f"Trajectory?id={XSS_ID}", "curation-xss-trajectory"), (f"Review?ids={XSS_ID}", "curation-review"),
                       (f"Compare?a={RUN_A}&b={RUN_B}&cell=only_in_b", "curation-xss-compare")):
        page.goto(f"{base}/{path}")
        wait_for_app(page)
        page.get_by_test_id("stMain").locator("[data-testid=stText], [data-testid=trajectory-header]").filter(
            has_text=XSS_QUESTION).first.wait_for()
        if not path.startswith("Compare"):
            page.get_by_test_id("step-card").filter(has_text="window.__xss").first.wait_for()
        page.wait_for_function("() => !document.querySelector('[data-testid=\"stSkeleton\"]')")
        if path.startswith("Compare"):
            page.locator(".fireact-compare").scroll_into_view_if_needed()
        wait_for_app(page)
        page.evaluate("() => document.fonts.ready.then(() => new Promise(r => requestAnimationFrame(() => r(null))))")
        screenshot(page, name)
        assert page.evaluate("() => window.__xss") is None
        assert page.locator('img[src*="127.0.0.1:9"]').count() == 0
        assert page.locator("b", has_text="bold").count() == 0
    assert dialogs == []
    page.goto(f"{base}/Review?ids={XSS_ID}")
    wait_for_app(page)
    expect(page.get_by_test_id("stMain").get_by_text(XSS).first).to_be_visible()
    assert page.locator("script", has_text="__xss").count() == 0
