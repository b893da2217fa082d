"""The fork journey in real Chromium against `streamlit run serve.py` on 127.0.0.1, the model a stand-in server:
edit step 2 of a generated trajectory, continue from it (the draft, unsaved), and open the continuation beside
its parent in Compare."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from fireact_core.generation.engine import RunConfig, run_generation
from fireact_core.store import Store
from fireact_core.generation.tasks import get_task
from tests.conftest import screenshot, settle, wait_for_app
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serpapi_server import FakeSerpAPI

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"
EDITED = "Look up where she was born instead."
expect.set_options(timeout=30_000)


@pytest.fixture
def app(monkeypatch, tmp_path, streamlit_app):
    llm, serp = FakeOpenAI(), FakeSerpAPI()
    monkeypatch.setenv("OPENAI_BASE_URL", llm.start())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-browser-env-key")
    monkeypatch.setenv("FIREACT_SERPAPI_URL", serp.start())
    monkeypatch.setenv("SERPAPI_API_KEY", "serp-browser-env-key")
    q = get_task("hotpotqa").load(TASKS, "dev")[0]
    llm.script = {q.question: ["Thought: Search.\nAction: search[one]", "Thought: Again.\nAction: search[two]",
                               "Thought: Done.\nAction: finish[wrong answer]"]}
    path = tmp_path / "fork.duckdb"
    store = Store(path)
    run_generation(store, RunConfig(run="parent", task="hotpotqa", split="dev", tasks_dir=str(TASKS), end=1,
                                    concurrency=2, backoff_s=0.01, timeout_s=5.0, poll_s=0.1))
    [parent] = store.iter_trajectories(source="parent")
    llm.script = {q.question: [*llm.script[q.question][:2], f"Thought: Now I know.\nAction: finish[{q.answer}]"]}
    yield streamlit_app(path), Store(path, lock_timeout=120), parent
    llm.stop()
    serp.stop()


def test_edit_step_2_continue_and_open_the_child_in_compare(app, page):
    base, store, parent = app
    page.goto(f"{base}/Trajectory?id={parent.id}")
    wait_for_app(page)
    main = page.get_by_test_id("stMain")
    expect(main.get_by_test_id("step-card")).to_have_count(3)
    main.get_by_role("button", name="step 2", exact=True).click()
    thought = main.get_by_label("Thought")
    thought.fill(EDITED)
    thought.press("Control+Enter")
    settle(page)
    expect(main.get_by_text("Unsaved edits: they stay here")).to_be_visible()

    main.get_by_text("Continue from a step").click()
    main.get_by_test_id("stSelectbox").filter(has_text="Keep steps 1..K").locator("input").click()
    page.get_by_role("option", name="K = 2").click()
    settle(page)
    screenshot(page, "fork-continue-form")
    main.get_by_role("button", name="Continue", exact=True).click()
    compare = main.get_by_role("link", name="Compare this trajectory with its continuations")
    compare.wait_for(timeout=60_000)
    [link] = store.fork_children(parent.id)
    child = store.get_trajectory(link.child_id)
    assert (link.fork_step, link.parent_revision) == (2, 0) and child.meta["fork"]["from_draft"] is True
    assert child.steps[1].thought == EDITED and child.steps[0] == parent.steps[0] and child.em == 1.0
    assert store.get_trajectory(parent.id).revision == 0  # the draft stays a draft

    compare.click()
    page.wait_for_url(re.compile(r".*/Compare\?family=" + parent.id))
    settle(page)
    main.get_by_role("heading", name="Compare a trajectory with its continuations").wait_for()
    expect(main.get_by_text("Steps 1..2 are shared")).to_be_visible()
    expect(main.get_by_test_id("aligned-step")).to_have_count(3)
    expect(main.get_by_text(f"Continuation {child.id}")).to_be_visible()
    expect(main.get_by_test_id("aligned-step").nth(1)).to_contain_text(EDITED)
    screenshot(page, "fork-compare")
