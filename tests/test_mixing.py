"""The mixer on real FireAct data: ratios, shortfalls, seeds, filters, splits, snapshots, exports, loss masks."""

from __future__ import annotations

import hashlib
import json
import shutil

import pyarrow.parquet as pq
import pytest

from fireact_core.cli import main
from fireact_core.mixing.export import DATASET_FORMATS, export_dataset, messages_rows
from fireact_core.errors import ConflictError, FireactError
from fireact_core.io.lint import load_eval_questions
from fireact_core.io.masks import IGNORE, flagged_messages, load_tokenizer, preview_spans, spans_html, tokenize_example
from fireact_core.mixing.versions import MixSpec, MixSpecError, apportion, lineage, plan_mix, save_mix
from fireact_core.records import Annotation
from fireact_core.store import Store

SOURCES = ["gpt_multitask", "alpaca_hotpotqa_multimethod"]
ISSUE_SPEC = {
    "sources": SOURCES, "task_ratio": {"hotpotqa": 0.5, "strategyqa": 0.25, "mmlu": 0.25},
    "method_ratio": {"react": 0.5, "cot": 0.5}, "size": 400, "val_fraction": 0.1, "seed": 1,
    "filters": {"only_correct": False, "only_accepted": False, "dedupe": True, "max_steps": None,
                "exclude_lints": ["eval_contamination"]},
    "loss_mask": "observations", "allow_upsample": False,
}


@pytest.fixture(scope="module")
def base_db(tmp_path_factory, shared):
    from fireact_core.io.importer import import_files

    path = tmp_path_factory.mktemp("mix") / "base.duckdb"
    import_files(Store(path), [shared / "finetune" / "gpt_multitask.jsonl",
                               shared / "finetune" / "alpaca_hotpotqa_multimethod.json"],
                 eval_splits=[shared / "tasks" / "strategyqa" / "dev.json"])
    return path


@pytest.fixture
def mix_store(base_db, tmp_path):
    path = tmp_path / "mix.duckdb"
    shutil.copy(base_db, path)
    return Store(path)


def spec(**changes) -> MixSpec:
    data = json.loads(json.dumps(ISSUE_SPEC))
    for key, value in changes.items():
        if key in data["filters"] or key == "dedupe_keep":
            data["filters"][key] = value
        else:
            data[key] = value
    return MixSpec.parse(data)


def summary_column(store: Store, ids, column: str) -> dict[str, object]:
    with store.db.connect() as con:
        rows = dict(con.execute(f"SELECT id, {column} FROM trajectories").fetchall())
    return {i: rows[i] for i in ids}


def member_questions(store: Store, ids) -> dict[str, str]:
    return summary_column(store, ids, "qnorm")


# ---- spec validation -------------------------------------------------------------------------------------

def test_spec_normalises_ratios():
    s = MixSpec.parse({**ISSUE_SPEC, "task_ratio": {"hotpotqa": 2, "strategyqa": 1, "mmlu": 1},
                       "method_ratio": {"ReAct": 3, "cot": 1, "io": 0}})
    assert s.task_ratio == {"hotpotqa": 0.5, "mmlu": 0.25, "strategyqa": 0.25}
    assert s.method_ratio == {"cot": 0.25, "react": 0.75}
    assert sum(s.shares({}).values()) == pytest.approx(1.0)


@pytest.mark.parametrize("change, words", [
    ({"method_ratio": None}, "task_ratio' is given but 'method_ratio' is not"),
    ({"task_ratio": None}, "method_ratio' is given but 'task_ratio' is not"),
    ({"cells": {"hotpotqa/react": 1}}, "not both"),
    ({"task_ratio": {"hotpotqa": -1, "mmlu": 2}}, "at least 0"),
    ({"method_ratio": {"react": 0, "cot": 0}}, "add up to 0"),
    ({"size": 0}, "size"),
    ({"val_fraction": 1.0}, "val_fraction"),
    ({"filters": {"exclude_lints": ["no_such_lint"]}}, "unknown lint kind"),
    ({"sizes": 10}, "sizes"),
    ({"loss_mask": "prompt"}, "loss_mask"),
])
def test_spec_rejects_bad_input(change, words):
    with pytest.raises(MixSpecError, match="mix spec") as err:
        MixSpec.parse({**ISSUE_SPEC, **change})
    assert words in str(err.value)


