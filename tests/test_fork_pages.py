"""Forks in the app under AppTest: continue from a step on the Trajectory page (in the background, against the
stand-in model server), the children listed, Compare's family view, and Browse's repair action."""

from __future__ import annotations

import html
from pathlib import Path

import pytest

from fireact_core.generation.engine import RunConfig, run_generation
from fireact_core.store import Store
from fireact_core.generation.tasks import get_task
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serpapi_server import FakeSerpAPI
from tests.helpers import wait_until
from tests.helpers.pages import ok, open_page

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"


@pytest.fixture
def env(monkeypatch, tmp_path):
    llm, serp = FakeOpenAI(), FakeSerpAPI()
    monkeypatch.setenv("OPENAI_BASE_URL", llm.start())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-page-env-key")
    monkeypatch.setenv("FIREACT_SERPAPI_URL", serp.start())
    monkeypatch.setenv("SERPAPI_API_KEY", "serp-page-env-key")
    db = tmp_path / "fork.duckdb"
    monkeypatch.setenv("FIREACT_DB", str(db))
    q = get_task("hotpotqa").load(TASKS, "dev")[0]
    llm.script = {q.question: ["Thought: Search.\nAction: search[one]", "Thought: Again.\nAction: search[two]",
                               "Thought: Done.\nAction: finish[wrong answer]"]}
    store = Store(db)
    run_generation(store, RunConfig(run="parent", task="hotpotqa", split="dev", tasks_dir=str(TASKS), end=1,
                                    concurrency=2, backoff_s=0.01, timeout_s=5.0, poll_s=0.1))
    [parent] = store.iter_trajectories(source="parent")
    llm.script = {q.question: [*llm.script[q.question][:2], f"Thought: Now I know.\nAction: finish[{q.answer}]"]}
    yield store, parent
    llm.stop()
    serp.stop()


def wait_ended(store: Store, name: str, timeout: float = 60.0) -> dict:
    return wait_until(lambda: (run := store.get_run(name)).status != "running" and run, timeout,
                      f"run {name} to end")


def test_trajectory_page_continues_from_a_step_and_lists_the_children(env):
    store, parent = env
    at = ok(open_page("2_Trajectory.py", id=parent.id))
    key = f"fork:{parent.id}"
    assert f"{key}:k" not in [w.key for w in at.selectbox]  # closed, the panel's form is not drawn
    at.session_state[f"{key}:open"] = True  # open the panel: its form is drawn only then
    ok(at.run())
    at.selectbox(key=f"{key}:k").set_value(2)
    at.number_input(key=f"{key}:n").set_value(2)
    at.text_input(key=f"{key}:runname").input("from-page")
    ok(next(b for b in at.button if b.label == "Continue").click().run())
    run = wait_ended(store, "from-page")
    assert run.status == "finished" and run.attempted == 2
    links = store.fork_children(parent.id)
    assert len(links) == 2 and all(x.fork_step == 2 and x.run == "from-page" for x in links)
    at = ok(open_page("2_Trajectory.py", id=parent.id))
    labels = [p.proto.label for p in at.get("page_link")]
    assert all(any(x.child_id in label for label in labels) for x in links)
    assert "Compare this trajectory with its continuations" in labels
    child = ok(open_page("2_Trajectory.py", id=links[0].child_id))
    assert any(f"Continued from {parent.id} after step 2" in p.proto.label for p in child.get("page_link"))

    cmp = ok(open_page("4_Compare.py", family=links[0].child_id))
    assert cmp.title[0].value == "Compare a trajectory with its continuations"
    body = "\n".join(html.unescape(h.proto.body) for h in cmp.get("html"))
    assert f"Parent {parent.id}" in body and f"Continuation {links[0].child_id}" in body
    assert body.count('data-testid="aligned-step"') == 3
    assert any("Steps 1..2 are shared" in c.value for c in cmp.caption)


def test_browse_repairs_the_wrong_trajectories_of_its_filter(env):
    store, parent = env
    at = ok(open_page("1_Browse.py", source="parent"))
    at.number_input(key="repair:n").set_value(2)
    ok(next(b for b in at.button if b.label == "Repair").click().run())
    link_run = at.session_state["repair:run"]
    run = wait_ended(store, link_run)
    assert run.status == "finished"
    kept = list(store.iter_trajectories(source=link_run))
    assert len(kept) == 2 and all(t.em == 1.0 for t in kept)
    assert all(store.review_state(t.id).labels == ["repaired"] for t in kept)
    assert store.get_source(link_run).meta["repair"] == {"tried": 2, "kept": 2}
