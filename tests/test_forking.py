"""Forks end to end: a trajectory generated against the stand-in OpenAI server, continued from a step (the
request the server receives holds the kept steps exactly), repaired, and refused on the command line."""

from __future__ import annotations

from pathlib import Path

import pytest

from fireact_core.cli import main
from fireact_core.curation.edits import save_trajectory_edit
from fireact_core.generation.engine import RunConfig, run_generation
from fireact_core.filters import TrajectoryFilter
from fireact_core.generation.forking import continue_trajectory, family, make_jobs, repair, run_forks
from fireact_core.records import Action, Step
from fireact_core.generation.tasks import get_task
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serpapi_server import FakeSerpAPI

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"
FAST = {"concurrency": 2, "backoff_s": 0.01, "timeout_s": 5.0, "poll_s": 0.1}


@pytest.fixture
def llm(monkeypatch):
    monkeypatch.setenv("FIREACT_SERPAPI_URL", (serp := FakeSerpAPI({})).start())
    monkeypatch.setenv("SERPAPI_API_KEY", "serp-test-0123456789")
    server = FakeOpenAI()
    monkeypatch.setenv("OPENAI_BASE_URL", server.start())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
    yield server
    server.stop()
    serp.stop()


def questions(n: int):
    return get_task("hotpotqa").load(TASKS, "dev")[:n]


def generate(store, name: str, end: int = 1, **kw):
    cfg = RunConfig(run=name, task="hotpotqa", split="dev", tasks_dir=str(TASKS), end=end, **FAST, **kw)
    run_generation(store, cfg)
    return list(store.iter_trajectories(source=name))


def turns(question: str, answer: str) -> list[str]:
    return ["Thought: I should search.\nAction: search[first query]",
            "Thought: Search again.\nAction: search[second query]",
            f"Thought: So it is {answer}.\nAction: finish[{answer}]"]


def by_turns(replies: list[str]):
    """A stand-in policy for text layouts (the whole prompt is one message): the reply after as many
    observations as the response holds."""
    def policy(question: str, messages: list[dict], reflect: bool) -> str:
        done = messages[-1]["content"].split("### Response:")[-1].count("Observation: ")
        return replies[min(done, len(replies) - 1)]
    return policy


def edit_step_2(store, traj):
    """Step 2 rewritten as a curator would: another thought and query, and the observation they got."""
    steps = list(traj.steps)
    steps[1] = Step(thought="Search the birthplace instead.", action=Action(raw="search[birthplace]", name="search",
                                                                           arg="birthplace"),
                    observation="She was born in Bamburgh.")
    return save_trajectory_edit(store, traj.model_copy(update={"steps": steps}), base_revision=traj.revision,
                                author="tester", reason="better query")


def first_request_after(server: FakeOpenAI, before: int) -> list[dict]:
    return server.requests[before]["messages"]


def test_continue_keeps_the_edited_prefix_in_the_studio_layout(store, llm):
    [q] = questions(1)
    llm.script = {q.question: turns(q.question, "wrong answer")}
    [parent] = generate(store, "parent")
    parent = edit_step_2(store, parent)
    llm.script = {q.question: turns(q.question, "wrong answer")[:2] + [f"Thought: Got it.\nAction: finish[{q.answer}]"]}
    before = llm.calls
    run = continue_trajectory(store, parent.id, 2, n=2, run="fork", overrides=FAST)
    sent = first_request_after(llm, before)
    assert sent[0]["role"] == "system" and sent[1] == {"role": "user", "content": q.question}
    assert sent[2:] == [
        {"role": "assistant", "content": "Thought: I should search.\nAction: search[first query]"},
        {"role": "user", "content": f"Observation: {parent.steps[0].observation}"},
        {"role": "assistant", "content": "Thought: Search the birthplace instead.\nAction: search[birthplace]"},
        {"role": "user", "content": "Observation: She was born in Bamburgh."},
    ]
    assert run.attempted == 2 and run.finished == 2
    links = store.fork_children(parent.id)
    assert len(links) == 2 and {x.fork_step for x in links} == {2} and {x.parent_revision for x in links} == {1}
    for link in links:
        child = store.get_trajectory(link.child_id)
        assert child.steps[:2] == parent.steps[:2] and child.steps[2].action.arg == q.answer
        assert child.em == 1.0 and child.qid == parent.qid and child.meta["fork"]["parent_id"] == parent.id
        assert store.fork_parent(child.id).parent_id == parent.id
        assert "failed" not in {x.kind for x in store.lints_of(child.id)}
    got_parent, children = family(store, links[0].child_id)
    assert got_parent.id == parent.id and len(children) == 2