def test_spec_cells_grid_and_bad_keys():
    s = MixSpec.parse({"cells": {"hotpotqa/react": 3, "mmlu/cot": 1}, "size": 8})
    assert s.shares({}) == {"hotpotqa/react": 0.75, "mmlu/cot": 0.25}
    with pytest.raises(MixSpecError, match="task/method"):
        MixSpec.parse({"cells": {"hotpotqa": 1}, "size": 8})
    with pytest.raises(MixSpecError, match="invalid JSON"):
        MixSpec.parse("{not json")


def test_apportion_is_within_one_and_adds_up():
    shares = {"a": 0.5, "b": 1 / 3, "c": 1 / 6}
    for size in (1, 7, 100, 401):
        counts = apportion(size, shares)
        assert sum(counts.values()) == size
        assert all(abs(counts[c] - size * s) < 1 for c, s in shares.items())
    assert apportion(400, {"x": 0.25, "y": 0.75}) == {"x": 100, "y": 300}


# ---- selection on real data ------------------------------------------------------------------------------

def test_mix_matches_ratios_and_reports_shortfall(mix_store):
    plan = plan_mix(mix_store, spec())
    cells = plan.cells.set_index("cell")
    assert set(cells.index) == {f"{t}/{m}" for t in ("hotpotqa", "strategyqa", "mmlu") for m in ("react", "cot")}
    for cell, row in cells.iterrows():
        assert row.asked == round(400 * row.share)
        if row.available >= row.asked:
            assert row.got == row.asked, cell
        else:
            assert row.got == row.available and row.short == row.asked - row.available, cell
    short = cells[cells["short"] > 0]
    assert list(short.index) == ["strategyqa/cot"]
    assert plan.size == cells["got"].sum() < 400  # never silently filled from other cells
    assert len(plan.messages) == 1 and "strategyqa/cot" in plan.messages[0] and "renormalised" in plan.messages[0]
    assert plan.members.groupby("cell").size().to_dict() == cells["got"][cells["got"] > 0].to_dict()


def test_upsample_only_when_allowed(mix_store):
    plan = plan_mix(mix_store, spec(allow_upsample=True))
    cells = plan.cells.set_index("cell")
    assert cells.loc["strategyqa/cot", "got"] == cells.loc["strategyqa/cot", "asked"] == 50
    assert plan.size == 400
    repeated = plan.members[plan.members["cell"] == "strategyqa/cot"]["id"]
    assert repeated.nunique() == cells.loc["strategyqa/cot", "available"] < len(repeated)
    assert "upsampling is allowed" in plan.messages[0]


def test_same_seed_same_sample_other_seed_other_sample(mix_store):
    a = plan_mix(mix_store, spec()).members["id"].tolist()
    b = plan_mix(mix_store, spec()).members["id"].tolist()
    c = plan_mix(mix_store, spec(seed=2)).members["id"].tolist()
    assert a == b
    assert set(a) != set(c)
    assert len(set(a) & set(c)) < len(a)


