"""OpenAI chat JSONL is read by DuckDB and its regular rows parsed in SQL; the rest go through the Python reader.
Whatever the mix, the database must come out exactly as the Python reader alone leaves it, and bad input must
fail as it does there: FILE:LINE, nothing written."""

from __future__ import annotations

import json
import random

import pytest

from fireact_core.errors import FormatError
from fireact_core.io.importer import import_files
from fireact_core.store import Store

from .tables import TABLES, snapshot


def u(text: str) -> dict:
    return {"role": "user", "content": text}


def a(text: str) -> dict:
    return {"role": "assistant", "content": text}


def react(question: str, *turns: tuple[str, str | None]) -> list[dict]:
    """A question, then (assistant turn, observation turn or None) pairs."""
    messages = [u(question)]
    for turn, observation in turns:
        messages.append(a(turn))
        if observation is not None:
            messages.append(u(observation))
    return messages


WON = "Observation: Episode finished, reward = True"
# (messages, whether the row is regular enough to be parsed in SQL)
ROWS = [
    (react("Question: Who wrote it?", ("Thought: I search.\nAction: search[author of it]", "Observation: Jane wrote it."),
           ("Thought: Jane.\nAction: finish[Jane]", WON)), True),
    (react("Is the sky blue?", ("Thought: it is\nAction: finish[yes]", "Observation: Episode finished, reward = 0")), True),
    (react("Question: Capital of France?", ("Thought: \nAction: finish[Paris]", None)), True),
    (react("Question: Year?", ("Thought: Wrong before, let me do a reflection: check again.\nAction: search[year]",
                               "Observation: 1999"), ("Thought: So 1999.\nAction: finish[1999]", WON)), True),
    (react("Question: Case?", ("Thought: x\nAction: Search[case]", "Observation: found"),
           ("Thought: y\nAction: Finish[Case]", "Observation: Episode finished, reward = TRUE")), True),
    (react("Question: Empty?", ("Thought: nothing\nAction: finish[\u00a0]", "Observation: done")), True),
    (react("Question: Empty again?", ("Thought: nothing\nAction: finish[]", None)), True),
    (react("Question: Nothing found?", ("Thought: s\nAction: search[a]", "Observation: \u00a0None "),
           ("Thought: s\nAction: search[b]", "Observation: None"), ("Thought: f\nAction: finish[x]", None)), True),
    (react("Question: Repeat?", ("Thought: s\nAction: search[a]", "Observation: same text"),
           ("Thought: s\nAction: search[a]", "Observation: same text"), ("Thought: f\nAction: finish[x]", None)), True),
    (react("Question: Raw observation?", ("Thought: s\nAction: search[a]b]", "no prefix here"),
           ("Thought: f\nAction: finish[a]b]", WON)), True),
    (react("Question: Two actions?", ("Thought: s\nAction: search[a] search[b]", "Observation: x")), False),
    (react("Question: Missing bracket?", ("Thought: s\nAction: search[abc", "Observation: x")), False),
    (react("Question: Long thought?", ("Thought: a\nb\nAction: search[x]", "Observation: x")), False),
    ([{"role": "system", "content": "You are an agent."}, u("Question: With a prompt?"),
      a("Thought: f\nAction: finish[p]")], False),
    ([u("Question: Weight 0?"), {"role": "assistant", "content": "Thought: f\nAction: finish[w]", "weight": 0}], False),
    ([u("Question: Weight null?"), {"role": "assistant", "content": "Thought: f\nAction: finish[w]", "weight": None}], True),
    ([u("Question: Weight 1?"), {"role": "assistant", "content": "Thought: f\nAction: finish[w]", "weight": 1}], False),
    (react("Question: Qué é «esto»?", ("Thought: é\u2003ü 😀\tx\nAction: finish[Ça]", WON)), True),
    (react("Question: The  quick,\x0bbrown fox\x1cis an  animal\u0085?", ("Thought: a\nAction: finish[A fox!]", WON)), True),
    (react("Question: Who wrote it?", ("Thought: again\nAction: finish[Jane]", WON)), True),
    (react("Question: Unknown tool?", ("Thought: l\nAction: lookup[x]", "Observation: x")), False),
    (react("Question: Trailing newline?", ("Thought: f\nAction: finish[x]\n", None)), False),
    (react("Question: Carriage return?", ("Thought: a\r\nAction: finish[x]", None)), True),
    (react("Question: No thought?", ("Action: finish[x]", None)), False),
    ([u("Question: Two turns?"), a("Thought: a\nAction: search[x]"), a("Thought: b\nAction: finish[y]")], False),
    (react("Question: Which one?\nA. red\nB. blue\nC. green\nD. pink", ("Thought: b\nAction: finish[B]", WON)), True),
    (react("Question: Question: twice?", ("Thought: t\nAction: finish[no]", WON)), True),
    (react("Question: Reflection word only?", ("Thought: a reflection of light\nAction: finish[no]", WON)), True),
    ([u("Question: Only a question?")], False),
    (react("Question: Numbers as text?", ("Thought: s\nAction: search[x]", "42"), ("Thought: f\nAction: finish[42]", WON)),
     False),
    (react("true", ("Thought: f\nAction: finish[yes]", WON)), False),
    # rows that break the conversation's layout: read as they are, linted, never refused
    ([a("Which river is longer, the Nile or the Amazon?"), a("Thought: t\nAction: finish[Nile]"), u(WON)], False),
    ([{"role": "system", "content": "Be brief."}, a("Thought: t\nAction: finish[x]")], False),
    ([], False),
    (react("Question: ", ("Thought: t\nAction: finish[x]", WON)), False),
    (react("   ", ("Thought: t\nAction: finish[x]", WON)), False),
    ([u("Question: Two observations?"), a("Thought: s\nAction: search[x]"), u("Observation: one"), u("Observation: two"),
      a("Thought: f\nAction: finish[x]")], False),
    ([u("Question: Train flags?"), {"role": "assistant", "content": "Thought: s\nAction: search[x]", "train": False},
      {"role": "user", "content": "Observation: o", "train": False},
      {"role": "assistant", "content": "Thought: f\nAction: finish[x]", "train": True}], False),
]


