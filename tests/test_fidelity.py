"""FireAct's real files, exactly: every release file round-trips byte for byte, rows that break a convention are
imported as they are with a lint (never refused), and MMLU items are told apart in every format."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from fireact_core.cli import main
from fireact_core.io.exporter import export
from fireact_core.io.importer import import_files
from fireact_core.mixing.versions import MixSpec, plan_mix
from fireact_core.records import stable_id
from fireact_core.store import Store

from .tables import snapshot

ROUND_TRIPS = [("gpt_multitask.jsonl", "openai-jsonl"), ("gpt_hotpotqa.jsonl", "openai-jsonl"),
               ("alpaca_multitask.json", "alpaca"), ("alpaca_hotpotqa_multimethod.json", "alpaca"),
               ("alpaca_hotpotqa.json", "alpaca")]


@pytest.mark.parametrize("name, fmt", ROUND_TRIPS)
def test_release_files_round_trip_byte_for_byte(shared, tmp_path, name, fmt):
    store = Store(tmp_path / "rt.duckdb")
    source = shared / "finetune" / name
    import_files(store, [source], parallel=False)
    out = tmp_path / name
    export(store, fmt, out)
    assert out.read_bytes() == source.read_bytes()


def test_mmlu_options_in_alpaca_output_belong_to_the_question(shared, tmp_path):
    store = Store(tmp_path / "mmlu.duckdb")
    [report] = import_files(store, [shared / "finetune" / "alpaca_multitask.json"], parallel=False)
    assert report.lints["options_in_output"] == 456
    [t] = [t for t in store.iter_trajectories() if t.question.startswith("Question: A person is able to tell")]
    assert t.task == "mmlu" and t.final_answer == "D"
    assert t.question.endswith("and also\nA. making\nB. eating\nC. crying\nD. noting")
    assert t.steps[0].thought.startswith("The question is about") and t.steps[0].raw is None
    assert not any(s.raw for s in t.steps)
    # the chat exports give the options with the question, never as a turn of their own
    out = tmp_path / "chat.jsonl"
    export(store, "openai-jsonl", out)
    chat = {json.loads(line)["messages"][0]["content"]: json.loads(line)["messages"]
            for line in out.read_text().splitlines()}
    original = [json.loads(line)["messages"] for line in (shared / "finetune" / "gpt_multitask.jsonl").open()]
    messages = chat["Question: A person is able to tell what shape a toy is by holding it in their hands and also"
                    "\nA. making\nB. eating\nC. crying\nD. noting"]
    assert [m["role"] for m in messages] == ["user", "assistant", "user"]
    assert all(m[0]["role"] == "user" and m[1]["content"].startswith("Thought: ") for m in chat.values())
    assert messages == next(m for m in original if m[0]["content"] == messages[0]["content"])


def test_task_counts_agree_between_alpaca_and_chat_files(shared, tmp_path):
    store = Store(tmp_path / "tasks.duckdb")
    import_files(store, [shared / "finetune" / "alpaca_multitask.json", shared / "finetune" / "gpt_multitask.jsonl"],
                 parallel=False)
    counts = {s: Counter() for s in ("alpaca_multitask", "gpt_multitask")}
    for t in store.iter_trajectories():
        counts[t.source][t.task] += 1
    assert counts["alpaca_multitask"] == counts["gpt_multitask"]
    assert counts["gpt_multitask"]["mmlu"] == 456


def u(text):
    return {"role": "user", "content": text}


def a(text):
    return {"role": "assistant", "content": text}


IRREGULAR = [
    # (messages, the lints its layout gets)
    ([a("Which river is longer, the Nile or the Amazon?"), a("Thought: The Nile.\nAction: finish[Nile]"),
      u("Observation: Episode finished, reward = True")], {"role_order"}),
    ([u("Question: Two observations?"), a("Thought: s\nAction: search[x]"), u("Observation: one"),
      u("Observation: two"), a("Thought: f\nAction: finish[x]")], {"consecutive_observation"}),
    ([u("Question: "), a("Thought: t\nAction: finish[x]")], {"no_question"}),
    ([], {"no_question", "empty_trajectory", "no_finish"}),
    ([u("Question: Only asked?")], {"empty_trajectory", "no_finish"}),
    ([u("Question: Unparsed?"), a("I think it is x."), u("Observation: ok")], {"malformed_action", "no_finish"}),
    ([u("Question: A tool answers?"), a("Thought: s\nAction: search[x]"), {"role": "tool", "content": "Observation: y"},
      a("Thought: f\nAction: finish[y]")], {"role_order"}),
]


@pytest.fixture
def irregular_file(shared, tmp_path):
    """FireAct's chat file with rows that break its conventions put among its own."""
    lines = (shared / "finetune" / "gpt_hotpotqa.jsonl").read_text().splitlines()[:40]
    for n, (messages, _) in enumerate(IRREGULAR):
        lines.insert(5 + 6 * n, json.dumps({"messages": messages}))
    path = tmp_path / "irregular.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("sql", [True, False])