def test_dedupe_and_contamination_remove_what_the_lints_found(mix_store, shared):
    counts = mix_store.lint_counts()
    everything = spec(size=5000, task_ratio=None, method_ratio=None, exclude_lints=[], dedupe=False)
    raw = plan_mix(mix_store, everything)
    eval_keys = load_eval_questions([shared / "tasks" / "strategyqa" / "dev.json"])
    contaminated = [q for q in member_questions(mix_store, raw.members["id"]).values() if q in eval_keys]
    assert len(contaminated) == counts["eval_contamination"] == 37

    cleaned = plan_mix(mix_store, everything.model_copy(update={"filters": spec().filters}))
    assert cleaned.funnel["flagged by eval_contamination"] == 37
    questions = member_questions(mix_store, cleaned.members["id"])
    assert not [q for q in questions.values() if q in eval_keys]
    assert len(set(questions.values())) == len(questions)  # one trajectory per question
    assert cleaned.funnel["duplicate questions"] >= counts["duplicate_question"]
    flagged_dupes = {r[0] for r in _lint_ids(mix_store, "duplicate_question")}
    for tid in flagged_dupes:  # each question the lint flagged as asked before is kept once at most
        q = member_questions(mix_store, [tid])[tid]
        assert list(questions.values()).count(q) <= 1


def _lint_ids(store, kind):
    with store.db.connect() as con:
        return con.execute("SELECT DISTINCT trajectory_id FROM lints WHERE kind = ?", [kind]).fetchall()


def test_no_question_in_both_train_and_validation(mix_store):
    plan = plan_mix(mix_store, spec(dedupe=False, val_fraction=0.2, size=1200, exclude_lints=[]))
    m = plan.members.assign(qnorm=lambda d: d["id"].map(member_questions(mix_store, d["id"])))
    assert m["qnorm"].duplicated().any()  # repeated questions are in the mix
    train, val = set(m[m["split"] == "train"]["qnorm"]), set(m[m["split"] == "val"]["qnorm"])
    assert not train & val
    assert abs(len(m[m["split"] == "val"]) - 0.2 * len(m)) <= 5
    assert list(m["position"]) == list(range(len(m)))


def test_filters_correct_steps_and_reviews(mix_store):
    base = plan_mix(mix_store, spec(size=3000, task_ratio=None, method_ratio=None, dedupe=False, exclude_lints=[]))
    assert base.size == 2078
    correct = plan_mix(mix_store, base.spec.model_copy(update={"filters": spec(only_correct=True).filters}))
    assert correct.funnel["not correct"] == 40
    short = plan_mix(mix_store, MixSpec.parse({"size": 3000, "filters": {"dedupe": False, "max_steps": 2}}))
    assert short.size and short.funnel["too many steps"] > 0
    assert set(summary_column(mix_store, short.members["id"], "n_steps").values()) <= {0, 1, 2}
    ids = base.members["id"].head(3).tolist()
    mix_store.annotate(Annotation(trajectory_id=ids[0], author="ann", status="accepted"))
    mix_store.annotate(Annotation(trajectory_id=ids[1], author="ann", status="rejected"))
    mix_store.annotate(Annotation(trajectory_id=ids[2], author="ann", status="rejected"))
    mix_store.annotate(Annotation(trajectory_id=ids[2], author="ann", status="accepted"))
    accepted = plan_mix(mix_store, MixSpec.parse({"size": 10, "filters": {"only_accepted": True}}))
    assert sorted(accepted.members["id"]) == sorted([ids[0], ids[2]])
    kept = plan_mix(mix_store, MixSpec.parse({"size": 3000, "filters": {"dedupe": False, "exclude_rejected": True}}))
    assert kept.size == 2077 and ids[1] not in set(kept.members["id"])


def test_unknown_source_is_an_error(mix_store):
    with pytest.raises(MixSpecError, match="no source named nope"):
        plan_mix(mix_store, spec(sources=["nope"]))


# ---- versions, snapshots and exports -----------------------------------------------------------------------

def _export_digests(store, name, tmp_path):
    out = {}
    for fmt in DATASET_FORMATS:
        path = tmp_path / f"{name}.{fmt}"
        export_dataset(store, name, fmt, path, force=True)  # the second call replaces the first
        out[fmt] = hashlib.sha256(path.read_bytes()).hexdigest()
    return out