@pytest.mark.parametrize("fmt", ["chat", "alpaca"])
def test_continue_keeps_the_prefix_in_the_finetuned_layout(store, llm, fmt):
    [q] = questions(1)
    llm.script = {q.question: turns(q.question, "wrong answer")}
    llm.policy = by_turns(turns(q.question, "wrong answer"))
    [parent] = generate(store, f"ft-{fmt}", mode="finetuned", finetuned_format=fmt)
    assert parent.meta["mode"] == "finetuned" and len(parent.steps) == 3
    before = llm.calls
    continue_trajectory(store, parent.id, 1, run=f"fork-{fmt}", overrides=FAST)
    sent = first_request_after(llm, before)
    obs = parent.steps[0].observation
    if fmt == "chat":
        assert sent == [{"role": "user", "content": q.question},
                        {"role": "assistant", "content": "Thought: I should search.\nAction: search[first query]"},
                        {"role": "user", "content": f"Observation: {obs}"}]
    else:
        [message] = sent
        assert message["content"].endswith(f"### Response:\nThought: I should search.\nAction: search[first query]\n"
                                           f"Observation: {obs}\nThought:")
    [link] = store.fork_children(parent.id)
    child = store.get_trajectory(link.child_id)
    assert child.meta["mode"] == "finetuned" and child.steps[0] == parent.steps[0]


def test_a_kept_step_without_an_observation_is_run_first(store, llm):
    [q] = questions(1)
    llm.script = {q.question: turns(q.question, q.answer)}
    [parent] = generate(store, "p")
    draft = parent.model_copy(update={"steps": [parent.steps[0].model_copy(update={
        "action": Action(raw="search[new query]", name="search", arg="new query"), "observation": None})]})
    jobs = make_jobs(store, [(draft, 1)], 1, "draft-fork", FAST, drafts={parent.id})
    run_forks(store, jobs)
    [link] = store.fork_children(parent.id)
    child = store.get_trajectory(link.child_id)
    assert child.steps[0].observation == "A page about new query." and child.meta["fork"]["from_draft"] is True


def test_repair_keeps_only_continuations_that_score_right(store, llm):
    qs = questions(3)
    llm.script = {q.question: turns(q.question, "wrong answer") for q in qs}
    parents = generate(store, "bad", end=3)
    assert all(p.em == 0.0 for p in parents)
    # the stand-in now answers right for the first two questions, wrong for the third
    llm.script = {q.question: turns(q.question, q.answer if i < 2 else "still wrong") for i, q in enumerate(qs)}
    run = repair(store, TrajectoryFilter(source=["bad"]), n=2, run="fix", overrides=FAST)
    kept = list(store.iter_trajectories(source="fix"))
    assert len(kept) == 4 and all(t.em == 1.0 for t in kept)
    assert {t.qid for t in kept} == {qs[0].qid, qs[1].qid}
    for t in kept:
        assert store.review_state(t.id).labels == ["repaired"]
        link = store.fork_parent(t.id)
        assert link.kind == "repair" and link.fork_step == 2  # continued from the step before the wrong finish
    assert store.get_source("fix").meta["repair"] == {"tried": 6, "kept": 4}
    assert any(e.kind == "repair" and "6 continuations tried, 4 kept" in e.message
               for e in store.run_events("fix"))
    assert run.status == "finished"


def test_repair_from_a_chosen_rule(store, llm):
    [q] = questions(1)
    llm.script = {q.question: ["Thought: x\nAction: search[q]", "Thought: y\nAction: finish[]"]}
    [parent] = generate(store, "empty")
    assert "empty_finish" in {x.kind for x in store.lints_of(parent.id)}
    llm.script = {q.question: ["Thought: x\nAction: search[q]", f"Thought: y\nAction: finish[{q.answer}]"]}
    repair(store, TrajectoryFilter(source=["empty"]), rule="empty_finish", run="fix2", overrides=FAST)
    [link] = store.fork_children(parent.id)
    assert link.fork_step == 1