def test_rows_breaking_a_convention_are_imported_verbatim_with_a_lint(irregular_file, tmp_path, sql):
    store = Store(tmp_path / "lenient.duckdb")
    [report] = import_files(store, [irregular_file], parallel=False, sql=sql)
    assert report.rows == report.added == 47
    assert report.lints["role_order"] == 2 and report.lints["consecutive_observation"] == 1
    assert report.lints["no_question"] == 2 and report.lints["empty_trajectory"] == 2
    ids = [stable_id("irregular", 5 + 6 * n) for n in range(len(IRREGULAR))]
    lints = store.history_of(ids)[2]
    for tid, (_, kinds) in zip(ids, IRREGULAR):
        assert {x.kind for x in lints.get(tid, [])} == kinds, tid
    assert store.get_trajectory(ids[0]).question == "Which river is longer, the Nile or the Amazon?"
    assert store.get_trajectory(ids[0]).final_answer == "Nile"
    out = tmp_path / "out.jsonl"
    export(store, "openai-jsonl", out)
    assert out.read_bytes() == irregular_file.read_bytes()


def test_sql_and_python_readers_agree_on_irregular_rows(irregular_file, tmp_path):
    python, sql = Store(tmp_path / "py.duckdb"), Store(tmp_path / "sql.duckdb")
    assert import_files(python, [irregular_file], sql=False) == import_files(sql, [irregular_file], sql=True)
    assert snapshot(python) == snapshot(sql)


def test_unreadable_rows_are_still_refused(irregular_file, tmp_path, capsys):
    db = tmp_path / "refused.duckdb"
    assert main(["--db", str(db), "import", str(irregular_file)]) == 0
    before = snapshot(Store(db))
    lines = irregular_file.read_text().splitlines()
    lines.insert(3, json.dumps({"messages": [u("Question: fine"), {"role": "assistant", "content": 7}]}))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    capsys.readouterr()
    assert main(["--db", str(db), "import", str(bad)]) == 2
    assert f"{bad}:4:" in capsys.readouterr().err
    assert snapshot(Store(db)) == before


def test_same_file_again_adds_nothing_and_another_file_under_its_name_loses_no_row(shared, tmp_path, capsys):
    rows = (shared / "finetune" / "gpt_hotpotqa.jsonl").read_text().splitlines()
    first, second = tmp_path / "a" / "run.jsonl", tmp_path / "b" / "run.jsonl"
    for path, chosen in ((first, rows[:5]), (second, rows[:2] + rows[10:15])):
        path.parent.mkdir()
        path.write_text("\n".join(chosen) + "\n")
    db = str(tmp_path / "identity.duckdb")
    assert main(["--db", db, "import", str(first)]) == 0
    assert main(["--db", db, "import", str(first)]) == 0
    assert "5 rows read (openai-jsonl), 0 trajectories added to 'run';" in capsys.readouterr().out
    assert main(["--db", db, "import", str(second)]) == 0
    out = capsys.readouterr().out
    assert "7 rows read (openai-jsonl), 7 trajectories added to 'run-2' (another file holds 'run')" in out
    assert main(["--db", db, "import", str(second), str(first)]) == 0
    assert capsys.readouterr().out.count(" 0 trajectories added") == 2
    store = Store(db)
    assert store.count_trajectories("run") == 5 and store.count_trajectories("run-2") == 7
    assert store.get_source("run").meta["sha256"] != store.get_source("run-2").meta["sha256"]
    for source, path in (("run", first), ("run-2", second)):
        out = tmp_path / f"{source}.jsonl"
        export(store, "openai-jsonl", out, source=source)
        assert out.read_bytes() == path.read_bytes()
    [report] = import_files(store, [second], source="run", parallel=False)
    assert (report.source, report.added, report.renamed_from) == ("run-2", 0, "run")