def test_saved_version_never_changes_when_a_member_is_edited(mix_store, tmp_path):
    version = save_mix(mix_store, spec(), "mix-a", author="ann")
    assert version.size == 383 and version.n_train + version.n_val == 383
    assert version.summary()["cells"]["strategyqa/cot"] == 33
    before = _export_digests(mix_store, "mix-a", tmp_path)
    members = mix_store.dataset_members("mix-a")
    tid = members["trajectory_id"][0]
    original = mix_store.get_trajectory(tid)
    snapshot = next(t for _, t in mix_store.iter_dataset_trajectories("mix-a") if t.id == tid)
    assert snapshot == original

    edited = original.model_copy(update={"question": "An edited question?", "final_answer": "edited"})
    mix_store.save_edit(edited, base_revision=original.revision, author="bob", reason="test")
    assert _export_digests(mix_store, "mix-a", tmp_path) == before
    again = mix_store.dataset_members("mix-a")
    assert again.equals(members) and mix_store.get_dataset_version("mix-a").content_hash == version.content_hash
    assert next(t for _, t in mix_store.iter_dataset_trajectories("mix-a") if t.id == tid) == original

    child = save_mix(mix_store, spec(), "mix-b", parent="mix-a")
    assert child.content_hash != version.content_hash  # the new version takes the edit
    kept = child.spec == version.spec
    assert kept and lineage(mix_store, "mix-b") == ["mix-b", "mix-a"]
    assert [v.name for v in mix_store.list_dataset_versions()] == ["mix-a", "mix-b"]


def test_content_hash_covers_the_loss_mask_and_the_step_switches(mix_store):
    observed = save_mix(mix_store, spec(size=20), "masked")
    everything = save_mix(mix_store, spec(size=20, loss_mask="none"), "unmasked")
    same_members = mix_store.dataset_members("masked").equals(mix_store.dataset_members("unmasked"))
    assert same_members and observed.content_hash != everything.content_hash

    first = mix_store.get_trajectory(mix_store.dataset_members("masked")["trajectory_id"][0])
    steps = [first.steps[0].model_copy(update={"flags": first.steps[0].flags.model_copy(update={"train": False})}),
             *first.steps[1:]]
    mix_store.save_edit(first.model_copy(update={"steps": steps}), base_revision=first.revision, author="ann",
                        reason="switch the first step off")
    switched = save_mix(mix_store, spec(size=20), "masked-again")
    assert list(mix_store.dataset_members("masked-again")["trajectory_id"]) == \
        list(mix_store.dataset_members("masked")["trajectory_id"])
    assert switched.content_hash not in (observed.content_hash, everything.content_hash)


def test_version_names_are_unique_and_checked(mix_store):
    save_mix(mix_store, spec(size=20), "v1")
    with pytest.raises(ConflictError, match="exists already"):
        save_mix(mix_store, spec(size=30), "v1")
    with pytest.raises(MixSpecError, match="dataset name"):
        save_mix(mix_store, spec(size=30), "bad name/..")
    assert [v.size for v in mix_store.list_dataset_versions()] == [20]
    assert len(mix_store.dataset_members("v1")) == 20


