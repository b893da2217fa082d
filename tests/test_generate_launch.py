"""`fireact generate` sends a run's first requests before the store is imported and opened (`engine.launch`),
and loses nothing for it: answers wait while the database is busy, a database that cannot be opened stops the
command with nothing written, and questions a run had done before keep their stored results.

Most runs here are in FireAct's fine-tuned chat layout (its prompt needs nothing from the database); the
default path (the Studio's prompts, whose newest version lives in the database) starts with the shipped version
and starts again what it began once the database holds another. All run against the scripted OpenAI-compatible
stand-in, without search."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from fireact_core.cli import main
from fireact_core.generation.prompts import default_examples, import_fireact_prompt, save_examples
from fireact_core.records import stable_id
from fireact_core.store import Store
from fireact_core.generation.tasks import get_task
from tests.fakes.openai_server import FakeOpenAI
from tests.helpers import wait_until

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"
# a process that reports, when it first imports each of these modules, whether the stand-in had a request by then
WATCHED = ("fireact_core.store", "duckdb")
HOOKED_CLI = """
import sys, time
from pathlib import Path

flag, out, watched = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3].split(",")


class Watch:
    def find_spec(self, name, path=None, target=None):
        if name in watched and not (out / name).exists():
            deadline = time.monotonic() + 30  # a request already on its way arrives long before this
            while not flag.exists() and time.monotonic() < deadline:
                time.sleep(0.01)
            (out / name).write_text(str(flag.exists()))
        return None


sys.meta_path.insert(0, Watch())
from fireact_core.cli import main

