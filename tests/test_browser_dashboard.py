"""The dashboard in real Chromium: open it, read the runs table, click a bar and land in Browse on the
trajectories behind it."""

from __future__ import annotations

from urllib.parse import parse_qsl, urlparse

import pytest
from playwright.sync_api import expect

from fireact_core.filters import TrajectoryFilter
from fireact_core.store import Store
from tests.conftest import screenshot, wait_for_app
from tests.helpers.runs import make_run

pytestmark = pytest.mark.timeout(300)
WAIT = 90_000  # ms: the test machine may be busy


@pytest.fixture
def dashboard_db(tmp_path):
    store = Store(tmp_path / "dash.duckdb")
    make_run(store, "gpt4-react", [1.0] * 60 + [0.0] * 40, model="gpt-4", method="react")
    make_run(store, "gpt4-react-none", [1.0] * 35 + [0.0] * 65, model="gpt-4", method="react", perturb="none",
             meta={"perturb": "none:0.5"})
    make_run(store, "llama-cot", [1.0] * 20 + [0.0] * 80, model="llama-2-7b", method="cot",
             status=["finished"] * 90 + ["failed"] * 10, attempted=110)
    return store.path


def test_dashboard_click_through_to_trajectories(streamlit_app, page, dashboard_db):
    base = streamlit_app(dashboard_db)
    page.goto(f"{base}/Dashboard")
    wait_for_app(page, timeout=WAIT)
    page.get_by_text("Evaluation dashboard").first.wait_for(timeout=WAIT)
    page.locator('[data-testid="fa-pick-table"]').first.wait_for(timeout=WAIT)
    screenshot(page, "dashboard")
    with page.expect_download(timeout=WAIT) as download:  # the runs table's CSV, written when clicked
        page.get_by_role("button", name="CSV", exact=True).first.click()
    csv = open(download.value.path(), encoding="utf-8").read().splitlines()
    assert csv[0].startswith("run,em_attempted,") and len(csv) == 4
    assert sorted(line.rsplit(",", 1)[1] for line in csv[1:]) == ["gpt4-react", "gpt4-react-none", "llama-cot"]

    # a cell of the runs table opens Browse on the trajectories behind it, and the way back shows the Dashboard
    runs = page.get_by_test_id("fa-pick-table").first
    heads = runs.locator("th").all_text_contents()
    row = runs.get_by_test_id("fa-pick-row").filter(has_text="llama-cot")
    expect(row.locator("td").nth(heads.index("run"))).to_have_attribute("title", "llama-cot")  # full name on hover
    row.locator("td").nth(heads.index("failed")).click()
    page.wait_for_url("**/Browse?**", timeout=WAIT)
    params = dict(parse_qsl(urlparse(page.url).query))
    assert TrajectoryFilter.from_query(params) == TrajectoryFilter(source=["llama-cot"], status="failed")
    page.get_by_text("10 trajectories match").wait_for(timeout=WAIT)
    page.go_back()
    page.get_by_text("Evaluation dashboard").first.wait_for(timeout=WAIT)
    page.locator('[data-testid="fa-pick-table"]').first.wait_for(timeout=WAIT)
    wait_for_app(page, timeout=WAIT)
    assert "/Dashboard" in page.url

    page.get_by_role("tab", name="Robustness").click()
    page.get_by_text("Clean versus perturbed search").first.wait_for(timeout=WAIT)
    screenshot(page, "dashboard-robustness")

    page.get_by_role("tab", name="Models & methods").click()
    chart = page.get_by_role("tabpanel", name="Models & methods").locator(".js-plotly-plot").first
    bars = chart.locator(".barlayer .point path")
    bars.first.wait_for(state="visible", timeout=WAIT)
    assert bars.count() == 2  # gpt-4 x react, llama-2-7b x cot
    screenshot(page, "dashboard-models")
    # The second trace is react, whose one bar is gpt-4's two runs. Plotly's drag layer takes the pointer,
    # so click where the bar is drawn rather than on its element.
    box = bars.nth(1).bounding_box()
    page.mouse.click(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)

    page.wait_for_url("**/Browse?**", timeout=WAIT)
    wait_for_app(page, timeout=WAIT)
    params = dict(parse_qsl(urlparse(page.url).query))
    assert TrajectoryFilter.from_query(params) == TrajectoryFilter(source=["gpt4-react", "gpt4-react-none"])
    page.get_by_text("200 trajectories match").wait_for(timeout=WAIT)
    screenshot(page, "dashboard-drilldown-browse")