def test_cli_refuses_a_bad_id_and_a_step_out_of_range(store, llm, capsys, tmp_path):
    [q] = questions(1)
    llm.script = {q.question: turns(q.question, q.answer)}
    [parent] = generate(store, "p")
    db = ["--db", str(store.path)]

    def state():
        return store.count_trajectories(), len(store.list_runs()), store.fork_links()

    before = state()
    assert main([*db, "continue", "nope", "--from-step", "1"]) == 2
    assert "no trajectory with id nope" in capsys.readouterr().err
    for k in ("4", "-1"):
        assert main([*db, "continue", parent.id, "--from-step", k]) == 2
        assert "out of range: it has 3 steps" in capsys.readouterr().err
    assert main([*db, "continue", parent.id, "--from-step", "3"]) == 2
    assert "finishes the episode" in capsys.readouterr().err
    assert main([*db, "repair", "--source", "p"]) == 2  # right already: nothing to repair
    assert "nothing to repair" in capsys.readouterr().err
    assert state() == before
    assert main([*db, "continue", parent.id, "--from-step", "1", "--n", "2", "--run", "c", "--timeout", "5",
                 "--quiet"]) == 0
    out = capsys.readouterr().out
    assert "run 'c': 2 continuations stored" in out and out.count(f"from {parent.id} step 1") == 2


def test_continue_with_a_local_model(store, llm, tiny_model_dir):
    [q] = questions(1)
    llm.policy = by_turns(turns(q.question, "wrong answer"))
    [parent] = generate(store, "ft", mode="finetuned", finetuned_format="alpaca")
    overrides = {"local_model": str(tiny_model_dir), "search": "local", "max_tokens": 12, "max_steps": 2,
                 "temperature": 0.7}
    run = continue_trajectory(store, parent.id, 1, n=2, run="local-fork", overrides=overrides)
    assert run.attempted == 2
    for link in store.fork_children(parent.id):
        child = store.get_trajectory(link.child_id)
        assert child.steps[0] == parent.steps[0] and len(child.steps) >= 2
        assert child.model == Path(tiny_model_dir).name and child.meta["backend"] == "local"
        assert child.meta["mode"] == "finetuned" and child.meta["calls"] and child.tokens_in > 0


def test_links_travel_with_a_native_export(store, llm, tmp_path):
    [q] = questions(1)
    llm.script = {q.question: turns(q.question, "wrong answer")}
    [parent] = generate(store, "p")
    continue_trajectory(store, parent.id, 1, n=2, run="c", overrides=FAST)
    out = tmp_path / "all.jsonl"
    assert main(["--db", str(store.path), "export", "--format", "native", "--out", str(out)]) == 0
    other = tmp_path / "other.duckdb"
    assert main(["--db", str(other), "import", str(out)]) == 0
    from fireact_core.store import Store

    again = Store(other)
    assert [(x.child_id, x.parent_id, x.fork_step, x.kind, x.run) for x in again.fork_links()] == \
        [(x.child_id, x.parent_id, x.fork_step, x.kind, x.run) for x in store.fork_links()]


def test_a_trajectory_of_fireacts_own_run_is_continued_in_its_layout(store, llm, shared):
    """FireAct's Llama-2 run (fine-tuned, Alpaca layout): the continuation's request is the run file's own text
    up to the end of step K, then "Thought:", as FireAct's generation.py would have sent it."""
    import json

    from fireact_core.io.importer import import_files
    from tests.conftest import RUN_FILE

    import_files(store, [RUN_FILE])
    source = RUN_FILE.stem
    [tid] = store.filter_ids(TrajectoryFilter(source=[source], steps_min=3, em="wrong"), limit=1)
    parent = store.get_trajectory(tid)
    raw = json.loads(RUN_FILE.read_text())[parent.qid]["traj"]
    cuts = [i for i in range(len(raw)) if raw.startswith("\nThought: ", i)]
    before = llm.calls
    continue_trajectory(store, tid, 2, run="fork-fireact", overrides={**FAST, "model": "ft-llama"})
    sent = first_request_after(llm, before)
    assert sent == [{"role": "user", "content": raw[:cuts[2] + 1] + "Thought:"}]
    [link] = store.fork_children(tid)
    child = store.get_trajectory(link.child_id)
    assert child.steps[:2] == parent.steps[:2] and child.meta["mode"] == "finetuned" and child.model == "ft-llama"


def test_a_fork_pairs_the_kept_steps_then_aligns_the_rest():
    from fireact_core.curation.compare import align_fork, align_steps

    def step(name: str, thought: str = "t") -> Step:
        return Step(thought=thought, action=Action(raw=f"{name}[x]", name=name, arg="x"), observation="o")

    parent = [step("search"), step("search"), step("finish")]
    child = [step("search"), step("finish", "edited into a finish"), step("search"), step("finish")]
    assert align_fork(parent, child, 2) == [(0, 0), (1, 1), (None, 2), (2, 3)]
    assert align_fork(parent, child, 0) == align_steps(parent, child)  # nothing kept: aligned by kind alone