def test_messages_export_marks_observations_and_step_flags(mix_store, tmp_path):
    plan = plan_mix(mix_store, spec(size=40))
    tid = plan.members["id"][plan.members["method"] == "react"].iloc[0]
    t = mix_store.get_trajectory(tid)
    t.steps[0].flags.train = False
    mix_store.save_edit(t, base_revision=t.revision, author="ann")
    save_mix(mix_store, spec(size=40), "masked")
    save_mix(mix_store, spec(size=40, loss_mask="none"), "unmasked")
    path = tmp_path / "masked.jsonl"
    assert export_dataset(mix_store, "masked", "messages", path, split="train") == mix_store.get_dataset_version("masked").n_train
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    assert {r["split"] for r in rows} == {"train"}
    rows = list(messages_rows(mix_store, "masked"))
    for row in rows:
        first_assistant = next(i for i, m in enumerate(row["messages"]) if m["role"] == "assistant")
        for i, m in enumerate(row["messages"]):
            if i < first_assistant or m["content"].startswith("Observation: "):
                assert m["train"] is False
    edited = next(r for r in rows if r["id"] == tid)["messages"]
    assistants = [m for m in edited if m["role"] == "assistant"]
    assert assistants[0]["train"] is False and all(m["train"] for m in assistants[1:])
    open_rows = list(messages_rows(mix_store, "unmasked"))
    observations = [m for r in open_rows if r["id"] != tid for m in r["messages"] if m["content"].startswith("Observation: ")]
    assert observations and all(m["train"] for m in observations)
    react = next(r for r in open_rows if r["method"] == "react" and r["id"] != tid)
    assert all(m["train"] for m in react["messages"][1:])


def test_parquet_export_by_split(mix_store, tmp_path):
    v = save_mix(mix_store, spec(size=60), "pq")
    path = tmp_path / "val.parquet"
    assert export_dataset(mix_store, "pq", "parquet", path, split="val") == v.n_val
    table = pq.read_table(path).to_pylist()
    assert {r["split"] for r in table} == {"val"} and len(table) == v.n_val
    assert all(not m["train"] for r in table for m in r["messages"] if m["content"].startswith("Observation: "))
    with pytest.raises(FireactError, match="unknown split"):
        export_dataset(mix_store, "pq", "parquet", path, split="test")
    with pytest.raises(FireactError, match="no dataset version"):
        export_dataset(mix_store, "nope", "parquet", path)


# ---- loss masks and tokens -------------------------------------------------------------------------------