@pytest.fixture
def edge_file(tmp_path):
    """Every kind of row, with blank lines among them (ASCII ones, which DuckDB skips as the reader does) and
    keys the reader ignores."""
    out = tmp_path / "edge.jsonl"
    lines = []
    for n, (messages, _) in enumerate(ROWS):
        row = {"messages": messages, "id": n} if n % 5 == 0 else {"messages": messages}
        lines.append(json.dumps(row, ensure_ascii=n % 2 == 0))
        if n % 7 == 3:
            lines.append("   " if n % 2 else "")
    out.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def import_both(tmp_path, path, name, in_sql=True, **kwargs):
    """The file imported by the Python reader alone, and through DuckDB (which must have parsed rows in SQL)."""
    python = Store(tmp_path / f"{name}_python.duckdb")
    python_reports = import_files(python, [path], parallel=False, sql=False, **kwargs)
    sql = Store(tmp_path / f"{name}_sql.duckdb")
    parsed = []
    original = Store.parse_staged_chat

    def parse(self):  # on the class: a large file is parsed in the import's scratch database
        table, rest = original(self)
        parsed.append(table.num_rows)
        return table, rest

    Store.parse_staged_chat = parse
    try:
        sql_reports = import_files(sql, [path], parallel=False, sql=True, **kwargs)
    finally:
        Store.parse_staged_chat = original
    assert not in_sql or parsed and parsed[0] >= 0.45 * python_reports[0].rows
    return python, python_reports, sql, sql_reports


def test_regular_rows_are_parsed_in_sql_and_the_rest_in_python(edge_file, tmp_path):
    store = Store(tmp_path / "stage.duckdb")
    with store.session():
        rows, readable = store.stage_chat(str(edge_file), 1 << 24)
        parsed, rest = store.parse_staged_chat()
        store.drop_chat_stage()
    assert (rows, readable) == (len(ROWS), True)
    assert rest == [n for n, (_, regular) in enumerate(ROWS) if not regular]
    assert parsed.column("i").to_pylist() == [n for n, (_, regular) in enumerate(ROWS) if regular]
    questions = dict(zip(parsed.column("i").to_pylist(), parsed.column("question").to_pylist()))
    assert questions[0] == "Who wrote it?" and questions[1] == "Is the sky blue?"
    assert questions[17] == "Qué é «esto»?"


