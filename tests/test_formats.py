"""Readers and writers on the real FireAct files: counts, exact round trips, the chat variant of evaluation
runs, the `messages` train flags, and each lint kind on small hand-built trajectories."""

from __future__ import annotations

import json
from statistics import mean

import pytest

from fireact_core.io.exporter import export
from fireact_core.io.formats import detect_format, read_file
from fireact_core.io.formats.fireact import trajectory_from_messages, trajectory_from_text
from fireact_core.io.importer import import_files
from fireact_core.io.lint import lint_duplicates, lint_trajectory
from fireact_core.records import Annotation, Step, trajectory_data, trajectory_of
from fireact_core.io.parsing import render_text
from fireact_core.store import Store
from tests.conftest import FINETUNE, RUN_FILE


@pytest.mark.parametrize(
    ("name", "fmt", "rows"),
    [
        ("alpaca_hotpotqa.json", "alpaca", 500),
        ("alpaca_hotpotqa_multimethod.json", "alpaca", 734),
        ("gpt_hotpotqa.jsonl", "openai-jsonl", 500),
        ("gpt_multitask.jsonl", "openai-jsonl", 1344),
    ],
)
def test_finetune_files_read_every_row(shared, name, fmt, rows):
    result = read_file(FINETUNE / name)
    assert result.format == fmt
    assert result.rows == rows == len(result.trajectories)
    assert len({t.id for t in result.trajectories}) == rows
    assert all(t.source == name.split(".")[0] for t in result.trajectories)
    assert all(t.steps and t.question for t in result.trajectories)


def test_run_file_scores_and_source_from_file_name(shared):
    result = read_file(RUN_FILE)
    assert result.format == "fireact-run" and result.rows == 500
    assert round(mean(t.em for t in result.trajectories), 3) == 0.262
    assert round(mean(t.f1 for t in result.trajectories), 3) == 0.380
    [src] = result.sources
    assert (src.kind, src.task, src.split, src.model, src.attempted) == (
        "run", "hotpotqa", "dev", "llama_models_lora_llama-2-7b-d_1000", 500)
    assert src.meta["temperature"] == 0.7
    first = result.trajectories[0]
    assert (first.qid, first.gold, first.task, first.split) == ("6238", "seth macfarlane", "hotpotqa", "dev")
    assert first.question == "Who created the show with Wendy Schaal doing the voice of Francine?"
    assert first.final_answer == "Seth MacFarlane" and first.reward is True


def _chat_run(shared, tmp_path, n: int = 4):
    """A FireAct evaluation run in its chat variant, built from gpt_hotpotqa rows."""
    rows = [json.loads(line) for line in (FINETUNE / "gpt_hotpotqa.jsonl").read_text().splitlines()[:n]]
    system = {"role": "system", "content": "Solve a question answering task with interleaving Thought, Action, Observation steps."}
    data = {}
    for i, row in enumerate(rows):
        msgs = row["messages"]
        pred = next(m["content"] for m in reversed(msgs) if m["role"] == "assistant").split("finish[")[-1].rstrip("]")
        right = i % 2 == 0
        data[str(100 + i)] = {"reward": right, "em": right, "f1": 1.0 if right else 0.25, "gt": pred if right else "other",
                              "pred": pred, "prompt": [system], "traj": msgs}
    path = tmp_path / "hotpotqa_dev_100_104_gpt-4_0.0_2023-10-01-12-00-00.json"
    path.write_text(json.dumps(data, indent=4))
    return path, rows


def test_chat_variant_of_evaluation_runs(shared, tmp_path):
    path, rows = _chat_run(shared, tmp_path)
    result = read_file(path)
    assert result.format == "fireact-run" and result.rows == 4
    for t, row in zip(result.trajectories, rows):
        assistant = [m for m in row["messages"] if m["role"] == "assistant"]
        assert len(t.steps) == len(assistant)
        assert t.question == row["messages"][0]["content"]
        assert t.steps[-1].action.name == "finish"
    assert [t.em for t in result.trajectories] == [1.0, 0.0, 1.0, 0.0]
    assert [t.qid for t in result.trajectories] == ["100", "101", "102", "103"]
    assert result.sources[0].attempted == 4 and result.sources[0].model == "gpt-4"