def test_tokenized_example_masks_exactly_prompt_and_observations(mix_store, tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    plan = plan_mix(mix_store, spec(size=40))
    tid = plan.members["id"][plan.members["method"] == "react"].iloc[0]
    t = mix_store.get_trajectory(tid)
    ex = tokenize_example(t, tok, "observations")
    assert len(ex["input_ids"]) == len(ex["labels"]) == len(ex["attention_mask"]) == ex["n_tokens"]
    assert not ex["truncated"]
    masked = tok.decode([i for i, lab in zip(ex["input_ids"], ex["labels"]) if lab == IGNORE])
    trained = tok.decode([lab for lab in ex["labels"] if lab != IGNORE])
    messages = flagged_messages(t, "observations")
    rendered = [tok.apply_chat_template([{"role": m["role"], "content": m["content"]}], tokenize=False) for m in messages]
    question = [{"role": "user", "content": "q"}]
    header = tok.apply_chat_template(question, tokenize=False, add_generation_prompt=True)[
        len(tok.apply_chat_template(question, tokenize=False)):]  # the generation prompt, "<s>assistant\n"
    assert header == "<s>assistant\n"
    assert all(r.startswith(header) for r, m in zip(rendered, messages) if m["role"] == "assistant")
    assert masked == "".join(r if m["role"] != "assistant" else header for r, m in zip(rendered, messages))
    assert trained == "".join(r[len(header):] for r, m in zip(rendered, messages) if m["role"] == "assistant")
    assert sum(r.count("Observation: ") for r, m in zip(rendered, messages) if m["role"] != "assistant") == len(
        [s for s in t.steps if s.observation is not None])
    assert ex["input_ids"] == tok.apply_chat_template(
        [{"role": m["role"], "content": m["content"]} for m in messages], tokenize=True)["input_ids"]

    everything = tokenize_example(t, tok, "none")
    assert everything["input_ids"] == ex["input_ids"]
    prompt = len(tok.apply_chat_template([{"role": "user", "content": messages[0]["content"]}], tokenize=True)["input_ids"])
    assert all(lab == IGNORE for lab in everything["labels"][:prompt])
    untrained = tok.decode([i for i, lab in zip(everything["input_ids"][prompt:], everything["labels"][prompt:])
                            if lab == IGNORE])
    assert untrained == header * sum(m["role"] == "assistant" for m in messages)  # only the assistant headers
    cut = tokenize_example(t, tok, "observations", max_length=10)
    assert cut["truncated"] and cut["n_tokens"] == 10 and cut["input_ids"] == ex["input_ids"][:10]


def test_tokenize_messages_without_template(tiny_model_dir):
    tok = load_tokenizer(str(tiny_model_dir))
    messages = [{"role": "user", "content": "Who?"}, {"role": "assistant", "content": "Thought: a\nAction: search[x]"},
                {"role": "user", "content": "Observation: <b>x</b>"}, {"role": "assistant", "content": "Action: finish[y]"}]
    tok.chat_template, saved = None, tok.chat_template
    try:
        ex = tokenize_example({"messages": messages}, tok, "observations")
    finally:
        tok.chat_template = saved
    assert ex["input_ids"][0] == tok.bos_token_id and ex["labels"][0] == IGNORE
    assert ex["input_ids"][-1] == tok.eos_token_id and ex["labels"][-1] == tok.eos_token_id
    trained = tok.decode([lab for lab in ex["labels"][:-1] if lab != IGNORE])
    assert trained == "Thought: a\nAction: search[x]\nAction: finish[y]\n"
    spans = preview_spans(messages, "observations")
    assert [trained for _, trained in spans] == [False, True, False, True]
    html_text = spans_html(spans)
    assert "&lt;b&gt;x&lt;/b&gt;" in html_text and "<b>" not in html_text
    assert html_text.count('class="masked"') == 2


def test_token_totals_estimate_and_tokenizer(mix_store, tiny_model_dir):
    est = plan_mix(mix_store, spec(size=40))
    assert "estimate" in est.token_label and "sample" in est.token_label
    assert (est.cells["tokens"] > est.cells["trained_tokens"]).all() and (est.cells["trained_tokens"] > 0).all()
    none = plan_mix(mix_store, spec(size=40, loss_mask="none"))
    assert (none.cells["trained_tokens"] > est.cells["trained_tokens"]).all()
    exact = plan_mix(mix_store, spec(size=40), exact_tokens=True)
    assert "every member" in exact.token_label and (exact.cells["tokens"] > exact.cells["trained_tokens"]).all()
    assert abs(exact.cells["tokens"].sum() - est.cells["tokens"].sum()) < 0.3 * exact.cells["tokens"].sum()
    measured = plan_mix(mix_store, spec(size=40), tokenizer_dir=tiny_model_dir)
    assert tiny_model_dir.name in measured.token_label
    assert (measured.cells["tokens"] != est.cells["tokens"]).any() and (measured.cells["tokens"] > 0).all()


def test_cli_mix_datasets_and_export(mix_store, tmp_path, capsys):
    spec_file = tmp_path / "spec.json"
    spec_file.write_text(json.dumps(ISSUE_SPEC))
    db = str(mix_store.path)
    assert main(["--db", db, "mix", "--spec", str(spec_file), "--name", "dry", "--dry-run"]) == 0
    assert "saved" not in capsys.readouterr().out
    assert main(["--db", db, "mix", "--spec", str(spec_file), "--name", "cli-mix", "--exact-tokens"]) == 0
    out = capsys.readouterr().out
    line = next(x for x in out.splitlines() if x.startswith("strategyqa/cot"))
    assert line.split()[1:4] == ["50", "33", "17"]
    assert "short: strategyqa/cot" in out and "saved 'cli-mix'" in out
    assert main(["--db", db, "mix", "--from", "cli-mix", "--seed", "7", "--name", "cli-mix-7"]) == 0
    capsys.readouterr()
    assert main(["--db", db, "datasets", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [d["name"] for d in listed] == ["cli-mix", "cli-mix-7"]
    assert set(listed[0]) == {"name", "size", "train", "val", "cells", "hash", "created_at"}
    assert listed[0]["size"] == 383 and listed[0]["cells"]["hotpotqa/react"] == 100
    assert listed[0]["train"] + listed[0]["val"] == 383
    out_file = tmp_path / "train.jsonl"
    assert main(["--db", db, "export", "--dataset", "cli-mix", "--format", "openai-jsonl", "--split", "train",
                 "--out", str(out_file)]) == 0
    assert len(out_file.read_text().splitlines()) == listed[0]["train"]
    assert main(["--db", db, "export", "--format", "parquet", "--out", str(tmp_path / "x.parquet")]) == 2
    assert "add --dataset" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**ISSUE_SPEC, "method_ratio": None}))
    assert main(["--db", db, "mix", "--spec", str(bad), "--name", "x"]) == 2
    assert "method_ratio" in capsys.readouterr().err