def test_sql_path_gives_the_python_database(edge_file, tmp_path):
    python, python_reports, sql, sql_reports = import_both(tmp_path, edge_file, "edge")
    assert sql_reports == python_reports
    assert python_reports[0].rows == len(ROWS)
    assert python_reports[0].lints == {
        "consecutive_assistant": 1, "consecutive_observation": 1, "duplicate_question": 1,
        "duplicated_final_observation": 1, "empty_finish": 2, "empty_trajectory": 2, "failed": 1,
        "malformed_action": 4, "no_finish": 7, "no_question": 4, "observation_none": 1, "role_order": 2}
    assert snapshot(sql) == snapshot(python)
    methods = dict(sql.stats().by_method)
    assert methods == dict(python.stats().by_method) and methods["reflexion"] == 1 and methods["io"] >= 1
    again = import_files(sql, [edge_file], parallel=False, sql=True)
    assert again[0].added == 0 and again[0].rows == len(ROWS)
    assert snapshot(sql) == snapshot(python)


@pytest.mark.parametrize("name", ["gpt_multitask.jsonl", "gpt_hotpotqa.jsonl"])
def test_sql_path_on_fireact_files(shared, tmp_path, name):
    python, python_reports, sql, sql_reports = import_both(tmp_path, shared / "finetune" / name, "fireact",
                                                           eval_splits=[shared / "tasks" / "strategyqa" / "dev.json"])
    assert sql_reports == python_reports
    assert snapshot(sql) == snapshot(python)


def test_byte_order_mark_and_unicode_blank_lines(shared, tmp_path):
    """The Python reader skips a line of Unicode spaces and a byte-order mark; the import comes out the same
    whichever reader takes the file."""
    lines = (shared / "finetune" / "gpt_multitask.jsonl").read_text().splitlines()
    lines.insert(700, "\u00a0\u2003")
    path = tmp_path / "multitask.jsonl"
    path.write_text("\ufeff" + "\n".join(lines) + "\n", encoding="utf-8")
    python, python_reports, sql, sql_reports = import_both(tmp_path, path, "bom", in_sql=False)
    assert sql_reports == python_reports and python_reports[0].rows == 1344
    assert snapshot(sql) == snapshot(python)


def test_sql_path_with_task_method_and_source_given(edge_file, tmp_path):
    python, python_reports, sql, sql_reports = import_both(tmp_path, edge_file, "given", task="bamboogle",
                                                           method="cot", source="mine")
    assert sql_reports == python_reports and sql_reports[0].source == "mine"
    assert snapshot(sql) == snapshot(python)
    assert dict(sql.stats().by_task) == {"bamboogle": len(ROWS)}


def test_many_rows_keep_their_order_and_ids(tmp_path, monkeypatch):
    """DuckDB reads the file in many pieces on several threads (small pieces: records are at most 64 KB here):
    every row keeps its index, so its id."""
    monkeypatch.setattr("fireact_core.io.importer.MAX_RECORD_BYTES", 1 << 16)
    rng = random.Random(7)
    words = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()
    path = tmp_path / "many.jsonl"
    with open(path, "w") as fh:
        for n in range(30_000):
            turns = [(f"Thought: {' '.join(rng.choices(words, k=20))}\nAction: search[{rng.choice(words)}]",
                      f"Observation: {' '.join(rng.choices(words, k=60))}") for _ in range(rng.randint(0, 3))]
            turns.append((f"Thought: done {n}\nAction: finish[{rng.choice(words)}]", WON))
            messages = react(f"Question: number {n} {rng.choice(words)}?", *turns)
            if n % 1000 == 999:
                messages[1]["content"] += "\nAction: search[again]"  # a few rows for the Python reader
            fh.write(json.dumps({"messages": messages}) + "\n")
    staged = Store(tmp_path / "many_staged.duckdb")
    with staged.session():
        assert staged.stage_chat(str(path), 1 << 16) == (30_000, True)
        parsed, rest = staged.parse_staged_chat()
        staged.drop_chat_stage()
    assert rest == list(range(999, 30_000, 1000))
    assert all(q.startswith(f"number {i} ") for i, q in zip(parsed.column("i").to_pylist(),
                                                             parsed.column("question").to_pylist()))
    python, python_reports, sql, sql_reports = import_both(tmp_path, path, "many")
    assert sql_reports == python_reports and sql_reports[0].added == 30_000
    assert snapshot(sql) == snapshot(python)