def test_detect_format():
    assert detect_format("f", '[{"instruction": "q"}]') == "alpaca"
    assert detect_format("f", '{"messages": []}\n') == "openai-jsonl"
    assert detect_format("f", '{"record": "header"}\n') == "native"
    assert detect_format("f", '{\n    "12": {"traj": "x"}\n}') == "fireact-run"


# --- round trips through the store ------------------------------------------------------------------


@pytest.fixture
def db(tmp_path):
    return Store(tmp_path / "rt.duckdb")


def test_openai_jsonl_round_trip(shared, db, tmp_path):
    import_files(db, [FINETUNE / "gpt_multitask.jsonl"])
    out = tmp_path / "out.jsonl"
    assert export(db, "openai-jsonl", out) == 1344
    original = [json.loads(line) for line in (FINETUNE / "gpt_multitask.jsonl").read_text().splitlines()]
    again = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(again) == len(original)
    for a, b in zip(again, original):
        assert a == b


def test_alpaca_round_trip_is_byte_identical(shared, db, tmp_path):
    import_files(db, [FINETUNE / "alpaca_hotpotqa.json"])
    out = tmp_path / "out.json"
    assert export(db, "alpaca", out) == 500
    assert json.loads(out.read_text()) == json.loads((FINETUNE / "alpaca_hotpotqa.json").read_text())
    assert out.read_bytes() == (FINETUNE / "alpaca_hotpotqa.json").read_bytes()


def test_native_round_trip_keeps_revisions_and_annotations(shared, db, tmp_path):
    import_files(db, [FINETUNE / "gpt_hotpotqa.jsonl", FINETUNE / "alpaca_hotpotqa_multimethod.json", RUN_FILE])
    first = next(db.iter_trajectories(source="gpt_hotpotqa"))
    steps = [s.model_copy(deep=True) for s in first.steps]
    steps[0].flags.train = False
    steps[0].thought = "An edited thought."
    db.save_edit(first.model_copy(update={"steps": steps}), base_revision=0, author="ana", reason="clearer")
    db.annotate(Annotation(trajectory_id=first.id, author="ana", status="accepted", labels=["good"], rating=4, comment="ok"))
    one = tmp_path / "one.jsonl"
    export(db, "native", one)

    empty = Store(tmp_path / "empty.duckdb")
    import_files(empty, [one])
    two = tmp_path / "two.jsonl"
    export(empty, "native", two)
    assert two.read_bytes() == one.read_bytes()
    assert empty.stats() == db.stats()
    assert empty.lint_counts() == db.lint_counts()
    assert [r.rev for r in empty.list_revisions(first.id)] == [0, 1]
    [ann] = empty.list_annotations(first.id)
    assert (ann.status, ann.labels, ann.rating, ann.comment) == ("accepted", ["good"], 4, "ok")
    again = empty.get_trajectory(first.id)
    assert again.revision == 1 and again.steps[0].thought == "An edited thought." and not again.steps[0].flags.train


def test_messages_export_train_flags(shared, db, tmp_path):
    import_files(db, [FINETUNE / "gpt_hotpotqa.jsonl"])
    first = next(db.iter_trajectories())
    steps = [s.model_copy(deep=True) for s in first.steps]
    steps[0].flags.train = False
    db.save_edit(first.model_copy(update={"steps": steps}), base_revision=0, author="ana")
    out = tmp_path / "messages.jsonl"
    assert export(db, "messages", out) == 500
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    for row in rows:
        for m in row["messages"]:
            if m["role"] == "assistant":
                assert isinstance(m["train"], bool)
            elif m["content"].startswith("Observation: "):
                assert m["train"] is False
    edited = next(r for r in rows if r["id"] == first.id)
    assistant = [m for m in edited["messages"] if m["role"] == "assistant"]
    assert assistant[0]["train"] is False and all(m["train"] for m in assistant[1:])
    assert sum(m["train"] for r in rows for m in r["messages"] if m["role"] == "assistant") > 1000
    # OpenAI's own format carries the same flag as a weight
    export(db, "openai-jsonl", tmp_path / "weights.jsonl")
    lines = (tmp_path / "weights.jsonl").read_text().splitlines()
    weighted = next(r for r in map(json.loads, lines) if r["messages"][0]["content"] == first.question)
    assert [m.get("weight") for m in weighted["messages"] if m["role"] == "assistant"][0] == 0


# --- lints on hand-built trajectories ---------------------------------------------------------------


def _text(output: str, question: str = "Who wrote Dune?"):
    return trajectory_of(trajectory_from_text("unit", 0, question, output))