def test_cells_grid_and_an_empty_cell(mix_store):
    plan = plan_mix(mix_store, MixSpec.parse({"sources": SOURCES, "size": 40, "seed": 3,
                                              "cells": {"hotpotqa/react": 2, "mmlu/cot": 1, "bamboogle/io": 1}}))
    assert plan.counts() == {"bamboogle/io": 0, "hotpotqa/react": 20, "mmlu/cot": 10}
    assert plan.size == 30
    assert plan.messages == [m for m in plan.messages if m.startswith("bamboogle/io")]
    assert "no trajectory of it passes the filters" in plan.messages[0]


def test_save_refuses_members_edited_since_the_preview(mix_store):
    from fireact_core.records import now

    plan = plan_mix(mix_store, spec(size=20))
    first = mix_store.get_trajectory(plan.members["id"][0])
    mix_store.save_edit(first.model_copy(update={"final_answer": "changed"}), base_revision=first.revision, author="x")
    m = plan.members
    version = {"name": "stale", "spec": plan.spec.model_dump(mode="json"), "seed": 1, "created_at": now(),
               "created_by": None, "size": len(m), "n_train": len(m), "n_val": 0, "cells": {}, "parent": None,
               "loss_mask": "observations", "note": None}
    members = {"position": m["position"].tolist(), "trajectory_id": m["id"].tolist(), "rev": m["revision"].tolist(),
               "split": m["split"].tolist(), "task": m["task"].tolist(), "method": m["method"].tolist()}
    with pytest.raises(ConflictError, match="since the preview"):
        mix_store.save_dataset_version(version, members)
    assert mix_store.list_dataset_versions() == [] and mix_store.dataset_members("stale").empty
    assert save_mix(mix_store, spec(size=20), "fresh").size == 20  # planning again picks up the edit


def test_dedupe_keeps_the_best_scored_or_the_latest_revision(mix_store):
    with mix_store.db.connect() as con:
        pairs = con.execute("""SELECT qnorm, list(id ORDER BY reward, id) FROM trajectories GROUP BY qnorm
                               HAVING count(*) = 2 AND count(DISTINCT reward) = 2""").fetchall()
    assert pairs  # questions answered wrongly in one source and rightly in the other
    everything = {"sources": SOURCES, "size": 5000, "filters": {"dedupe": True}}
    best = set(plan_mix(mix_store, MixSpec.parse(everything)).members["id"])
    for _, (failed, solved) in pairs:
        assert solved in best and failed not in best

    failed = pairs[0][1][0]
    t = mix_store.get_trajectory(failed)
    mix_store.save_edit(t.model_copy(update={"final_answer": t.final_answer}), base_revision=t.revision, author="ann")
    latest = set(plan_mix(mix_store, MixSpec.parse({**everything, "filters": {"dedupe": True,
                                                                               "dedupe_keep": "latest"}})).members["id"])
    assert failed in latest and pairs[0][1][1] not in latest
