"""Preference pairs from FireAct's own run: an edit against the imported revision, a parent against its
continuations; step-level pairs share their prefix exactly; the rows are what TRL's DPO and KTO trainers read."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fireact_core.curation import edits as cur
from fireact_core.cli import main as cli_main
from fireact_core.io.formats.fireact import chat_messages
from fireact_core.curation.pairs import build_pairs, fork_pairs, pair_rows
from fireact_core.records import Action, Step, Trajectory
from fireact_core.store import Store
from tests.conftest import RUN_FILE, copy_database

RUN = RUN_FILE.stem


@pytest.fixture(scope="module")
def run_db(tmp_path_factory) -> Path:
    """FireAct's Llama-2 evaluation run, imported once."""
    from fireact_core.io.importer import import_files

    path = tmp_path_factory.mktemp("pairs-db") / "pairs.duckdb"
    import_files(Store(path), [RUN_FILE])
    return path


@pytest.fixture
def edited(run_db, tmp_path) -> tuple[Store, Trajectory, Trajectory]:
    """A copy of the run with one wrong trajectory corrected at step 2 (thought) and in its final answer."""
    store = Store(copy_database(run_db, tmp_path))
    wrong = next(t for t in store.iter_trajectories() if t.em == 0 and len(t.steps) >= 3 and t.gold)
    fixed = cur.set_final_answer(cur.edit_step(wrong, 1, cur.StepEdit(thought="I should search the other entity.")),
                                 wrong.gold)
    saved = cur.save_trajectory_edit(store, fixed, base_revision=wrong.revision, author="alice", reason="fix")
    return store, wrong, saved


def _plain(messages: list[dict]) -> list[dict]:
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def test_an_edit_gives_a_step_pair_whose_prompt_is_the_shared_prefix_exactly(edited):
    store, imported, corrected = edited
    pairs = build_pairs(store, level="step")
    assert len(pairs) == 1
    pair = pairs[0]
    before, after = _plain(chat_messages(imported)), _plain(chat_messages(corrected))
    k = len(pair.prompt)
    assert pair.prompt == before[:k] == after[:k]
    assert pair.step == 2 and pair.origin == "edit"
    assert pair.chosen == [after[k]] and pair.rejected == [before[k]] and after[k] != before[k]
    assert pair.chosen[0]["role"] == "assistant" and "I should search the other entity." in pair.chosen[0]["content"]
    assert [m["role"] for m in pair.prompt[-2:]] == ["assistant", "user"]  # step 1, then its observation
    assert pair.chosen_id == pair.rejected_id == imported.id


def test_an_edit_that_makes_the_answer_right_gives_a_trajectory_pair(edited):
    store, imported, corrected = edited
    [pair] = build_pairs(store, level="trajectory")
    after, before = _plain(chat_messages(corrected)), _plain(chat_messages(imported))
    start = len(pair.prompt)
    assert pair.prompt[-1]["content"].endswith(imported.question) and pair.prompt == after[:start]
    assert pair.chosen == after[start:] and pair.rejected == before[start:]
    assert corrected.em == 1 and imported.em == 0
    assert any(m["content"].endswith(f"finish[{imported.gold}]") for m in pair.chosen if m["role"] == "assistant")


def test_an_edit_that_leaves_the_answer_wrong_gives_no_trajectory_pair(run_db, tmp_path):
    store = Store(copy_database(run_db, tmp_path))
    wrong = next(t for t in store.iter_trajectories() if t.em == 0 and len(t.steps) >= 2)
    cur.save_trajectory_edit(store, cur.edit_step(wrong, 0, cur.StepEdit(thought="Another thought.")),
                             base_revision=wrong.revision, author="alice")
    assert build_pairs(store, level="trajectory") == []
    assert [p.step for p in build_pairs(store, level="step")] == [1]


def test_the_filter_chooses_whose_edits_count(edited):
    store, imported, _ = edited
    from fireact_core.filters import TrajectoryFilter

    assert build_pairs(store, TrajectoryFilter(ids=[imported.id]), "step")
    others = [i for i in store.filter_ids(TrajectoryFilter()) if i != imported.id][:5]
    assert build_pairs(store, TrajectoryFilter(ids=others), "step") == []


def _turn(text: str, answer: str | None = None) -> Step:
    action = Action(raw=f"finish[{answer}]", name="finish", arg=answer) if answer else \
        Action(raw=f"search[{text}]", name="search", arg=text)
    return Step(thought=f"Look up {text}." if not answer else "Done.", action=action,
                observation=None if answer else f"{text} is a thing.")


