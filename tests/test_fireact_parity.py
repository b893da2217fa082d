"""Differential tests against FireAct's own generation.py: both programs run against one stand-in model server
that records every request body (and one SerpAPI stand-in), and what they send must be the same, character for
character, for each task in each of FireAct's modes; on a script of awkward model turns, EM per question too.

FireAct runs through ../shared/fireact/reference/run_fireact.py in its own venv (`fireact_reference`); the
Studio through `fireact generate`. Each program talks to its own path on the one server (/fireact/..., /studio/...),
so the requests of every (program, task, mode) can be told apart while all of them run at once.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from fireact_core.cli import main
from fireact_core.generation.prompts import import_fireact_prompt
from fireact_core.store import Store
from fireact_core.generation.tasks import get_task
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serpapi_server import FakeSerpAPI

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fireact"
TASKS = SHARED / "tasks"
PROMPTS = SHARED / "reference" / "prompts"
MODEL = "fireact-parity"
# (task, split, questions): FireAct's own split names (abstract_algebra_dev: one MMLU subject, as FireAct reads it)
# Bamboogle runs the edge-case script below on its questions 0-11; the other tasks a search, then an answer.
TASK_RUNS = [("hotpotqa", "dev", 3), ("strategyqa", "dev", 3), ("bamboogle", "test", 12),
             ("mmlu", "abstract_algebra_dev", 3)]
MODES = {  # mode -> (generation.py flags, fireact generate flags)
    "fewshot": (["--promptpath", "default"], ["--prompts-dir", str(PROMPTS)]),
    "chat": (["--promptpath", "", "--chatgpt_format"], ["--finetuned", "chat"]),
    "alpaca": (["--promptpath", "", "--alpaca_format"], ["--finetuned", "alpaca"]),
}
NO_RESULT = "a query google has nothing for"
SERP = {NO_RESULT: {"search_metadata": {"status": "Success"},
                    "error": "Google hasn't returned any results for this query."}}


def reask_ok(ends_with_thought: bool) -> str:
    """No action when asked after "Thought:", a whole turn when asked again without it (FireAct's re-ask)."""
    return " I am not sure yet." if ends_with_thought else "Thought: Now I know.\nAction: finish[1999]"


# Bamboogle test questions 0-11 and what the model answers at each turn: (thought, action) pairs are written
# the way each layout expects, a str is the whole reply, a callable gets whether the prompt ends in "Thought:".
EDGE_SCRIPT = {
    0: [("I search.", NO_RESULT.join(["search[", "]"])), ("Nothing found; I guess.", "finish[james madison]")],
    1: [("Nested brackets.", "finish[Titan IIIE [rocket]]")],
    2: [reask_ok],
    3: [" No action here, ever."],
    4: [("Capital F.", "Finish[20 June 1837]")],
    5: [("Trailing spaces.", "finish[April 30, 1789]   ")],
    6: [("Nothing to say.", "finish[]")],
    7: [("No brackets.", "finish")],
    8: [("Wrong tool.", "lookup[celiac camel]"), ("Capital S.", "Search[camel meat]"), ("Done.", "finish[Yes]")],
    9: ["Action: finish[The Formation of Vegetable Mould Through the Action of Worms]"],
    10: [("Two actions.", "search[locomotive]\nAction: finish[1823]"), ("So.", "finish[1823]")],
    11: [("Wrong answer.", "finish[Theranos]")],
}


class Policy:
    """Replies by (question, turn), the same for FireAct's text layouts (one user message) and its chat layout."""

    def __init__(self, questions: list[str], answers: dict[str, str], script: dict[str, list]):
        self.questions = sorted(set(questions), key=len, reverse=True)
        self.answers, self.script = answers, script

    def locate(self, messages: list[dict]) -> tuple[str, int, bool]:
        first = messages[0]["content"]
        if first in self.answers and (len(messages) > 1 or not first.endswith("Thought:")):
            return first, sum(m["role"] == "assistant" for m in messages), False
        question = max(self.questions, key=lambda q: first.rfind(q))
        tail = first[first.rfind(question) + len(question):]
        return question, tail.count("\nObservation: "), first.endswith("Thought:")

    def __call__(self, _first: str, messages: list[dict], _reflect: bool) -> str:
        question, turn, after_thought = self.locate(messages)
        words = " ".join(question.split()[:6]).replace("[", "(").replace("]", ")")
        replies = self.script.get(question) or [("I need to look this up.", f"search[{words}]"),
                                                ("I have it.", f"finish[{self.answers[question]}]")]
        reply = replies[min(turn, len(replies) - 1)]
        if callable(reply):
            return reply(after_thought)
        if isinstance(reply, str):
            return reply
        thought, action = reply
        return f" {thought}\nAction: {action}" if after_thought else f"Thought: {thought}\nAction: {action}"


def load(task: str, split: str, n: int):
    return get_task(task).load(TASKS, split)[:n]


def answer_for(index: int, gold: str | None) -> str:
    """Right on even questions, wrong on odd ones."""
    return gold if index % 2 == 0 and gold else "something else"


def fireact_command(reference, workdir: Path, path: str, llm_url: str, serp_url: str, task: str, split: str,
                    n: int, flags: list[str]) -> list[str]:
    python, runner = reference
    return [str(python), str(runner), "--model-url", f"{llm_url}/{path}/v1", "--serp-url", serp_url,
            "--workdir", str(workdir), "--", "--task", task, "--task_split", split, "--task_start_index", "0",
            "--task_end_index", str(n), "--backend", MODEL, "--evaluate", "--temperature", "0", *flags]


def studio_args(db: Path, base_url: str, task: str, split: str, n: int, flags: list[str], run: str) -> list[str]:
    return ["--db", str(db), "generate", "--task", task, "--split", split, "--tasks-dir", str(TASKS), "--end", str(n),
            "--model", MODEL, "--base-url", base_url, "--run", run, "--quiet", "--timeout", "20", *flags]


def task_policy() -> Policy:
    """The stand-in's replies for every question of TASK_RUNS."""
    questions, answers, script = [], {}, {}
    for task, split, n in TASK_RUNS:
        for i, q in enumerate(load(task, split, n)):
            questions.append(q.question)
            answers[q.question] = answer_for(i, q.answer)
            if task == "bamboogle":
                script[q.question] = EDGE_SCRIPT[i]
    return Policy(questions, answers, script)


@pytest.fixture(scope="module")
def both_runs(fireact_reference, tmp_path_factory):
    """Every (task, mode), run by both programs at once; returns (requests per path, the Studio's database,
    FireAct's work folders)."""
    tmp = tmp_path_factory.mktemp("parity")
    llm = FakeOpenAI(policy=task_policy())
    serp = FakeSerpAPI(SERP)
    llm_url, serp_url = llm.start().removesuffix("/v1"), serp.start()
    env = {**os.environ, "OPENAI_API_KEY": "sk-parity-0000", "SERPAPI_API_KEY": "serp-parity",
           "FIREACT_SERPAPI_URL": serp_url}
    jobs = [(f"{task}-{mode}", task, split, n, MODES[mode]) for task, split, n in TASK_RUNS for mode in MODES]
    procs = {}
    for name, task, split, n, (fa_flags, _) in jobs:
        cmd = fireact_command(fireact_reference, tmp / "fa" / name, f"fireact/{name}", llm_url, serp_url, task,
                              split, n, fa_flags)
        procs[name] = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    db = tmp / "studio.duckdb"
    saved = {k: os.environ.get(k) for k in ("FIREACT_SERPAPI_URL", "SERPAPI_API_KEY", "OPENAI_API_KEY")}
    os.environ.update({k: env[k] for k in saved})
    try:
        for name, task, split, n, (_, st_flags) in jobs:
            code = main(studio_args(db, f"{llm_url}/studio/{name}/v1", task, split, n, st_flags, name))
            assert code == 0, name
    finally:
        for k, v in saved.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    for name, proc in procs.items():
        out, _ = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"FireAct {name}:\n{out[-3000:]}"
    llm.stop()
    serp.stop()
    by_path: dict[str, list[dict]] = {}
    for path, body in llm.log:
        by_path.setdefault(path.removesuffix("/v1/chat/completions"), []).append(body)
    return by_path, Store(db), tmp / "fa"


def canonical(bodies: list[dict]) -> list[str]:
    return sorted(json.dumps(b, sort_keys=True, ensure_ascii=False) for b in bodies)


@pytest.mark.parametrize("mode", list(MODES))
@pytest.mark.parametrize("task", [t for t, _, _ in TASK_RUNS])
def test_request_bodies_equal_fireacts(both_runs, task, mode):
    by_path, _, _ = both_runs
    fireact, studio = by_path.get(f"/fireact/{task}-{mode}", []), by_path.get(f"/studio/{task}-{mode}", [])
    n = next(k for t, _, k in TASK_RUNS if t == task)
    assert len(fireact) >= 2 * n, "FireAct sent fewer requests than the questions need"
    assert canonical(studio) == canonical(fireact)
    body = fireact[0]
    assert (body["max_tokens"], body["top_p"], body["temperature"]) == (1000, 1, 0.0)
    assert body["stop"] == (None if mode == "chat" else ["\nObservation:"])
    if mode == "fewshot":
        prompt_file = "react_hotpotqa_google.txt" if task == "bamboogle" else f"react_{task}_google.txt"
        assert body["messages"][0]["content"].startswith((PROMPTS / prompt_file).read_text(encoding="utf-8"))


def fireact_results(workdir: Path) -> dict[str, dict]:
    [out] = (workdir / "trajs").glob("*.json")
    return json.loads(out.read_text())


@pytest.mark.parametrize("mode", list(MODES))
def test_edge_case_script_scores_as_fireact(both_runs, mode):
    """Nested brackets, a missing `Action:` (for good, or until FireAct's re-ask), `Finish[...]`, trailing spaces,
    an empty finish, no brackets, unknown tools, a search with no result, a turn without a thought, two actions."""
    _, store, fa = both_runs
    name = f"bamboogle-{mode}"
    infos = fireact_results(fa / name)
    questions = load("bamboogle", "test", len(EDGE_SCRIPT))
    studio = {t.qid: t for t in store.iter_trajectories(source=name)}
    fireact_em = {str(i): float(bool(infos[str(i)]["em"])) if str(i) in infos else 0.0 for i in range(len(questions))}
    studio_em = {qid: t.em for qid, t in studio.items()}
    assert studio_em == fireact_em
    # the cases read as FireAct reads them
    assert fireact_em["1"] == 1.0 and studio["1"].final_answer == "Titan IIIE"  # finish[Titan IIIE [rocket]]
    assert studio["3"].steps[-1].action.raw == "finish[]" and studio["3"].steps[-1].thought == "failed"
    assert studio["7"].status == "unfinished" and studio["7"].steps[0].action.raw == "finish"
    assert studio["0"].steps[0].observation == "None"
    assert "generated an exception: Unknown tool name: lookup" in studio["8"].steps[0].observation
    assert studio["8"].steps[1].observation.startswith("('Search', 'camel meat') generated an exception")
    assert all(t.steps[-1].observation.startswith("Episode finished") for k, t in studio.items() if k != "7")


@pytest.mark.parametrize("version_flag", [["--prompt-version", "1"], []], ids=["named", "default"])
def test_a_fireact_prompt_file_saved_as_a_version_sends_fireacts_requests(both_runs, tmp_path, monkeypatch,
                                                                          version_flag):
    """FireAct's prompt file loaded as a prompt version (as the Generate page does) sends FireAct's few-shot requests,
    named with --prompt-version or as the newest version by default; by default the first requests go out with
    the shipped examples before the database is open and those questions start again with the saved version."""
    by_path, _, _ = both_runs
    llm, serp = FakeOpenAI(policy=task_policy()), FakeSerpAPI(SERP)
    url = llm.start()
    monkeypatch.setenv("FIREACT_SERPAPI_URL", serp.start())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-parity-0000")
    db = tmp_path / "version.duckdb"
    try:
        assert import_fireact_prompt(Store(db), PROMPTS, "hotpotqa", "react", "ann") == 1
        assert main(studio_args(db, url, "hotpotqa", "dev", 3, version_flag, "as-version")) == 0
    finally:
        llm.stop()
        serp.stop()
    fireact_layout = [body for body in llm.requests if body["messages"][0]["role"] == "user"]
    assert canonical(fireact_layout) == canonical(by_path["/fireact/hotpotqa-fewshot"])
    assert len(fireact_layout) == len(llm.requests) if version_flag else len(fireact_layout) < len(llm.requests)
    stored = list(Store(db).iter_trajectories(source="as-version"))
    assert {(t.meta["prompt_version"], t.meta["prompt_layout"]) for t in stored} == {(1, "fireact")}
    assert len(stored) == 3