def test_file_parsed_wholly_in_sql_writes_its_steps_in_file_order(tmp_path):
    """Every row regular: the steps go in without the Python reader's rows, in file order (a staged import's
    copy reads them by stretches of rowids), as the Python reader writes them; a second import adds nothing."""
    path = tmp_path / "regular.jsonl"
    rows = [react(f"Question: q{n}?", *[(f"Thought: t{n}.{k}\nAction: search[s{k}]", f"Observation: o{k}")
                                        for k in range(n % 4)], (f"Thought: end\nAction: finish[a{n}]", WON))
            for n in range(500)]
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in rows))
    python, python_reports, sql, sql_reports = import_both(tmp_path, path, "regular")
    assert sql_reports == python_reports and sql_reports[0].added == 500
    assert snapshot(sql) == snapshot(python)
    with sql.db.connect() as con:
        stored = con.execute("SELECT t.question, s.idx FROM steps s JOIN trajectories t ON t.id = s.trajectory_id "
                             "ORDER BY s.rowid").fetchall()
    assert stored == [(f"q{n}?", k) for n in range(500) for k in range(n % 4 + 1)]
    assert import_files(sql, [path], parallel=False, sql=True)[0].added == 0
    assert snapshot(sql) == snapshot(python)
    # some of them gone: imported again, exactly those come back, each with its own steps
    with sql.db.transaction() as con:
        gone = [r[0] for r in con.execute("SELECT id FROM trajectories WHERE question IN ('q3?', 'q250?', 'q499?')").fetchall()]
        for table, key in (("steps", "trajectory_id"), ("lints", "trajectory_id"), ("trajectories", "id")):
            con.execute(f"DELETE FROM {table} WHERE {key} IN (SELECT unnest(?))", [gone])
    assert import_files(sql, [path], parallel=False, sql=True)[0].added == 3
    again, expected = snapshot(sql), snapshot(python)
    assert sorted(again.pop("trajectories")) == sorted(expected.pop("trajectories"))  # those 3 now come last
    assert again == expected


def test_bad_row_fails_with_its_line_and_writes_nothing(edge_file, tmp_path):
    store = Store(tmp_path / "bad.duckdb")
    import_files(store, [edge_file], sql=True)
    before = snapshot(store)
    lines = edge_file.read_text().splitlines()
    row = {"messages": [u("Question: fine"), a("Thought: x\nAction: search[y]"), u(5)]}
    lines.insert(20, json.dumps(row))
    bad = tmp_path / "bad.jsonl"
    bad.write_text("\n".join(lines) + "\n")
    with pytest.raises(FormatError) as err:
        import_files(store, [edge_file, bad], sql=True)
    assert err.value.path == str(bad) and err.value.line == 21
    assert "string 'role' and a string 'content'" in err.value.message
    assert snapshot(store) == before


@pytest.mark.parametrize("line, problem", [
    ('{"messages": [{"role": "user", "content": "x"}', "invalid JSON"),
    ('{"messages": "not a list"}', "'messages' list"),
    ('[1, 2]', "'messages' list"),
    (b'{"messages": [{"role": "user", "content": "\xff"}]}', "UTF-8"),
])
def test_unreadable_lines_fail_as_in_the_python_reader(edge_file, tmp_path, line, problem):
    store = Store(tmp_path / "unreadable.duckdb")
    data = edge_file.read_bytes().splitlines()
    data.insert(9, line if isinstance(line, bytes) else line.encode())
    bad = tmp_path / "unreadable.jsonl"
    bad.write_bytes(b"\n".join(data) + b"\n")
    with pytest.raises(FormatError) as err:
        import_files(store, [bad], sql=True)
    assert err.value.line == 10 and problem in err.value.message
    assert snapshot(store) == {name: [] for name in TABLES}