@pytest.mark.parametrize("sql", [True, False])
def test_messages_export_round_trips_its_train_flags(shared, tmp_path, sql):
    store = Store(tmp_path / "flags.duckdb")
    import_files(store, [shared / "finetune" / "gpt_hotpotqa.jsonl"], parallel=False)
    trajs = list(store.iter_trajectories())
    for t in trajs[:50]:
        t.steps[0].flags.train = False
    flagged = Store(tmp_path / "flagged.duckdb")
    flagged.save_trajectories(trajs)
    out = tmp_path / "messages.jsonl"
    export(flagged, "messages", out)
    again = Store(tmp_path / "again.duckdb")
    import_files(again, [out], parallel=False, sql=sql)
    read = list(again.iter_trajectories())
    assert [[s.flags.train for s in t.steps] for t in read] == [[s.flags.train for s in t.steps] for t in trajs]
    assert [t.question for t in read] == [t.question for t in trajs]
    out2 = tmp_path / "messages2.jsonl"
    export(again, "messages", out2)
    strip = [{k: v for k, v in json.loads(line).items() if k != "id"} for line in out.read_text().splitlines()]
    assert [{k: v for k, v in json.loads(line).items() if k != "id"} for line in out2.read_text().splitlines()] == strip


def test_mixer_leaves_irregular_rows_out_unless_asked(irregular_file, tmp_path):
    store = Store(tmp_path / "mix.duckdb")
    import_files(store, [irregular_file], parallel=False)
    spec = {"sources": ["irregular"], "size": 1000, "val_fraction": 0, "filters": {"dedupe": False}}
    plan = plan_mix(store, MixSpec.parse(spec))
    assert plan.funnel["irregular layout"] == 6 and plan.size == 41
    spec["filters"]["keep_irregular"] = True
    assert plan_mix(store, MixSpec.parse(spec)).size == 47


def test_alpaca_rows_breaking_a_convention_round_trip_with_their_lints(shared, tmp_path):
    rows = json.loads((shared / "finetune" / "alpaca_hotpotqa.json").read_text())[:6]
    rows[1]["output"] = ""
    rows[2]["instruction"] = ""
    rows[3]["output"] = rows[3]["output"].replace("\nThought: ", "\nObservation: twice\nThought: ", 1)
    path = tmp_path / "odd.json"
    path.write_text(json.dumps(rows, indent=4))
    store = Store(tmp_path / "odd.duckdb")
    [report] = import_files(store, [path], parallel=False)
    assert report.added == 6
    assert {k: report.lints.get(k) for k in ("empty_trajectory", "no_question", "consecutive_observation")} == {
        "empty_trajectory": 1, "no_question": 1, "consecutive_observation": 1}
    out = tmp_path / "out.json"
    export(store, "alpaca", out)
    assert json.loads(out.read_text()) == rows


def test_a_row_without_a_question_is_fixed_in_the_editor(irregular_file, tmp_path, monkeypatch):
    from tests.helpers.pages import button, ok, open_page

    db = tmp_path / "editor.duckdb"
    import_files(Store(db), [irregular_file], parallel=False)
    monkeypatch.setenv("FIREACT_DB", str(db))
    tid = stable_id("irregular", 5 + 6 * 2)  # `Question: ` and a finish
    assert {x.kind for x in Store(db).lints_of(tid)} == {"no_question"}
    at = ok(open_page("2_Trajectory.py", id=tid))
    prefix = next(w.key for w in at.text_input if w.key and w.key.endswith(":question")).removesuffix("question")
    at.text_input(key=f"{prefix}question").input("Which letter comes first?").run()
    button(ok(at), "Save").click().run()
    ok(at)
    saved = Store(db).get_trajectory(tid)
    assert saved.question == "Which letter comes first?" and saved.revision == 1
    assert not Store(db).lints_of(tid)