def _traj(tid: str, steps: list[Step], em: float) -> Trajectory:
    return Trajectory(id=tid, source="s", task="hotpotqa", question="Who?", gold="Ann", method="react", steps=steps,
                      em=em, reward=em >= 1)


def test_a_parent_and_its_continuations_pair_right_over_wrong_after_the_kept_prefix():
    kept = [_turn("Bob")]
    parent = _traj("parent", [*kept, _turn("Carl"), _turn("", answer="Carl")], em=0.0)
    right = _traj("child-right", [*kept, _turn("Ann"), _turn("", answer="Ann")], em=1.0)
    wrong = _traj("child-wrong", [*kept, _turn("Dora"), _turn("", answer="Dora")], em=0.0)
    pairs = fork_pairs(parent, [right, wrong], "step")
    assert {(p.chosen_id, p.rejected_id) for p in pairs} == {("child-right", "parent"), ("child-right", "child-wrong")}
    for p in pairs:
        assert p.step == 2 and p.prompt == _plain(chat_messages(parent))[:len(p.prompt)]
        assert p.prompt == _plain(chat_messages(right))[:len(p.prompt)]
        assert "Ann" in p.chosen[0]["content"] and "Ann" not in p.rejected[0]["content"]
    whole = fork_pairs(parent, [right, wrong], "trajectory")
    assert {(p.chosen_id, p.rejected_id) for p in whole} == {("child-right", "parent"), ("child-right", "child-wrong")}
    assert all(p.prompt[-1] == {"role": "user", "content": "Who?"} for p in whole)


def test_kto_rows_are_two_per_pair_with_their_labels(edited):
    store, _, _ = edited
    pairs = build_pairs(store, level="step")
    rows = list(pair_rows(pairs, "kto"))
    assert len(rows) == 2 * len(pairs)
    assert [r["label"] for r in rows] == [True, False] * len(pairs)
    for r in rows:
        assert {"prompt", "completion", "label"} <= set(r)
        assert isinstance(r["prompt"], list) and all({"role", "content"} == set(m) for m in r["prompt"] + r["completion"])
    assert rows[0]["completion"] == pairs[0].chosen and rows[1]["completion"] == pairs[0].rejected


def test_cli_writes_pairs_and_refuses_to_replace_a_file_without_force(edited, tmp_path, capsys):
    store, _, _ = edited
    out = tmp_path / "pairs.jsonl"
    args = ["--db", str(store.path), "pairs", "--source", RUN, "--level", "step", "--format", "dpo", "--out", str(out)]
    assert cli_main(args) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(rows) == 1 and {"prompt", "chosen", "rejected"} <= set(rows[0]) and rows[0]["origin"] == "edit"
    assert "1 step-level pairs (from edit 1)" in capsys.readouterr().out
    assert cli_main(args) == 2 and "exists" in capsys.readouterr().err
    assert cli_main([*args[:-4], "--format", "kto", "--out", str(out), "--force"]) == 0
    assert [json.loads(line)["label"] for line in out.read_text().splitlines()] == [True, False]
    assert cli_main([*args[:3], "--source", "no-such-run", *args[5:-1], str(tmp_path / "none.jsonl")]) == 0
    assert (tmp_path / "none.jsonl").read_text() == ""