sys.exit(main(sys.argv[4:]))
"""


def answers(text: str) -> Callable[[str, list[dict], bool], str]:
    return lambda question, messages, reflect: f"Thought: I know this.\nAction: finish[{text}]"


class Marking(FakeOpenAI):
    """The stand-in, writing `flag` when its first request arrives."""

    def __init__(self, flag: Path, **kw):
        super().__init__(**kw)
        self.flag = flag

    def answer(self, path: str, body: bytes) -> tuple[int, bytes, float]:
        if not self.flag.exists():
            self.flag.write_text("a request arrived")
        return super().answer(path, body)



def generate_args(db: Path, run: str, end: int, finetuned: bool = True) -> list[str]:
    return ["--db", str(db), "generate", "--task", "hotpotqa", "--split", "dev", "--tasks-dir", str(TASKS),
            "--end", str(end), *(["--finetuned", "chat"] if finetuned else []), "--search", "none", "--model",
            "gpt-4o-mini", "--run", run, "--quiet"]


def while_running(done: Callable[[], bool], proc: subprocess.Popen, what: str) -> None:
    def check() -> bool:
        if done():
            return True
        assert proc.poll() is None, f"the command ended before {what}: {proc.communicate()}"
        return False

    wait_until(check, what=what, interval=0.02)


@pytest.mark.parametrize("finetuned", [True, False], ids=["finetuned-chat", "default-prompts"])
def test_first_request_goes_out_before_the_store_is_imported(tmp_path, llm, finetuned):
    flag, out = tmp_path / "first-request", tmp_path / "imports"
    out.mkdir()
    server = llm(Marking(flag, policy=answers("unknown")))
    db = tmp_path / "first.duckdb"
    done = subprocess.run([sys.executable, "-c", HOOKED_CLI, str(flag), str(out), ",".join(WATCHED),
                           *generate_args(db, "first", 3, finetuned)], cwd=ROOT,
                          env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True, text=True, timeout=180,
                          check=False)
    assert done.returncode == 0, done.stdout + done.stderr
    # when each was first imported, the stand-in had already received a request
    assert {name: (out / name).read_text() for name in WATCHED} == {name: "True" for name in WATCHED}
    store = Store(db)
    assert store.count_trajectories("first") == 3 and server.calls == 3  # nothing asked twice
    expected = None if finetuned else 0  # the default path: the shipped version, the database holding no other
    assert {t.meta["prompt_version"] for t in store.iter_trajectories(source="first")} == {expected}
    assert not [e for e in store.run_events("first") if e.kind == "prompt"]


NEW_EXAMPLE = "Question: Which city hosts the Louvre?\nThought: It is in Paris.\nAction: finish[Paris]"


FIREACT_FILE = ROOT.parent / "shared" / "fireact" / "reference" / "prompts" / "react_hotpotqa_google.txt"


def by_prompt(messages: list[dict]) -> str:
    """The answer tells which few-shot examples the request carried: the shipped ones, or a saved version (the
    example above, or FireAct's prompt file in FireAct's layout)."""
    first = messages[0]["content"]
    saved = "the Louvre" in first if messages[0]["role"] == "system" else first.startswith(FIREACT_FILE.read_text())
    return "saved" if saved else "shipped"


@pytest.mark.parametrize("layout", ["studio", "fireact"])
def test_default_prompts_start_again_with_the_newest_saved_version(tmp_path, llm, layout):
    """Questions sent with the shipped examples before the database opened are started again with the newest saved
    version (the Studio's layout, or a FireAct prompt file loaded as a version), so every trajectory is what that
    version gives; questions done before stay as they were."""
    server = llm(FakeOpenAI(policy=lambda q, messages, r: f"Thought: ok.\nAction: finish[{by_prompt(messages)}]"))
    db = tmp_path / "versions.duckdb"
    assert main(generate_args(db, "ver", 2, finetuned=False)) == 0  # no saved version: the shipped one (0)
    store = Store(db)
    version = save_examples(store, "hotpotqa", "react", [NEW_EXAMPLE], "ann", "the Louvre") if layout == "studio" \
        else import_fireact_prompt(store, FIREACT_FILE.parent, "hotpotqa", "react", "ann")
    server.requests.clear()
    assert main(generate_args(db, "ver", 5, finetuned=False)) == 0
    stored = {t.qid: (t.final_answer, t.meta["prompt_version"], t.meta["prompt_layout"])
              for t in store.iter_trajectories(source="ver")}
    assert stored == {"0": ("shipped", 0, "studio"), "1": ("shipped", 0, "studio"), "2": ("saved", version, layout),
                      "3": ("saved", version, layout), "4": ("saved", version, layout)}
    sent = [by_prompt(r["messages"]) for r in server.requests]
    assert sent.count("saved") == 3 and "shipped" in sent  # the first window went out before the database opened
    assert all(s == "saved" for s in sent[sent.index("saved"):])  # nothing sent with the shipped examples after
    run = store.get_run("ver")
    assert (run.status, run.attempted, run.finished, run.em) == ("finished", 5, 5, 0.0)
    [event] = [e.message for e in store.run_events("ver") if e.kind == "prompt"]
    assert event == (f"prompt version {version}: 3 questions begun with the shipped version 0 before the database "
                     f"was open started again with it")


def test_a_saved_version_that_sends_the_same_requests_is_recorded_without_starting_again(tmp_path, llm):
    server = llm(FakeOpenAI(policy=lambda q, messages, r: f"Thought: ok.\nAction: finish[{by_prompt(messages)}]"))
    db = tmp_path / "same.duckdb"
    version = save_examples(Store(db), "hotpotqa", "react", default_examples("hotpotqa", "react"), "ann", "a copy")
    assert main(generate_args(db, "same", 4, finetuned=False)) == 0
    store = Store(db)
    assert {(t.final_answer, t.meta["prompt_version"]) for t in store.iter_trajectories(source="same")} == {
        ("shipped", version)}
    assert server.calls == 4 and not [e for e in store.run_events("same") if e.kind == "prompt"]


def test_answers_wait_while_the_database_is_held_and_none_is_lost(tmp_path, llm):
    server = llm(FakeOpenAI(policy=answers("unknown")))
    db = tmp_path / "held.duckdb"
    store = Store(db)
    proc = subprocess.Popen([sys.executable, "-m", "fireact_core.cli", *generate_args(db, "held", 3)], cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)}, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    with store.session():  # this process holds the file: the command cannot open it meanwhile
        while_running(lambda: server.calls >= 3, proc, "request for every question")
        assert store.list_runs() == [] and store.count_trajectories() == 0
    output, _ = proc.communicate(timeout=120)
    assert proc.returncode == 0, output
    run = store.get_run("held")
    assert (run.status, run.attempted, run.finished) == ("finished", 3, 3)
    assert sorted(t.qid for t in store.iter_trajectories(source="held")) == ["0", "1", "2"]
    assert server.calls == 3  # each answer kept while waiting, none asked for again


@pytest.mark.parametrize("content", [b"not a database\n", None])
def test_a_database_that_cannot_be_opened_stops_the_run_with_nothing_written(tmp_path, llm, capsys, content):
    llm(FakeOpenAI(policy=answers("unknown")))
    db = tmp_path / "notes.duckdb" if content else tmp_path / "missing" / "fireact.duckdb"
    if content:
        db.write_bytes(content)
    assert main(generate_args(db, "nowhere", 3)) == 2
    err = capsys.readouterr().err
    assert ("cannot open the database" if content else "does not exist") in err
    assert (db.read_bytes() == content) if content else not db.parent.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == (["notes.duckdb"] if content else [])


def test_taking_a_run_up_again_keeps_what_it_had_done(tmp_path, llm):
    server = llm(FakeOpenAI(policy=answers("first pass")))
    db = tmp_path / "again.duckdb"
    assert main(generate_args(db, "again", 2)) == 0
    server.policy = answers("second pass")
    assert main(generate_args(db, "again", 4)) == 0
    store = Store(db)
    stored = {t.qid: t.final_answer for t in store.iter_trajectories(source="again")}
    assert stored == {"0": "first pass", "1": "first pass", "2": "second pass", "3": "second pass"}
    run = store.get_run("again")
    assert (run.status, run.attempted, run.total) == ("finished", 4, 4)
    events = [e.message for e in store.run_events("again") if e.kind == "start"]
    assert events[-1] == "2 questions to run, 2 already done"


def test_a_run_live_in_another_process_is_refused_with_nothing_written(tmp_path, llm, capsys):
    server = llm(FakeOpenAI(policy=answers("unknown")))
    db = tmp_path / "live.duckdb"
    store = Store(db)
    questions = get_task("hotpotqa").load(TASKS, "dev")[:3]
    store.begin_run("live", task="hotpotqa", split="dev", method="react", model="gpt-4o-mini", settings={},
                    total=3, pid=os.getppid())
    assert main(generate_args(db, "live", 3)) == 2
    assert "is running now" in capsys.readouterr().err
    assert store.get_run("live").status == "running" and store.count_trajectories() == 0
    assert store.run_statuses("live") == {} and stable_id("live", questions[0].qid) not in store.existing_ids(
        [stable_id("live", q.qid) for q in questions])
    assert server.calls <= 3  # at most the first request of each question went out before the refusal
