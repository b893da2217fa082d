"""Run files written by FireAct's own generation.py, in each of its modes (few-shot text, fine-tuned chat,
fine-tuned Alpaca), indented as it writes them and on one line: each imports with the question, gold answer,
prediction, EM and F1 of the file, the right number of steps and no spurious lint; `export --format fireact-run`
writes them back in FireAct's layout and reads back to the same trajectories."""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from fireact_core.cli import main
from fireact_core.io.exporter import export
from fireact_core.io.importer import import_files
from fireact_core.store import Store

from .fakes.openai_server import FakeOpenAI
from .fakes.serpapi_server import FakeSerpAPI

MODES = {
    "fewshot": ["--promptpath", "default"],
    "chat": ["--promptpath", "", "--chatgpt_format"],
    "alpaca": ["--promptpath", "", "--alpaca_format"],
}
QUESTIONS = 5
# question index -> (searches before answering, right answer or not)
PLAN = {0: (1, True), 1: (2, True), 2: (0, True), 3: (1, False), 4: (2, False)}


def _questions(shared) -> list[tuple[str, str]]:
    rows = json.loads((shared / "tasks" / "hotpotqa" / "dev.json").read_text())[:QUESTIONS]
    return [(r["question"], r["answer"]) for r in rows]


def _policy(questions):
    """A model whose answers are ReAct steps: for question i, PLAN[i][0] searches, then an answer."""

    def reply(first_user: str, messages: list[dict], reflect: bool) -> str:
        i = next((k for k, (q, _) in enumerate(questions) if q in first_user), None)
        if i is None:
            return "Thought: I do not know this question.\nAction: finish[unknown]"
        question, answer = questions[i]
        chat = messages[0]["content"] == question
        done = (sum(m["role"] == "assistant" for m in messages) if chat
                else first_user[first_user.rindex(question):].count("\nAction: "))
        searches, right = PLAN[i]
        if done < searches:
            text = f"Thought: I need to search clue {done} of this.\nAction: search[{question[:30]} {done}]"
        else:
            given = answer if right else "Nowhere"
            text = f"Thought: So the answer is {given}.\nAction: finish[{given}]"
        return text if chat else text.removeprefix("Thought:")  # text modes send the prompt ending "Thought:"

    return reply


@pytest.fixture(scope="module")
def fireact_runs(fireact_reference, shared, tmp_path_factory):
    """{mode: (indented run file, one-line copy)} made by FireAct's generation.py against the stand-in servers."""
    python, runner = fireact_reference
    questions = _questions(shared)
    model, serp = FakeOpenAI(policy=_policy(questions)), FakeSerpAPI()
    model_url, serp_url = model.start(), serp.start()
    env = {**os.environ, "OPENAI_API_KEY": "x", "SERPAPI_API_KEY": "x"}
    runs = {}
    try:
        for mode, flags in MODES.items():
            work = tmp_path_factory.mktemp(f"fireact-{mode}")
            subprocess.run([str(python), str(runner), "--model-url", model_url, "--serp-url", serp_url,
                            "--workdir", str(work), "--", "--task", "hotpotqa", "--task_split", "dev",
                            "--task_start_index", "0", "--task_end_index", str(QUESTIONS), "--backend",
                            "gpt-3.5-turbo", "--evaluate", "--temperature", "0", *flags],
                           env=env, check=True, capture_output=True, timeout=300)
            [path] = (work / "trajs").glob("*.json")
            one_line = tmp_path_factory.mktemp(f"one-line-{mode}") / path.name
            one_line.write_text(json.dumps(json.loads(path.read_text())))
            runs[mode] = (path, one_line)
    finally:
        model.stop()
        serp.stop()
    return runs


@pytest.mark.parametrize("layout", ["indented", "one_line"])
@pytest.mark.parametrize("mode", list(MODES))
def test_generation_output_imports_right(fireact_runs, shared, tmp_path, mode, layout):
    path = fireact_runs[mode][layout == "one_line"]
    data = json.loads(path.read_text())
    store = Store(tmp_path / "run.duckdb")
    [report] = import_files(store, [path], parallel=False)
    assert report.format == "fireact-run" and report.rows == report.added == QUESTIONS
    assert set(report.lints) <= {"failed"}
    assert report.lints.get("failed") == sum(not right for _, right in PLAN.values())
    questions = _questions(shared)
    trajs = {t.qid: t for t in store.iter_trajectories()}
    assert set(trajs) == {str(i) for i in range(QUESTIONS)}
    for key, entry in data.items():
        t = trajs[key]
        searches, right = PLAN[int(key)]
        assert t.question == questions[int(key)][0]
        assert (t.gold, t.meta["pred"], t.em, t.f1, t.reward) == (entry["gt"], entry["pred"], float(entry["em"]),
                                                                   entry["f1"], entry["reward"])
        assert t.em == float(right) and t.task == "hotpotqa" and t.method == ("react" if searches else "cot")
        assert len(t.steps) == searches + 1 and not any(s.raw or s.flags.parse_error for s in t.steps)
        assert t.steps[-1].action.name == "finish" and t.steps[-1].observation.startswith("Episode finished")
    source = store.get_source(report.source)
    assert (source.task, source.split, source.model, source.attempted) == ("hotpotqa", "dev", "gpt-3.5-turbo",
                                                                            QUESTIONS)


FIELDS = ("qid", "question", "gold", "final_answer", "reward", "em", "f1", "task", "split", "model", "method", "status",
          "steps")


@pytest.mark.parametrize("mode", list(MODES))
def test_fireact_run_export_reads_back_the_same(fireact_runs, tmp_path, mode):
    path = fireact_runs[mode][0]
    first = tmp_path / "first.duckdb"
    assert main(["--db", str(first), "import", str(path)]) == 0
    folder = tmp_path / "out"
    folder.mkdir()
    assert main(["--db", str(first), "export", "--format", "fireact-run", "--out", str(folder)]) == 0
    [written] = folder.iterdir()
    assert written.name == path.name  # generation.py's file name, from the run's source record
    data, original = json.loads(written.read_text()), json.loads(path.read_text())
    assert list(data) == list(original)
    for key, entry in data.items():
        assert list(entry) == list(original[key]) and entry["traj"] == original[key]["traj"]
        assert entry["prompt"] == original[key]["prompt"]
    again = Store(tmp_path / "again.duckdb")
    import_files(again, [written], parallel=False)
    before = {t.qid: t.model_dump(include=set(FIELDS) | {"meta"}) for t in Store(first).iter_trajectories()}
    after = {t.qid: t.model_dump(include=set(FIELDS) | {"meta"}) for t in again.iter_trajectories()}
    assert after == before


def test_fireact_run_export_of_a_chat_import(shared, tmp_path):
    """A trajectory that never was in a run file (an OpenAI chat import) gets the chat variant."""
    store = Store(tmp_path / "chat.duckdb")
    import_files(store, [shared / "finetune" / "gpt_hotpotqa.jsonl"], parallel=False)
    out = tmp_path / "run.json"
    assert export(store, "fireact-run", out) == 500
    again = Store(tmp_path / "again.duckdb")
    import_files(again, [out], parallel=False, source="gpt_hotpotqa")
    before = [t.model_dump(include={"question", "steps", "final_answer", "task", "method"}) for t in store.iter_trajectories()]
    after = [t.model_dump(include={"question", "steps", "final_answer", "task", "method"}) for t in again.iter_trajectories()]
    assert after == before