def test_trl_dpo_trainer_tokenises_the_rows_and_its_collator_batches_them(edited, tiny_model_dir, tmp_path):
    """TRL's own DPOTrainer reads the rows as written: the prompt's tokens are the prompt as the chat template
    renders it, each completion is the step, and its preference collator batches them."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer
    from trl.trainer.dpo_trainer import DataCollatorForPreference

    from fireact_core.io.masks import load_tokenizer

    store, _, _ = edited
    out = tmp_path / "pairs.jsonl"
    assert cli_main(["--db", str(store.path), "pairs", "--level", "step", "--out", str(out)]) == 0
    step_rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert cli_main(["--db", str(store.path), "pairs", "--level", "trajectory", "--out", str(out), "--force"]) == 0
    rows = step_rows + [json.loads(line) for line in out.read_text().splitlines()]
    tok = load_tokenizer(str(tiny_model_dir))
    trainer = DPOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), processing_class=tok,
                         train_dataset=Dataset.from_list(rows),
                         args=DPOConfig(output_dir=str(tmp_path / "dpo"), use_cpu=True, report_to=[], max_length=None,
                                        dataset_num_proc=None))
    tokenised = [trainer.train_dataset[i] for i in range(len(rows))]
    for row, ex in zip(rows, tokenised):
        prompt_text = tok.apply_chat_template(row["prompt"], tokenize=False, add_generation_prompt=True)
        assert tok.decode(ex["prompt_ids"]) == prompt_text
        chosen = tok.apply_chat_template(row["prompt"] + row["chosen"], tokenize=False)
        assert tok.decode(ex["prompt_ids"] + ex["chosen_ids"]) == chosen
        assert ex["chosen_ids"] != ex["rejected_ids"]
    batch = DataCollatorForPreference(pad_token_id=tok.pad_token_id)(tokenised)
    assert batch["input_ids"].shape[0] == 2 * len(rows)
    assert all(int(m.sum()) > 0 for m in batch["completion_mask"])


def test_fork_links_in_the_store_pair_the_parent_as_forked_with_its_children(run_db, tmp_path):
    """Children continued from step 1 of a wrong trajectory of the run: the right child is chosen over the parent
    as it stood when forked (an edit made to the parent afterwards changes nothing) and over the wrong child."""
    from fireact_core.records import ForkLink

    store = Store(copy_database(run_db, tmp_path))
    parent = next(t for t in store.iter_trajectories() if t.em == 0 and len(t.steps) >= 3 and t.gold)
    kept = parent.steps[:1]
    right = cur.rescore(parent.model_copy(update={"id": "child-right", "source": "fork-run", "revision": 0,
                                                  "steps": [*kept, _turn("", answer=parent.gold)]}))
    wrong = cur.rescore(parent.model_copy(update={"id": "child-wrong", "source": "fork-run", "revision": 0,
                                                  "steps": [*kept, _turn("", answer="nobody")]}))
    assert right.em == 1 and wrong.em == 0
    store.save_trajectories([right, wrong])
    store.add_forks([ForkLink(child_id=c.id, parent_id=parent.id, parent_revision=0, fork_step=1, run="fork-run")
                     for c in (right, wrong)])
    cur.save_trajectory_edit(store, cur.edit_step(parent, 2, cur.StepEdit(thought="Later edit.")),
                             base_revision=0, author="bob")
    from fireact_core.filters import TrajectoryFilter

    pairs = build_pairs(store, TrajectoryFilter(source=["fork-run"]), "step", origins=["fork"])
    assert {(p.chosen_id, p.rejected_id) for p in pairs} == {("child-right", parent.id), ("child-right", "child-wrong")}
    shared = _plain(chat_messages(parent))
    for p in pairs:
        assert p.step == 2 and p.prompt == shared[:len(p.prompt)] and p.origin == "fork"
        assert p.chosen[0]["content"].endswith(f"finish[{parent.gold}]")
    [from_parent] = [p for p in pairs if p.rejected_id == parent.id]
    assert from_parent.rejected == [shared[len(from_parent.prompt)]]  # step 2 as it was at the fork
    by_parent = build_pairs(store, TrajectoryFilter(ids=[parent.id]), "trajectory")
    assert {(p.origin, p.chosen_id, p.rejected_id) for p in by_parent} == {
        ("fork", "child-right", parent.id), ("fork", "child-right", "child-wrong")}


def test_the_mixer_makes_a_version_of_pairs_with_the_same_filters_splits_and_snapshots(edited, tmp_path, capsys):
    from fireact_core.errors import FireactError
    from fireact_core.mixing.versions import MixSpec, MixSpecError, save_mix
    from fireact_core.curation.pairs import dataset_pairs

    store, imported, corrected = edited
    spec = {"sources": [RUN], "size": 1000, "val_fraction": 0.2, "seed": 1}
    pairs_version = save_mix(store, MixSpec.parse({**spec, "pairs": "step"}), "fix-pairs")
    assert pairs_version.spec["filters"]["dedupe"] is False and pairs_version.pairs == "step"
    plain = save_mix(store, MixSpec.parse({**spec, "filters": {"dedupe": False}}), "fix-trajs")
    assert plain.size == pairs_version.size and plain.content_hash != pairs_version.content_hash
    by_split = dataset_pairs(store, "fix-pairs")
    [pair] = [p for ps in by_split.values() for p in ps]
    assert pair.chosen_id == imported.id and pair.step == 2
    member_split = dict(zip(store.dataset_members("fix-pairs")["trajectory_id"],
                            store.dataset_members("fix-pairs")["split"]))[imported.id]
    assert [k for k, v in by_split.items() if v] == [member_split]
    again = cur.edit_step(corrected, 0, cur.StepEdit(thought="A later edit of step 1."))
    cur.save_trajectory_edit(store, again, base_revision=corrected.revision, author="alice")
    assert [p for ps in dataset_pairs(store, "fix-pairs").values() for p in ps] == [pair]  # the snapshot holds
    with pytest.raises(MixSpecError, match="dedupe"):
        MixSpec.parse({**spec, "pairs": "step", "filters": {"dedupe": True}})
    with pytest.raises(FireactError, match="not preference pairs"):
        dataset_pairs(store, "fix-trajs")
    out = tmp_path / "version.jsonl"
    assert cli_main(["--db", str(store.path), "pairs", "--dataset", "fix-pairs", "--out", str(out)]) == 0
    assert [json.loads(line)["chosen"] for line in out.read_text().splitlines()] == [pair.chosen]


def test_trl_kto_trainer_tokenises_the_kto_rows(edited, tiny_model_dir, tmp_path):
    """TRL's KTOTrainer reads the KTO rows as written: one prompt, each side a completion with its label."""
    from datasets import Dataset
    from transformers import AutoModelForCausalLM
    from trl import KTOConfig, KTOTrainer

    from fireact_core.io.masks import load_tokenizer

    store, _, _ = edited
    out = tmp_path / "kto.jsonl"
    assert cli_main(["--db", str(store.path), "pairs", "--format", "kto", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    tok = load_tokenizer(str(tiny_model_dir))
    trainer = KTOTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model_dir), processing_class=tok,
                         train_dataset=Dataset.from_list(rows),
                         args=KTOConfig(output_dir=str(tmp_path / "kto"), use_cpu=True, report_to=[], max_length=None,
                                        dataset_num_proc=None, per_device_train_batch_size=2))
    tokenised = [trainer.train_dataset[i] for i in range(len(rows))]
    assert tokenised[0]["prompt_ids"] == tokenised[1]["prompt_ids"]
    assert tok.decode(tokenised[0]["prompt_ids"]) == tok.apply_chat_template(rows[0]["prompt"], tokenize=False,
                                                                           add_generation_prompt=True)
    for row, ex in zip(rows, tokenised):
        assert tok.decode(ex["prompt_ids"] + ex["completion_ids"]) == tok.apply_chat_template(
            row["prompt"] + row["completion"], tokenize=False)
        assert ex["label"] is row["label"]


