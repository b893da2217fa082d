"""The Mix page in real Chromium against `streamlit run serve.py`: move a task slider and see the preview follow."""

from __future__ import annotations

import re

import pytest

from fireact_core.store import Store
from tests.conftest import screenshot, wait_for_app


@pytest.fixture
def app(tmp_path, shared, streamlit_app):
    from fireact_core.io.importer import import_files

    path = tmp_path / "browser-mix.duckdb"
    import_files(Store(path), [shared / "finetune" / "gpt_multitask.jsonl"],
                 eval_splits=[shared / "tasks" / "strategyqa" / "dev.json"])
    return streamlit_app(path)


def composition(page) -> str:
    return page.get_by_test_id("stMain").locator("p").filter(has_text=re.compile(r"^Composition")).first.inner_text()


def test_moving_a_slider_changes_the_preview(app, page):
    page.goto(f"{app}/Mix")
    wait_for_app(page)
    main = page.get_by_test_id("stMain")
    main.locator("p").filter(has_text=re.compile(r"^Composition")).first.wait_for()
    before = composition(page)
    assert "hotpotqa/react" in before
    slider = main.get_by_test_id("stSlider").filter(has_text="hotpotqa").get_by_role("slider")
    slider.focus()
    slider.press("Home")
    page.wait_for_function(
        "() => { const el = [...document.querySelectorAll('[data-testid=stMain] p')]"
        ".find(p => p.innerText.startsWith('Composition')); return el && !el.innerText.includes('hotpotqa/'); }",
        timeout=30000,
    )
    wait_for_app(page)
    after = composition(page)
    assert after != before and "hotpotqa/" not in after and "strategyqa/react" in after
    assert slider.input_value() == "0"
    screenshot(page, "mix")


def test_a_filter_touched_after_other_reruns_keeps_the_defaults_the_page_set(app, page):
    """The page sets some filters itself (exclude evaluation questions, dedupe). After a rerun from another
    field, ticking one more filter must not send the others back unticked."""
    from playwright.sync_api import expect

    from tests.conftest import settle

    page.goto(f"{app}/Mix")
    wait_for_app(page)
    sidebar = page.get_by_test_id("stSidebar")
    page.get_by_test_id("stMain").locator("p").filter(has_text=re.compile(r"^Composition")).first.wait_for()
    size = sidebar.get_by_label("Total size")
    size.fill("300")
    size.press("Enter")
    settle(page)
    expect(sidebar.get_by_text("Only correct (EM)")).to_have_count(0)  # the Filters panel is drawn when opened
    sidebar.get_by_text("Filters", exact=True).click()
    sidebar.get_by_text("Only correct (EM)").click()
    settle(page)
    for label in ("Only correct (EM)", "Exclude questions in evaluation splits", "Dedupe by question"):
        expect(sidebar.get_by_role("checkbox", name=label)).to_be_checked()
    sidebar.get_by_text("Filters", exact=True).click()  # closed: what it holds still applies and is named
    expect(sidebar.get_by_text("Only correct (EM)")).to_have_count(0)
    expect(sidebar.get_by_text(re.compile(r"^Filters: only correct, no evaluation questions, one per question"))
           ).to_be_visible()
    size.fill("250")
    size.press("Enter")
    settle(page)
    sidebar.get_by_text("Filters", exact=True).click()
    for label in ("Only correct (EM)", "Exclude questions in evaluation splits", "Dedupe by question"):
        expect(sidebar.get_by_role("checkbox", name=label)).to_be_checked()