def test_switched_off_by_the_environment(edge_file, tmp_path, monkeypatch):
    store = Store(tmp_path / "off.duckdb")

    def refuse(*args, **kwargs):
        raise AssertionError("DuckDB staging used")

    monkeypatch.setattr(Store, "stage_chat", refuse)
    monkeypatch.setenv("FIREACT_IMPORT_SQL", "0")
    assert import_files(store, [edge_file])[0].added == len(ROWS)
    monkeypatch.delenv("FIREACT_IMPORT_SQL")
    with pytest.raises(AssertionError, match="staging used"):
        import_files(store, [edge_file])


# Rows regular enough for SQL that lean on each rule the SQL takes from the Python side: the reward word (Python's
# Unicode \w), the reflection test (its quick word test and its pattern, case-blind, anchored), white space as
# str.strip() sees it around "None" and inside finish[], tool names in any case, and the question prefix.
AWKWARD = [
    react("Question: Accented reward?", ("Thought: f\nAction: finish[a]", "Observation: Episode finished, reward = Trueé")),
    react("Question: Digit reward?", ("Thought: f\nAction: finish[a]", "Observation: Episode finished, reward = \u0661")),
    react("Question: Word reward?", ("Thought: f\nAction: finish[a]", "Observation: Episode finished, reward = 1_x")),
    react("Question: One reward?", ("Thought: f\nAction: finish[a]", "Observation: Episode finished, reward = 1.")),
    react("Question: Reflection first?", ("Thought: Reflection: I was wrong\nAction: finish[a]", WON)),
    react("Question: Reflection later?", ("Thought: so reflection: not at the start\nAction: finish[a]", WON)),
    react("Question: Shouted?", ("Thought: LET ME DO A REFLECTION now\nAction: SEARCH[x]", "Observation: x"),
          ("Thought: f\nAction: finish[a]", WON)),
    react("Question: Dotless?", ("Thought: let me do a reflectıon\nAction: finish[a]", WON)),
    react("Question: Spaces around None?", ("Thought: s\nAction: search[x]", "Observation: \u2028None\u3000\u1680"),
          ("Thought: f\nAction: finish[\u2029\u202f]", None)),
    react("Question: Not quite None?", ("Thought: s\nAction: search[x]", "Observation: \u200bNone"),
          ("Thought: f\nAction: finish[\u200b]", None)),
    react("Question: Capital finish?", ("Thought: f\nAction: Finish[a]", WON)),
    react("Question:  Two spaces?", ("Thought: \nAction: finish[]", "Observation: Episode finished, reward = 0")),
    react("question: lower prefix?", ("Thought: t\nAction: search[x]", "Observation: x"),
          ("Thought: t\nAction: search[x]", "Observation: x")),
]


def test_sql_rules_are_the_python_rules_on_awkward_rows(tmp_path):
    """Every row here is parsed in SQL, and the trajectories, steps and lints come out as the Python reader's."""
    path = tmp_path / "awkward.jsonl"
    path.write_text("".join(json.dumps({"messages": m}, ensure_ascii=False) + "\n" for m in AWKWARD), encoding="utf-8")
    staged = Store(tmp_path / "awkward_staged.duckdb")
    with staged.session():
        staged.stage_chat(str(path), 1 << 24)
        parsed, rest = staged.parse_staged_chat()
        staged.drop_chat_stage()
    assert rest == [] and parsed.num_rows == len(AWKWARD)
    python, python_reports, sql, sql_reports = import_both(tmp_path, path, "awkward")
    assert sql_reports == python_reports
    assert snapshot(sql) == snapshot(python)
    with python.db.connect() as con:
        rows = con.execute("SELECT question, method, reward, final_answer FROM trajectories ORDER BY rowid").fetchall()
    by_question = {q: (m, r, f) for q, m, r, f in rows}
    assert by_question["Accented reward?"][1] is False and by_question["Digit reward?"][1] is False
    assert by_question["One reward?"][1] is True
    assert [by_question[q][0] for q in ("Reflection first?", "Reflection later?", "Shouted?", "Dotless?")] == [
        "reflexion", "cot", "reflexion", "cot"]
    assert by_question["Capital finish?"][2] is None
    lints = python_reports[0].lints
    assert lints["observation_none"] == 1 and lints["empty_finish"] == 2 and lints["duplicated_final_observation"] == 1
