"""Generation end to end: the real openai client over HTTP against a scripted server on 127.0.0.1, a SerpAPI
stand-in, real FireAct questions from ../shared/fireact/tasks, and a real DuckDB file."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fireact_core.cli import main
from fireact_core.generation.engine import RunConfig, cancel_run, prepare_run, run_generation, start_run
from fireact_core.generation.episode import FIREACT_REASKS
from fireact_core.errors import ToolError
from fireact_core.generation.prompts import PromptSpec, build_prompt, examples_for, make_spec, save_examples
from fireact_core.records import stable_id
from fireact_core.generation.tasks import get_task
from fireact_core.generation.tools.perturb import Perturber, parse_perturb
from fireact_core.generation.tools.serpapi_search import SerpAPISearch, extract_answer
from tests.fakes.serpapi_server import FakeSerpAPI
from tests.helpers import wait_for_run_thread, wait_until

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"
SERP = {"grace darling birthplace": {"answer_box": {"answer": "Bamburgh"}},
        "box snippet": {"answer_box": {"snippet": "a snippet"}, "organic_results": [{"snippet": "organic"}]},
        "broken query": {"error": "Invalid API key. Your API key should be here: https://serpapi.com/manage-api-key"}}


def question(task: str, split: str, index: int = 0):
    return get_task(task).load(TASKS, split)[index]


def config(name: str, **kw) -> RunConfig:
    base = dict(run=name, task="hotpotqa", split="dev", tasks_dir=str(TASKS), end=1, model="gpt-4o-mini",
                concurrency=4, backoff_s=0.01, timeout_s=3.0, poll_s=0.1)
    return RunConfig(**{**base, **kw})


@pytest.fixture
def serp(monkeypatch):
    server = FakeSerpAPI(SERP)
    monkeypatch.setenv("FIREACT_SERPAPI_URL", server.start())
    yield server
    server.stop()



def trajs(store, run):
    return list(store.iter_trajectories(source=run))


def test_react_hotpotqa_searches_and_scores(store, serp, llm):
    q = question("hotpotqa", "dev", 0)
    server = llm(script={q.question: ["Thought: I should look it up.\nAction: search[Grace Darling birthplace]",
                                      f"Thought: Found it.\nAction: finish[{q.answer}]"]})
    run = run_generation(store, config("react"))
    [t] = trajs(store, "react")
    assert t.id == stable_id("react", q.qid) and t.method == "react" and t.status == "finished"
    assert [s.action.name for s in t.steps] == ["search", "finish"]
    assert t.steps[0].observation == "Bamburgh"  # answer_box.answer comes first
    assert t.steps[1].observation == "Episode finished, reward = True"
    assert (t.final_answer, t.em, t.f1, t.reward) == (q.answer, 1.0, 1.0, True)
    assert t.tokens_in > 0 and t.tokens_out > 0 and t.cost_usd > 0 and t.meta["search"] == "serpapi"
    assert len(t.meta["calls"]) == 2 == server.calls
    assert run.attempted == 1 and run.finished == 1 and run.em == 1.0
    assert store.cached_search("serpapi", "Grace Darling birthplace") == (True, "Bamburgh")
    src = store.get_source("react")
    assert src.kind == "run" and src.task == "hotpotqa" and src.method == "react"


@pytest.mark.parametrize("task,split,method,reply,gold_steps", [
    ("strategyqa", "dev", "cot", "Thought: Albany, Georgia is smaller than Albany, New York.\nAction: finish[no]", 1),
    ("mmlu", "dev", "io", "Action: finish[B]", 1),
    ("bamboogle", "test", "cot", "Thought: Citibank was founded in 1812.\nAction: finish[James Madison]", 1),
])
def test_cot_and_io_answer_in_one_step(store, serp, llm, task, split, method, reply, gold_steps):
    q = question(task, split, 0)
    llm(script={q.question: [reply]})
    run_generation(store, config(f"{task}-{method}", task=task, split=split, method=method))
    [t] = trajs(store, f"{task}-{method}")
    assert len(t.steps) == gold_steps and t.steps[0].action.name == "finish"
    assert (t.steps[0].thought is not None) == (method == "cot")
    assert t.em == 1.0 and t.reward is True and t.task == task and not serp.queries


def test_mmlu_wrong_letter_scores_zero(store, serp, llm):
    q = question("mmlu", "dev", 0)
    llm(script={q.question: ["Action: finish[A]"]})
    run_generation(store, config("mmlu-wrong", task="mmlu", method="io"))
    [t] = trajs(store, "mmlu-wrong")
    assert q.answer == "B" and t.em == 0.0 and t.reward is False and t.status == "finished"


def test_reflexion_after_a_wrong_finish(store, serp, llm):
    q = question("bamboogle", "test", 0)
    llm(script={q.question: ["Thought: I think it was Jefferson.\nAction: finish[Thomas Jefferson]",
                             "Thought: Citibank was founded in 1812, under Madison.\nAction: finish[James Madison]"]},
        reflections={q.question: "Reflection: I answered from memory; I should check the founding year."})
    run_generation(store, config("refl", task="bamboogle", split="test", method="reflexion"))
    [t] = trajs(store, "refl")
    assert t.steps[0].observation == "Answer is INCORRECT"
    assert "let me do a reflection" in t.steps[1].thought and "check the founding year" in t.steps[1].thought
    assert " Thought: Citibank was founded" in t.steps[1].thought
    assert t.final_answer == "James Madison" and t.em == 1.0 and t.meta["reflections"] == 1


def test_reflexion_after_actions_without_answer(store, serp, llm):
    q = question("hotpotqa", "dev", 1)
    search = "Thought: Let me search.\nAction: search[box snippet]"
    llm(script={q.question: [search, search, f"Thought: Now I know.\nAction: finish[{q.answer}]"]})
    run_generation(store, config("refl2", start=1, end=2, method="reflexion", reflect_after=2))
    [t] = trajs(store, "refl2")
    assert [s.action.name for s in t.steps] == ["search", "search", "finish"]
    assert t.steps[0].observation == "a snippet"  # answer_box.snippet before organic results
    assert t.steps[2].thought.startswith("Now that I haven't solved the task within 2 steps, let me do a reflection")
    assert t.em == 1.0


def test_unparsable_output_is_asked_again_then_bounded(store, serp, llm):
    good, bad = question("hotpotqa", "dev", 0), question("hotpotqa", "dev", 1)
    server = llm(script={good.question: ["I am not sure.", f"Thought: ok\nAction: finish[{good.answer}]"],
                         bad.question: ["blah blah"]})
    run_generation(store, config("reask", end=2, max_reasks=2))
    by_q = {t.qid: t for t in trajs(store, "reask")}
    fixed, stuck = by_q[good.qid], by_q[bad.qid]
    assert fixed.status == "finished" and fixed.em == 1.0 and fixed.steps[0].raw == "I am not sure."
    assert fixed.steps[0].observation.startswith("Invalid action")
    assert stuck.status == "unfinished" and "no parsable action after 3 tries" in stuck.error
    assert len(stuck.meta["calls"]) == 3 and server.calls == 5 and stuck.em == 0.0
    assert "malformed_action" in {lint.kind for lint in store.lints_of(stuck.id)} or stuck.steps[0].flags.parse_error


def test_unknown_tool_and_tool_errors_become_observations(store, serp, llm):
    q = question("hotpotqa", "dev", 0)
    llm(script={q.question: ["Thought: look\nAction: lookup[Grace]", "Thought: search\nAction: search[broken query]",
                             f"Thought: ok\nAction: finish[{q.answer}]"]})
    run_generation(store, config("tool"))
    [t] = trajs(store, "tool")
    assert "no tool 'lookup'" in t.steps[0].observation and t.status == "finished"
    assert t.steps[1].observation.startswith("Search failed: Invalid API key")


def test_faults_every_question_ends_once(store, serp, llm):
    server = llm(fault_rate=0.2, slow_s=1.0, seed=3)
    cfg = config("faults", end=30, concurrency=6, timeout_s=0.5, max_retries=1)
    run = run_generation(store, cfg)
    got = trajs(store, "faults")
    assert len(got) == 30 and len({t.qid for t in got}) == 30 and run.attempted == 30
    assert all(t.status in ("finished", "failed") for t in got)
    assert all(t.error for t in got if t.status == "failed")
    assert set(server.faults_sent) == {"429", "500", "garbage", "slow"}
    assert sum(t.meta["retries"] for t in got) > 0
    failed = {t.id for t in got if t.status == "failed"}
    run_generation(store, cfg.model_copy(update={"max_retries": 6}))  # again: failed ones are retried, nothing doubles
    again = trajs(store, "faults")
    assert len(again) == 30 and store.count_trajectories("faults") == 30
    assert sum(t.status == "failed" for t in again) <= len(failed)
    assert store.get_run("faults").attempted == 30


def test_failed_question_is_recorded_then_retried(store, serp, llm):
    q = question("hotpotqa", "dev", 0)
    server = llm(broken={q.question})
    run = run_generation(store, config("broken", end=3, max_retries=2))
    by_q = {t.qid: t for t in trajs(store, "broken")}
    assert run.attempted == 3 and run.failed == 1 and run.finished == 2
    assert by_q[q.qid].status == "failed" and "gave up after 3 tries" in by_q[q.qid].error and "500" in by_q[q.qid].error
    assert any(e.kind == "failed" and q.qid in e.message for e in store.run_events("broken"))
    server.broken.clear()
    run = run_generation(store, config("broken", end=3))
    assert run.failed == 0 and run.finished == 3 and store.count_trajectories("broken") == 3


def test_resume_skips_done_questions(store, serp, llm):
    server = llm()
    run_generation(store, config("resume", end=3))
    calls = server.calls
    run_generation(store, config("resume", end=5))
    assert server.calls - calls == 4  # only the 2 new questions, 2 calls each
    assert store.count_trajectories("resume") == 5


def test_same_run_name_with_other_settings_is_refused(store, serp, llm):
    llm()
    run_generation(store, config("clash"))
    with pytest.raises(Exception, match="already exists with method"):
        run_generation(store, config("clash", method="cot"))


def test_perturbation_half_of_observations(store, serp, llm):
    llm()
    run_generation(store, config("noisy", end=40, perturb="none:0.5", seed=7, concurrency=8))
    stored = trajs(store, "noisy")
    steps = [s for t in stored for s in t.steps if s.action and s.action.name == "search"]
    perturbed = [s for s in steps if s.flags.perturbed]
    assert len(steps) == 40 and 0.3 < len(perturbed) / len(steps) < 0.7
    assert all(s.observation == "None" and s.flags.original_observation.startswith("A page about") for s in perturbed)
    assert all(t.meta["perturb"] == "none:0.5" for t in stored)
    # seeded: the same (seed, question, step) is perturbed again, whatever the order episodes run in
    again = Perturber("none", 0.5, seed=7)
    assert [again.apply("x", (t.qid, 0), [])[0] for t in stored] == [t.steps[0].flags.perturbed for t in stored]


def test_random_perturbation_uses_an_earlier_observation(store, serp, llm):
    llm()
    run_generation(store, config("rnd", end=20, perturb="random:1.0", concurrency=1))
    steps = [s for t in trajs(store, "rnd") for s in t.steps if s.action.name == "search"]
    assert len(steps) >= 20 and all(s.flags.perturbed == "random" for s in steps)
    # the run's first search has no earlier observation to take and reads "None"; the stored order need not be
    # the order the searches ran in, so it is found by its text
    taken = [s for s in steps if s.observation != "None"]
    assert len(steps) - len(taken) == 1
    assert all(s.observation != s.flags.original_observation for s in taken)
    originals = {s.flags.original_observation for s in steps}
    assert all(s.observation in originals for s in taken)
    assert parse_perturb("none:0.25") == ("none", 0.25) and parse_perturb(None) == (None, 0.0)


def test_keys_never_reach_database_events_or_exports(store, serp, llm, tmp_path, monkeypatch):
    from fireact_core.io.exporter import export

    server = llm()
    monkeypatch.setenv("SERPAPI_API_KEY", "serp-SECRET-42")
    secret = "sk-page-typed-SECRET-99"
    run_generation(store, config("keys", end=3, api_key=secret))
    assert f"Bearer {secret}" in server.auth and "serp-SECRET-42" in serp.keys  # the keys were used
    out = tmp_path / "keys.jsonl"
    export(store, "native", out, source="keys")
    events = json.dumps([e.model_dump() for e in store.run_events("keys")], default=str)
    settings = json.dumps(store.get_run("keys").settings)
    blobs = [Path(store.path).read_bytes(), out.read_bytes(), events.encode(), settings.encode()]
    wal = Path(str(store.path) + ".wal")
    if wal.exists():
        blobs.append(wal.read_bytes())
    for key in (secret, "sk-test-0123456789", "serp-SECRET-42"):
        assert not any(key.encode() in b for b in blobs), key


def test_cancel_stops_a_background_run(store, serp, llm):
    llm(latency=(0.2, 0.3))
    name = start_run(store, config("bg", end=40, concurrency=2))
    wait_until(lambda: store.get_run(name).attempted >= 2, 20, "two questions attempted")
    cancel_run(store, name)
    wait_until(lambda: store.get_run(name).status != "running", 20, "the run to stop")
    wait_for_run_thread(name)
    run = store.get_run(name)
    assert run.status == "cancelled" and 2 <= run.attempted < 40
    assert store.count_trajectories(name) == run.attempted


def test_cli_killed_mid_run_then_resumed(tmp_path, serp, llm, capsys):
    llm(latency=(0.4, 0.6))  # slow enough that the kill lands mid-run on a loaded machine
    db = tmp_path / "cli.duckdb"
    cmd = [sys.executable, "-m", "fireact_core.cli", "--db", str(db), "generate", "--task", "hotpotqa", "--split",
           "dev", "--tasks-dir", str(TASKS), "--start", "0", "--end", "12", "--method", "react", "--model",
           "gpt-4o-mini", "--concurrency", "2", "--run", "killed"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    seen = 0
    for line in proc.stdout:
        seen += line.startswith("[")
        if seen >= 1:
            break
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    assert seen >= 1, "the CLI printed no progress"
    # the process is gone: every view says interrupted, with the same done/total
    capsys.readouterr()
    assert main(["--db", str(db), "runs", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "interrupted" and row["attempted"] == row["total"] == 12 and 0 < row["done"] < 12
    assert main(["--db", str(db), "runs"]) == 0
    line = capsys.readouterr().out
    assert f"{row['done']:>5}/12" in line and line.rstrip().endswith("interrupted")
    from fireact_core.generation.engine import run_view
    from fireact_core.store import Store

    view = run_view(Store(db), "killed")
    assert (view.status, view.attempted, view.stalled) == ("interrupted", row["done"], False)
    done = subprocess.run(cmd, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "sk-test-0123456789" not in done.stdout + done.stderr
    assert main(["--db", str(db), "runs", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert list(row) == ["run", "task", "split", "method", "model", "attempted", "finished", "failed", "em", "f1",
                         "done", "total", "status"]
    assert row["run"] == "killed" and row["attempted"] == 12 and row["finished"] + row["failed"] == 12
    assert (row["done"], row["status"]) == (12, "finished")
    from fireact_core.store import Store

    st = Store(db)
    qids = [t.qid for t in st.iter_trajectories(source="killed")]
    assert sorted(qids, key=int) == [str(i) for i in range(12)]


# The command starts as a terminal's foreground job does: SIGINT delivered and handled by default. A child inherits
# an ignored or blocked SIGINT from its parent (as a background job does), and Python then leaves it ignored.
AS_IN_A_TERMINAL = ("import os, signal, sys; signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT}); "
                    "signal.signal(signal.SIGINT, signal.SIG_DFL); os.execv(sys.executable, [sys.executable, *sys.argv[1:]])")


def _signal_masks(pid: int) -> str:
    try:
        return " ".join(line for line in Path(f"/proc/{pid}/status").read_text().splitlines()
                        if line.startswith(("SigBlk", "SigIgn", "SigCgt")))
    except OSError:
        return "(gone)"


def test_ctrl_c_marks_the_run_interrupted_and_the_same_run_takes_it_up(tmp_path, serp, llm, capsys):
    llm(latency=(0.4, 0.6))
    db = tmp_path / "ctrl-c.duckdb"
    cmd = [sys.executable, "-c", AS_IN_A_TERMINAL, "-m", "fireact_core.cli", "--db", str(db), "generate", "--task",
           "hotpotqa", "--split", "dev", "--tasks-dir", str(TASKS), "--end", "12", "--model", "gpt-4o-mini",
           "--concurrency", "2", "--run", "ctrl-c"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    for line in proc.stdout:
        if line.startswith("["):  # a first question is saved
            break
    masks = _signal_masks(proc.pid)
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    assert proc.returncode == 130, f"{masks}\n{out}"
    assert "fireact: interrupted" in out and "Traceback" not in out
    capsys.readouterr()
    assert main(["--db", str(db), "runs", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert row["status"] == "interrupted" and 0 < row["done"] < 12
    from fireact_core.store import Store

    assert [e.kind for e in Store(db).run_events("ctrl-c")][-1] == "interrupted"
    done = subprocess.run(cmd, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert main(["--db", str(db), "runs", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["done"], row["total"], row["status"]) == (12, 12, "finished")


def test_exit_status_says_whether_every_question_ended(tmp_path, serp, llm, capsys):
    """0 when every question ended, 3 when some failed after their retries, 2 for bad input."""
    broken = question("hotpotqa", "dev", 1).question
    llm(broken={broken})
    db = str(tmp_path / "exit.duckdb")
    base = ["--db", db, "generate", "--task", "hotpotqa", "--split", "dev", "--tasks-dir", str(TASKS), "--quiet",
            "--timeout", "5"]
    assert main([*base, "--end", "1", "--run", "ok"]) == 0
    assert main([*base, "--end", "2", "--run", "some-failed"]) == 3
    assert "1 failed" in capsys.readouterr().out
    assert main([*base, "--end", "2", "--run", "bad", "--perturb", "sometimes"]) == 2


def test_local_transformers_backend(store, serp, tiny_model_dir):
    cfg = config("tiny", end=3, backend="local", local_model=str(tiny_model_dir), mode="finetuned",
                 finetuned_format="alpaca", max_tokens=12, max_steps=2, max_reasks=1, temperature=0.7, search="local")
    run = run_generation(store, cfg)
    got = trajs(store, "tiny")
    assert len(got) == 3 and run.attempted == 3
    for t in got:
        assert t.status in ("finished", "unfinished", "failed") and t.model == Path(tiny_model_dir).name
        # fine-tuned mode runs FireAct's loop: each round at most 1 + 5 re-asks of a turn without "Action: "
        assert 1 <= len(t.meta["calls"]) <= cfg.max_steps * (1 + FIREACT_REASKS)
        assert t.tokens_in > 0 and t.steps and t.cost_usd == 0.0
        assert t.status != "unfinished" or t.error


def test_local_backend_batches_requests_with_a_peft_adapter(tiny_model_dir, tmp_path):
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from fireact_core.generation.models import make_backend

    adapter = tmp_path / "adapter"
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    get_peft_model(base, LoraConfig(r=2, target_modules=["q_proj", "v_proj"])).save_pretrained(adapter)
    backend = make_backend("local", model_dir=str(tiny_model_dir), adapter=str(adapter), batch_size=4, gather_s=0.2)
    spec = PromptSpec(method="react", mode="finetuned", finetuned_format="alpaca")
    prompts = [build_prompt(spec, f"Question number {i}?", []) for i in range(4)]

    async def go():
        out = await asyncio.gather(*(backend.complete(p, 0.0, 8) for p in prompts))
        await backend.aclose()
        return out

    results = asyncio.run(go())
    assert backend.batches == [4] and all(r.tokens_in > 0 for r in results)
    assert type(backend.load()[0]).__name__.startswith("Peft") and backend.model.endswith("+adapter")


def test_price_table_is_editable(store, serp, llm):
    from fireact_core.generation.models.pricing import cost_usd, price_table

    assert price_table(store)["gpt-4o-mini"] == (0.15, 0.60)
    assert cost_usd(price_table(store), "ft:gpt-4o-mini:org::x", 1_000_000, 0) == 0.15
    store.save_model_prices({"my-model": (1.0, 2.0)})
    assert price_table(store) == {"my-model": (1.0, 2.0)}
    llm()
    run_generation(store, config("priced", model="my-model"))
    [t] = trajs(store, "priced")
    assert t.cost_usd == pytest.approx((t.tokens_in * 1.0 + t.tokens_out * 2.0) / 1e6)


def test_requests_per_minute_pace():
    from fireact_core.generation.models.limits import CallLimits

    async def go():
        limits = CallLimits(concurrency=8, rpm=600)

        async def call():
            return time.monotonic()

        return await asyncio.gather(*(limits.call(call) for _ in range(5)))

    stamps = sorted(asyncio.run(go()))
    assert stamps[-1] - stamps[0] >= 0.38


def test_sampling_settings_default_to_fireacts_and_can_be_changed(store, serp, llm):
    server = llm()
    run_generation(store, config("defaults"))
    body = server.requests[0]
    assert (body["max_tokens"], body["top_p"], body["stop"]) == (1000, 1, ["\nObservation:"])
    run_generation(store, config("chat", mode="finetuned"))
    assert server.requests[-1]["stop"] is None  # FireAct's fine-tuned chat mode sends none
    run_generation(store, config("changed", max_tokens=50, top_p=0.5, stop=["\nThought:"], temperature=0.3))
    body = server.requests[-1]
    assert (body["max_tokens"], body["top_p"], body["stop"], body["temperature"]) == (50, 0.5, ["\nThought:"], 0.3)


def test_sampling_flags_of_the_command_line(tmp_path, serp, llm):
    server = llm()
    base = ["--db", str(tmp_path / "flags.duckdb"), "generate", "--task", "hotpotqa", "--split", "dev",
            "--tasks-dir", str(TASKS), "--end", "1", "--quiet"]
    sent = []
    for run, flags in [("plain", []), ("changed", ["--max-tokens", "50", "--top-p", "0.5", "--temperature", "0.3",
                                                   "--stop", "\nThought:", "--stop", "END"]),
                       ("no-stop", ["--no-stop"]), ("chat", ["--finetuned", "chat"]),
                       ("chat-stop", ["--finetuned", "chat", "--stop", "\nObservation:"])]:
        server.requests.clear()
        assert main([*base, "--run", run, *flags]) == 0
        body = server.requests[0]
        sent.append((body["max_tokens"], body["top_p"], body["temperature"], body["stop"]))
    assert sent == [(1000, 1, 0.0, ["\nObservation:"]), (50, 0.5, 0.3, ["\nThought:", "END"]), (1000, 1, 0.0, None),
                    (1000, 1, 0.0, None), (1000, 1, 0.0, ["\nObservation:"])]


def test_adaptive_window_rises_per_answer_and_halves_once_per_round_trip():
    from fireact_core.generation.models.limits import AdaptiveLimit

    async def go():
        w = AdaptiveLimit(start=4, maximum=10)
        first = [await w.acquire() for _ in range(4)]
        assert w.in_flight == 4 and int(w.limit) == 4  # a fifth call would wait
        for t in first:
            await w.release(t, "ok")
        assert w.limit == 8  # slow start: one more per answer
        a, b = await w.acquire(), await w.acquire()
        await w.release(a, "backoff")
        await w.release(b, "backoff")  # started before the cut: no second cut
        assert (w.limit, w.backoffs) == (4, 1)
        c = await w.acquire()
        await w.release(c, "backoff")
        assert w.limit == 2
        for _ in range(2):
            await w.release(await w.acquire(), "ok")
        assert 2 < w.limit < 3  # past a back-off: one more per round trip
        for _ in range(200):
            await w.release(await w.acquire(), "ok")
        assert w.limit == 10  # never past the maximum
        fixed = AdaptiveLimit(fixed=3)
        await fixed.release(await fixed.acquire(), "backoff")
        assert fixed.limit == 3

    asyncio.run(go())


def test_adaptive_concurrency_rises_while_answers_come_back(store, serp, llm):
    llm(latency=(0.05, 0.1))
    run = run_generation(store, config("rise", end=60, concurrency=None))
    assert run.attempted == 60 and run.failed == 0
    [event] = [e.message for e in store.run_events("rise") if e.kind == "concurrency"]
    reached = int(event.split("reached ")[1].split(",")[0])
    assert "adaptive from 32" in event and reached >= 32 + 100  # one more per answer: 120 answers


def test_adaptive_concurrency_backs_off_on_429(store, serp, llm):
    server = llm(capacity=6, latency=(0.02, 0.05))
    run = run_generation(store, config("burst", end=30, concurrency=None, max_retries=8))
    assert run.attempted == 30 and run.failed == 0
    assert server.refused > 0 and server.max_in_flight <= 6
    assert server.refused < server.calls  # it backed off instead of hammering
    [event] = [e.message for e in store.run_events("burst") if e.kind == "concurrency"]
    assert "0 back-offs" not in event


def test_help_and_the_generate_path_import_nothing_heavy():
    code = ("import sys\nfrom fireact_core.cli import build_parser\nbuild_parser()\n"
            "heavy = {'pandas', 'pyarrow', 'duckdb', 'pydantic', 'openai', 'numpy', 'httpx', 'torch'}\n"
            "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))\n"
            "import fireact_core.generation.engine, fireact_core.generation.models.openai_chat, fireact_core.generation.tools.serpapi_search\n"
            "print(sorted((heavy - {'pydantic'}) & {m.split('.')[0] for m in sys.modules}))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    # the store (DuckDB, pyarrow, pandas) is imported only once the first requests are out (engine.launch)
    assert out.stdout.split("\n")[:2] == ["[]", "[]"]


def test_fireact_prompt_files_and_prompt_versions(store, tmp_path):
    from fireact_core.errors import FireactError
    from fireact_core.generation.prompts import fireact_prompt_file, import_fireact_prompt

    prompts = ROOT.parent / "shared" / "fireact" / "reference" / "prompts"
    assert fireact_prompt_file(prompts, "bamboogle", "react").name == "react_hotpotqa_google.txt"  # as FireAct
    assert fireact_prompt_file(prompts, "strategyqa", "cot").name == "cot_strategyqa.txt"
    with pytest.raises(FireactError, match="no prompt file for reflexion on mmlu"):
        fireact_prompt_file(prompts, "mmlu", "reflexion")
    version = import_fireact_prompt(store, prompts, "strategyqa", "react", "ann")
    spec = make_spec(store, "strategyqa", "react")
    text = (prompts / "react_strategyqa_google.txt").read_text(encoding="utf-8")
    assert (spec.layout, spec.version, spec.fewshot, spec.source) == ("fireact", version, text,
                                                                      "react_strategyqa_google.txt")
    assert make_spec(store, "strategyqa", "react", version=0).layout == "studio"
    db = tmp_path / "bad.duckdb"
    args = ["--db", str(db), "generate", "--task", "hotpotqa", "--tasks-dir", str(TASKS), "--run", "r"]
    assert main([*args, "--prompts-dir", str(tmp_path / "nowhere")]) == 2
    from fireact_core.store import Store

    assert Store(db).list_runs() == []  # bad input leaves the database as it was


def test_prompts_render_text_and_chat(store):
    q = "Which river flows through Vienna?"
    few = make_spec(store, "hotpotqa", "react")
    p = build_prompt(few, q, [])
    assert p.stop == ["\nObservation:"] and p.text.endswith(f"Question: {q}\n")
    assert p.messages[0]["role"] == "system" and "Action: search[" in p.messages[0]["content"]
    assert p.messages[1] == {"role": "user", "content": q}
    ft = build_prompt(make_spec(store, "hotpotqa", "react", mode="finetuned"), q, [])
    assert ft.messages == [{"role": "user", "content": q}]
    alpaca = build_prompt(make_spec(store, "hotpotqa", "react", "finetuned", "alpaca"), q, [])
    assert alpaca.text.startswith("Below is an instruction") and alpaca.text.endswith("### Response:\n")
    assert len(ft.text) * 5 < len(p.text)


def test_examples_are_versioned(store):
    shipped, version = examples_for(store, "strategyqa", "cot")
    assert version == 0 and len(shipped) == 2
    v1 = save_examples(store, "strategyqa", "cot", ["Question: x?\nThought: y\nAction: finish[yes]", " "], "ann")
    assert v1 == 1 and examples_for(store, "strategyqa", "cot") == (["Question: x?\nThought: y\nAction: finish[yes]"], 1)
    assert examples_for(store, "strategyqa", "cot", version=0)[0] == shipped
    assert store.prompt_versions("strategyqa", "cot")[0].author == "ann"


def test_serpapi_extraction_order():
    assert extract_answer({"answer_box": {"answer": "a", "snippet": "s"}}) == "a"
    assert extract_answer({"answer_box": {"snippet": "s"}}) == "s"
    assert extract_answer({"answer_box": {"snippet_highlighted_words": ["w"]}, "organic_results": [{"snippet": "o"}]}) == "w"
    assert extract_answer({"organic_results": [{"snippet": "o"}]}) == "o"
    assert extract_answer({"organic_results": [{"title": "t"}]}) is None


def test_serpapi_requests_are_the_packages_over_one_connection(serp):
    search = SerpAPISearch(api_key="serp-key-0123")
    queries = ["grace darling birthplace", "box snippet", "Who wrote 'Q&A' (1991)? 50% / é"]
    assert [search.search(q) for q in queries] == ["Bamburgh", "a snippet", f"A page about {queries[2]}."]
    assert len(serp.peers) == 1  # one keep-alive connection
    direct = list(serp.paths)
    for q in queries:  # FireAct's client, the google-search-results package
        search._get_via_package({"api_key": "serp-key-0123", "engine": "google", "q": q, "google_domain": "google.com",
                                 "gl": "us", "hl": "en"})
    assert serp.paths[len(queries):] == direct
    with pytest.raises(ToolError, match="Invalid API key"):
        search.search("broken query")


def test_local_search_with_a_corpus_file(store, llm, tmp_path):
    corpus = tmp_path / "c.jsonl"
    corpus.write_text(json.dumps({"title": "Zorblax", "text": "Zorblax is a moon of the planet Quimby."}) + "\n"
                      + json.dumps({"title": "Other", "text": "Nothing to see here."}) + "\n")
    q = question("hotpotqa", "dev", 0)
    llm(script={q.question: ["Thought: t\nAction: search[Zorblax moon]", "Thought: t\nAction: finish[x]"]})
    run_generation(store, config("bm25", search="local", corpus=str(corpus)))
    [t] = trajs(store, "bm25")
    assert t.steps[0].observation == "Zorblax is a moon of the planet Quimby."
    assert store.cached_searches(f"local:{corpus.resolve()}") == {"Zorblax moon": "Zorblax is a moon of the planet Quimby."}


def test_custom_questions_file(store, serp, llm, tmp_path):
    path = tmp_path / "qs.csv"
    path.write_text("question,answer\nWhat is two plus two?,four\n")
    llm(script={"What is two plus two?": ["Thought: easy\nAction: finish[four]"]})
    plan = prepare_run(store, config("custom", task="custom", split="custom", questions_path=str(path), end=None,
                                     method="cot"))
    assert len(plan.todo) == 1
    run_generation(store, config("custom", task="custom", split="custom", questions_path=str(path), end=None,
                                 method="cot"))
    [t] = trajs(store, "custom")
    assert t.em == 1.0


def test_a_running_run_cannot_be_started_twice(store, serp, llm):
    llm(latency=(0.2, 0.3))
    name = start_run(store, config("twice", end=20, concurrency=1))
    with pytest.raises(Exception, match="is running now"):
        start_run(store, config("twice", end=20, concurrency=1))
    cancel_run(store, name)
    wait_until(lambda: store.get_run(name).status != "running", 20, "the run to stop")
    wait_for_run_thread(name)
    assert store.get_run(name).status == "cancelled"