def test_the_mix_page_saves_a_version_of_pairs(edited, monkeypatch):
    from streamlit.testing.v1 import AppTest

    store, _, _ = edited
    monkeypatch.setenv("FIREACT_DB", str(store.path))
    at = AppTest.from_file(str(Path(__file__).resolve().parents[1] / "pages" / "6_Mix.py"), default_timeout=120)
    at.run()
    assert not at.exception, at.exception
    at.session_state["mix_split_open"] = at.session_state["mix_filters_open"] = True
    at.run()
    at.selectbox(key="mix_pairs").set_value("step").run()
    assert at.checkbox(key="mix_dedupe").disabled and not at.exception and not at.error
    at.text_input(key="mix_name").input("page-pairs")
    next(b for b in at.button if b.label == "Save version").click().run()
    assert any("Saved 'page-pairs'" in s.value and "1 step-level pairs" in s.value for s in at.success), \
        [e.value for e in at.error]
    version = store.get_dataset_version("page-pairs")
    assert version.pairs == "step" and version.spec["filters"]["dedupe"] is False


def test_a_filter_matching_one_child_brings_its_whole_fork_group(store):
    """The pairs among a parent and its two children do not depend on which of the three the filter matched."""
    from fireact_core.filters import TrajectoryFilter
    from fireact_core.records import ForkLink

    kept = [_turn("Bob")]
    parent = _traj("p", [*kept, _turn("Carl"), _turn("", answer="Carl")], em=0.0)
    right = _traj("r", [*kept, _turn("Ann"), _turn("", answer="Ann")], em=1.0)
    wrong = _traj("w", [*kept, _turn("Dora"), _turn("", answer="Dora")], em=0.0)
    store.save_trajectories([parent, right, wrong])
    store.add_forks([ForkLink(child_id=c, parent_id="p", parent_revision=0, fork_step=1) for c in ("r", "w")])
    for ids in (["w"], ["r"], ["p"]):
        pairs = build_pairs(store, TrajectoryFilter(ids=ids), "step", origins=["fork"])
        assert {(p.chosen_id, p.rejected_id) for p in pairs} == {("r", "p"), ("r", "w")}, ids