def _messages(messages: list[dict]):
    return trajectory_of(trajectory_from_messages("unit", 0, messages, "f", 1))


def _lints(t):
    return lint_trajectory(trajectory_data(t))


def _kinds(t) -> dict[str, list[int | None]]:
    found: dict[str, list[int | None]] = {}
    for x in _lints(t):
        found.setdefault(x.kind, []).append(x.step)
    return found


GOOD_END = "Thought: done\nAction: finish[Frank Herbert]\nObservation: Episode finished, reward = True\n"


def test_clean_trajectory_has_no_lints():
    t = _text("Thought: look\nAction: search[Dune]\nObservation: Dune is a novel by Frank Herbert.\n" + GOOD_END)
    assert _lints(t) == []
    assert t.reward is True and t.final_answer == "Frank Herbert"


@pytest.mark.parametrize(
    ("action", "detail"),
    [("search[Dune", "missing ']'"), ("lookup[Dune]", "unknown tool 'lookup'"),
     ("search[Dune] search[Herbert]", "several actions in one turn")],
)
def test_malformed_action(action, detail):
    t = _text(f"Thought: look\nAction: {action}\nObservation: something\n" + GOOD_END)
    [lint] = [x for x in _lints(t) if x.kind == "malformed_action"]
    assert (lint.step, lint.detail) == (0, detail)
    assert render_text(t.steps, True).startswith(f"Thought: look\nAction: {action}\n")


def test_several_actions_in_one_chat_turn():
    t = _messages([
        {"role": "user", "content": "Who wrote Dune?"},
        {"role": "assistant", "content": "Thought: a\nAction: search[Dune]\nAction: search[Herbert]"},
        {"role": "user", "content": "Observation: x"},
    ])
    assert _kinds(t)["malformed_action"] == [0]
    assert t.steps[0].raw == "Thought: a\nAction: search[Dune]\nAction: search[Herbert]"


def test_observation_none_and_empty_finish():
    t = _text("Thought: look\nAction: search[Dune]\nObservation: None\nThought: give up\nAction: finish[]\n"
              "Observation: Episode finished, reward = False\n")
    kinds = _kinds(t)
    assert kinds["observation_none"] == [0]
    assert kinds["empty_finish"] == [1]
    assert kinds["failed"] == [None]


def test_consecutive_assistant_turns():
    t = _messages([
        {"role": "user", "content": "Who wrote Dune?"},
        {"role": "assistant", "content": "Thought: a\nAction: search[Dune]"},
        {"role": "assistant", "content": "Thought: b\nAction: finish[Frank Herbert]"},
        {"role": "user", "content": "Observation: Episode finished, reward = True"},
    ])
    assert _kinds(t) == {"consecutive_assistant": [0]}


def test_duplicated_final_observation():
    t = _text("Thought: a\nAction: search[Dune]\nObservation: same text\nThought: b\nAction: search[Dune]\n"
              "Observation: same text\n")
    kinds = _kinds(t)
    assert kinds["duplicated_final_observation"] == [1]
    assert kinds["no_finish"] == [None]


def test_failed_reward():
    t = _text("Thought: a\nAction: finish[Tolkien]\nObservation: Episode finished, reward = False\n")
    assert t.reward is False
    assert _kinds(t) == {"failed": [None]}


def test_text_outside_fields_is_kept_raw_and_rendered_back():
    output = "Let me think.\nThought: a\nAction: finish[Frank Herbert]\nObservation: Episode finished, reward = True\n"
    t = _text(output)
    assert _kinds(t) == {"unparsed_text": [0]}
    assert t.steps[0].raw == "Let me think." and isinstance(t.steps[0], Step)
    assert render_text(t.steps, t.meta["trailing_newline"]) == output


def test_duplicate_questions_flag_every_repeat_but_the_first():
    trajs = [trajectory_from_text("unit", i, q, GOOD_END) for i, q in enumerate(["Who wrote Dune?", "who wrote dune",
                                                                               "Who wrote Emma?", "Who wrote Dune?"])]
    flagged = [x.trajectory_id for x in lint_duplicates(trajs)]
    assert flagged == [trajs[1]["id"], trajs[3]["id"]]
    assert [x.trajectory_id for x in lint_duplicates(trajs[2:], seen=[("unit", "who wrote emma")])] == [trajs[2]["id"]]
