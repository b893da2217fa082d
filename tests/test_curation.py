"""Curation core and store: edits, saving with re-scoring, history, concurrent edits, filters, review, compare."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fireact_core.curation import edits as cur
from fireact_core.curation.compare import align_steps, pair_html, step_kind, word_diff_html
from fireact_core.errors import ConflictError, FireactError
from fireact_core.filters import TrajectoryFilter
from fireact_core.io.formats import read_file
from fireact_core.io.importer import prepare
from fireact_core.records import Action, Position, Step, Trajectory
from fireact_core.store import Store
from fireact_core.store.curation import query_words
from tests.conftest import RUN_FILE, copy_database
from tests.helpers.runs import RUN_A, RUN_B, XSS_QUESTION, second_run

@pytest.fixture(scope="module")
def runs_db(two_runs_db) -> Path:
    return two_runs_db


@pytest.fixture
def runs(runs_db, tmp_path) -> Store:
    """A fresh copy of the two-run database for each test."""
    return Store(copy_database(runs_db, tmp_path))


def a_wrong_one(store: Store) -> Trajectory:
    return store.get_trajectory(store.filter_ids(TrajectoryFilter(source=[RUN_A], em="wrong"), limit=1)[0])


# ---- pure edits -------------------------------------------------------------------------------------------


def test_edits_are_pure_and_clear_verbatim_copies():
    step = Step(thought="t", action=Action(raw="search[x]", name="search", arg="x"), observation="o",
                raw="Thought: t\nAction: search[x] ", obs_raw="o")
    t = Trajectory(source="s", question="q", steps=[step])
    edited = cur.edit_step(t, 0, cur.StepEdit(thought="new thought"))
    assert t.steps[0].thought == "t" and t.steps[0].raw is not None
    assert edited.steps[0].thought == "new thought" and edited.steps[0].raw is None
    assert edited.steps[0].obs_raw == "o"
    edited = cur.edit_step(edited, 0, cur.StepEdit(observation="new obs", action="lookup[y"))
    assert edited.steps[0].obs_raw is None and edited.steps[0].observation == "new obs"
    # read as FireAct reads it (split at '[', last character dropped), and flagged
    assert edited.steps[0].action.name == "lookup" and edited.steps[0].flags.parse_error == "missing ']'"
    assert cur.edit_step(edited, 0, cur.StepEdit(thought="new thought")) is edited
    assert cur.set_train(edited, 0, False).steps[0].flags.train is False


def test_structural_edits_and_final_answer(shared):
    t = prepare(read_file(RUN_FILE)).trajectories[0]
    n = len(t.steps)
    inserted = cur.insert_step(t, 1)
    assert len(inserted.steps) == n + 1 and inserted.steps[1].action.name == "search"
    assert cur.delete_step(inserted, 1).steps == t.steps
    moved = cur.move_step(t, 0, n - 1)
    assert moved.steps[-1] == t.steps[0] and moved.steps[0] == t.steps[1]
    answered = cur.set_final_answer(t, "Paris")
    finish = [s for s in answered.steps if s.action and s.action.name == "finish"][-1]
    assert finish.action.raw == "finish[Paris]" and answered.final_answer == "Paris" and t.final_answer != "Paris"
    bare = Trajectory(source="s", question="q", steps=[Step(thought="hmm")])
    assert cur.set_final_answer(bare, "x").steps[-1].action.raw == "finish[x]"
    with pytest.raises(FireactError, match="no step 9"):
        cur.delete_step(t, 8 + 100 - 100)


def test_apply_form_keeps_untouched_steps_verbatim(shared):
    t = prepare(read_file(RUN_FILE)).trajectories[3]
    steps = [{"thought": s.thought or "", "action": s.action.raw if s.action else "", "observation": s.observation or "",
              "train": s.flags.train} for s in t.steps]
    assert cur.apply_form(t, steps, t.final_answer or "") == t
    steps[0]["thought"] = "Edited thought"
    edited = cur.apply_form(t, steps, "Edited answer")
    assert edited.steps[0].thought == "Edited thought" and edited.steps[1:-1] == t.steps[1:-1]
    assert edited.final_answer == "Edited answer"


# ---- saving, history, conflicts ----------------------------------------------------------------------------


def test_save_rescores_relints_and_records_revision(runs):
    t = a_wrong_one(runs)
    assert "failed" in {x.kind for x in runs.lints_of(t.id)}
    fixed = cur.set_final_answer(cur.edit_step(t, 0, cur.StepEdit(thought="A better first thought")), t.gold)
    saved = cur.save_trajectory_edit(runs, fixed, base_revision=t.revision, author="alice", reason="fix answer")
    stored = runs.get_trajectory(t.id)
    assert stored.revision == saved.revision == 1 and stored.em == 1.0 and stored.reward is True
    assert stored.steps[0].thought == "A better first thought" and stored.updated_by == "alice"
    assert "failed" not in {x.kind for x in runs.lints_of(t.id)}
    revs = runs.list_revisions(t.id)
    assert [(r.rev, r.author, r.reason) for r in revs][-1] == (1, "alice", "fix answer")
    diffs = dict((r.rev, d) for r, d in cur.revision_diffs(runs, t.id))
    assert "+Thought: A better first thought" in diffs[1] and f"+Final answer: {t.gold}" in diffs[1]


def test_restore_makes_a_new_revision_with_the_old_content(runs):
    t = a_wrong_one(runs)
    cur.save_trajectory_edit(runs, cur.set_final_answer(t, "changed"), base_revision=0, author="alice")
    restored = cur.restore_revision(runs, t.id, 0, "bob")
    stored = runs.get_trajectory(t.id)
    assert restored.revision == 2 and stored.final_answer == t.final_answer and stored.steps == t.steps
    assert stored.em == t.em
    assert [r.reason for r in runs.list_revisions(t.id)][-1] == "restored revision 0"


def test_concurrent_edits_second_refused_naming_first_then_saved_on_top(runs):
    t = a_wrong_one(runs)
    alice_copy, bob_copy = runs.get_trajectory(t.id), runs.get_trajectory(t.id)
    cur.save_trajectory_edit(runs, cur.edit_step(alice_copy, 0, cur.StepEdit(thought="Alice's thought")),
                             base_revision=alice_copy.revision, author="alice")
    bob_edit = cur.set_final_answer(bob_copy, "Bob's answer")
    with pytest.raises(ConflictError, match="alice") as info:
        cur.save_trajectory_edit(runs, bob_edit, base_revision=bob_copy.revision, author="bob")
    assert info.value.author == "alice"
    assert runs.get_trajectory(t.id).final_answer == t.final_answer
    current = runs.get_trajectory(t.id)
    cur.save_trajectory_edit(runs, bob_edit, base_revision=current.revision, author="bob")
    history = runs.list_revisions(t.id)
    assert [r.author for r in history][-2:] == ["alice", "bob"]
    assert history[-2].data["steps"][0]["thought"] == "Alice's thought"
    assert runs.get_trajectory(t.id).final_answer == "Bob's answer"


# ---- filters, paging, sorting ------------------------------------------------------------------------------


def _all(store: Store) -> list[Trajectory]:
    return list(store.iter_trajectories())


def test_every_filter_field_matches_a_python_count(runs):
    trajs = _all(runs)
    lints = {t.id: {x.kind for x in runs.lints_of(t.id)} for t in trajs[:5]}
    assert lints

    def ok(t: Trajectory) -> bool | None:
        return t.em > 0.5 if t.em is not None else t.reward

    right = [t for t in trajs if ok(t) is True]
    wrong = [t for t in trajs if ok(t) is False]
    cases = [
        (TrajectoryFilter(source=[RUN_B]), sum(t.source == RUN_B for t in trajs)),
        (TrajectoryFilter(model=["llama-b"]), sum(t.model == "llama-b" for t in trajs)),
        (TrajectoryFilter(task=["hotpotqa"]), sum(t.task == "hotpotqa" for t in trajs)),
        (TrajectoryFilter(method=["reflexion"]), sum(t.method == "reflexion" for t in trajs)),
        (TrajectoryFilter(em="right"), len(right)),
        (TrajectoryFilter(em="wrong"), len(wrong)),
        (TrajectoryFilter(status="finished"), sum(t.status == "finished" for t in trajs)),
        (TrajectoryFilter(steps_min=3, steps_max=5), sum(3 <= len(t.steps) <= 5 for t in trajs)),
        (TrajectoryFilter(lint=["malformed_action"]), runs.lint_counts()["malformed_action"]),
        (TrajectoryFilter(ids=[trajs[0].id, trajs[1].id]), 2),
        (TrajectoryFilter(source=[RUN_A], em="wrong", steps_max=3),
         sum(t.source == RUN_A and ok(t) is False and len(t.steps) <= 3 for t in trajs)),
    ]
    for f, expected in cases:
        assert runs.count_filtered(f) == expected, f
    assert len(right) > 0 and len(wrong) > 0


def haystacks(store: Store) -> dict[str, str]:
    return {x.id: "\n".join([x.question, x.final_answer or "", *[
        "\n".join(filter(None, [s.thought, s.action.raw if s.action else None, s.observation, s.raw, s.obs_raw]))
        for s in x.steps]]).lower() for x in _all(store)}


def expected_matches(texts: dict[str, str], q: str) -> set[str]:
    """Every word of the search starts a word of the trajectory; a search without words matches literally."""
    words = query_words(q)
    if not words:
        return {i for i, h in texts.items() if q.lower() in h}
    found = set()
    for i, h in texts.items():
        vocab = set(re.sub(r"[^a-z0-9]+", " ", h).split())
        if all(any(v.startswith(w) for v in vocab) for w in words):
            found.add(i)
    return found


@pytest.mark.parametrize("field", ["question", "thought", "action", "observation"])
def test_text_search_covers_questions_thoughts_actions_observations(runs, field):
    t = _all(runs)[7]
    step = t.steps[0]
    text = {"question": t.question, "thought": step.thought, "action": step.action.raw if step.action else None,
            "observation": step.observation}[field]
    assert text
    needle = text.split()[len(text.split()) // 2].strip(".,[]")
    ids = set(runs.filter_ids(TrajectoryFilter(q=needle.upper())))
    assert t.id in ids
    assert ids == expected_matches(haystacks(runs), needle)


def test_text_search_words_prefixes_and_symbols(runs):
    texts = haystacks(runs)
    for q in ("%", "_", "\\", "<script>", "reward = false", "Super Bowl", "film direct", "zzqx"):
        assert set(runs.filter_ids(TrajectoryFilter(q=q))) == expected_matches(texts, q), q
    assert XSS_QUESTION.lower() in texts["xss0000000000001"]
    assert runs.filter_ids(TrajectoryFilter(q="window.__xss")) == ["xss0000000000001"]


def test_text_search_follows_edits_and_imports(runs):
    t = a_wrong_one(runs)
    word = t.steps[0].thought.split()[-1].strip(".,")
    assert t.id in runs.filter_ids(TrajectoryFilter(q=word))
    edited = cur.edit_step(t, 0, cur.StepEdit(thought="Quixotically rephrased"))
    cur.save_trajectory_edit(runs, edited, base_revision=0, author="alice")
    assert runs.filter_ids(TrajectoryFilter(q="quixotic")) == [t.id]
    assert runs.refresh_search_index() == 0
    added = cur.rescore(second_run("llama-run-c")[-1].model_copy(update={"id": "new0000000000001", "source": "c"}))
    runs.save_trajectories([added])
    assert "new0000000000001" in runs.filter_ids(TrajectoryFilter(q="window xss"))


def test_large_gap_in_the_index_is_filled_in_the_background(runs, monkeypatch):
    from fireact_core.store import curation as store_curation

    monkeypatch.setattr(store_curation, "SYNC_LIMIT", 10)
    texts = haystacks(runs)
    scanned = set(runs.filter_ids(TrajectoryFilter(q="Super Bowl")))
    assert scanned == {i for i, h in texts.items() if "super bowl" in h}
    runs.browse._search_worker.join(timeout=120)
    assert runs.refresh_search_index() == 0
    assert set(runs.filter_ids(TrajectoryFilter(q="Super Bowl"))) == expected_matches(texts, "Super Bowl")


def test_paging_and_sorting(runs):
    f = TrajectoryFilter(source=[RUN_A])
    total = runs.count_filtered(f)
    pages = [runs.list_summaries(f, sort="f1", descending=True, limit=100, offset=o) for o in range(0, total, 100)]
    ids = [s.id for page in pages for s in page]
    assert len(ids) == len(set(ids)) == total
    f1s = [s.f1 for page in pages for s in page if s.f1 is not None]
    assert f1s == sorted(f1s, reverse=True)
    first = pages[0][0]
    assert first.n_steps > 0 and isinstance(first.lints, list) and first.source == RUN_A


def test_neighbours_follow_the_filter_order(runs):
    f = TrajectoryFilter(source=[RUN_A], em="wrong")
    ids = runs.filter_ids(f, sort="steps")
    nav = runs.neighbours(f, ids[5], sort="steps")
    assert (nav.prev, nav.next, nav.position, nav.total) == (ids[4], ids[6], 6, len(ids))
    assert runs.neighbours(f, ids[0], sort="steps").prev is None
    outside = runs.filter_ids(TrajectoryFilter(source=[RUN_A], em="right"), limit=1)[0]
    assert runs.neighbours(f, outside).position is None



@pytest.mark.parametrize("sort,desc", [("em", False), ("em", True), ("answer", True), ("imported", False)])
def test_neighbours_agree_with_the_filter_order_everywhere(runs, sort, desc):
    """Every trajectory's previous, next and position, ties and empty values (no answer, no score) included,
    are those of the filter's full order."""
    f = TrajectoryFilter(source=[RUN_B])
    ids = runs.filter_ids(f, sort=sort, descending=desc)
    for i in list(range(0, len(ids), 7)) + [len(ids) - 1]:
        nav = runs.neighbours(f, ids[i], sort=sort, descending=desc)
        assert (nav.prev, nav.next, nav.position, nav.total) == (
            ids[i - 1] if i else None, ids[i + 1] if i + 1 < len(ids) else None, i + 1, len(ids))
        assert runs.position(f, ids[i], sort=sort, descending=desc) == Position(position=i + 1, total=len(ids))
        assert runs.neighbour(f, ids[i], sort=sort, descending=desc, step=-1) == nav.prev
        assert runs.neighbour(f, ids[i], sort=sort, descending=desc, step=1) == nav.next


def test_position_and_neighbour_outside_the_filter(runs):
    f = TrajectoryFilter(source=[RUN_A], em="wrong")
    outside = runs.filter_ids(TrajectoryFilter(source=[RUN_A], em="right"), limit=1)[0]
    assert runs.position(f, outside) == Position(total=runs.count_filtered(f))
    assert runs.neighbour(f, outside, step=1) is None and runs.neighbour(f, outside, step=-1) is None

# ---- review -----------------------------------------------------------------------------------------------


def test_bulk_annotation_review_filters_and_progress(runs):
    f = TrajectoryFilter(source=[RUN_A], em="wrong")
    ids = runs.filter_ids(f)
    assert runs.review_progress(f) == (0, len(ids))
    assert runs.bulk_annotate(ids[:3], "alice", add_labels=["hallucination"]) == 3
    assert runs.bulk_annotate(ids[:2], "bob", status="accepted") == 2
    assert runs.bulk_annotate(ids[2:4], "bob", status="rejected", add_labels=["bad search"]) == 2
    assert runs.review_state(ids[0]).labels == ["hallucination"] and runs.review_state(ids[0]).status == "accepted"
    assert runs.review_state(ids[2]).labels == ["hallucination", "bad search"]
    assert runs.count_filtered(TrajectoryFilter(label=["hallucination"])) == 3
    assert runs.count_filtered(TrajectoryFilter(review="accepted")) == 2
    assert runs.count_filtered(TrajectoryFilter(review="rejected")) == 2
    assert runs.count_filtered(f.model_copy(update={"review": "unreviewed"})) == len(ids) - 4
    assert runs.review_progress(f) == (4, len(ids))
    assert runs.known_labels() == ["bad search", "hallucination"]
    assert runs.next_unreviewed(f) == ids[4]
    assert runs.next_unreviewed(f, exclude=[ids[4]]) == ids[5]
    cur.review_decision(runs, ids[4], "carol", "rejected", ["odd"], "looks wrong")
    state = runs.review_state(ids[4])
    assert (state.status, state.labels, state.comment, state.author) == ("rejected", ["odd"], "looks wrong", "carol")
    cur.annotation_event(runs, ids[4], "carol", status=None, labels=["odd"], rating=4)
    assert runs.review_state(ids[4]).rating == 4 and runs.count_filtered(TrajectoryFilter(review="unreviewed", ids=[ids[4]])) == 1
    assert len(runs.list_annotations(ids[4])) == 2


def test_filter_round_trips_through_the_page_query():
    f = TrajectoryFilter(source=["a", "b"], em="wrong", q="Paris", steps_min=2, review="unreviewed")
    query = cur.browse_query(f, "em", True, id="x1")
    assert query["sort"] == "em" and query["desc"] == "1" and query["id"] == "x1"
    assert cur.split_query(query) == (f, "em", True)
    assert cur.describe_filter(f).startswith("source: a,b")


# ---- compare ----------------------------------------------------------------------------------------------


def test_contingency_table_counts_match_python(runs):
    a = {t.qid or t.question: t for t in runs.iter_trajectories(RUN_A)}
    counts = runs.compare_counts(RUN_A, RUN_B)
    assert counts["only_in_b"] == 1 and counts["only_in_a"] == 50
    paired = counts["both_right"] + counts["only_a"] + counts["only_b"] + counts["both_wrong"]
    assert paired == 450
    assert counts["only_a"] > 0 and counts["only_b"] > 0 and counts["both_wrong"] > 0
    assert sum(t.em == 1.0 for t in a.values()) == counts["both_right"] + counts["only_a"] + sum(
        bool(p.ok_a) for p in runs.compare_pairs(RUN_A, RUN_B, "only_in_a"))
    pairs = runs.compare_pairs(RUN_A, RUN_B, "only_b", limit=1000)
    assert len(pairs) == counts["only_b"]
    for p in pairs[:5]:
        ta, tb = runs.get_trajectory(p.id_a), runs.get_trajectory(p.id_b)
        assert ta.em == 0 and tb.em == 1 and ta.question == tb.question


def test_alignment_pairs_steps_of_the_same_kind(shared):
    trajs = prepare(read_file(RUN_FILE)).trajectories
    a = next(t for t in trajs if len(t.steps) >= 3)
    b = cur.delete_step(a, 1)
    pairs = align_steps(a.steps, b.steps)
    assert len(pairs) == len(a.steps)
    for i, j in pairs:
        if i is not None and j is not None:
            assert step_kind(a.steps[i]) == step_kind(b.steps[j])
    assert sum(j is None for _, j in pairs) == 1
    other = next(t for t in trajs if len(t.steps) != len(a.steps))
    pairs = align_steps(a.steps, other.steps)
    assert {i for i, _ in pairs if i is not None} == set(range(len(a.steps)))
    assert {j for _, j in pairs if j is not None} == set(range(len(other.steps)))


def test_compare_html_escapes_model_text_and_marks_differences():
    xss = second_run()[-1]
    other = cur.edit_step(xss, 0, cur.StepEdit(thought="I should search again."))
    html = pair_html(xss, other)
    assert "<script" not in html and "<b>" not in html and "<img" not in html
    assert "&lt;script&gt;" in html and "![x](http://127.0.0.1:9/pixel.png)" in html
    assert "<mark" in html and html.count('data-testid="aligned-step"') == 2
    a, b = word_diff_html("the cat sat", "the dog sat")
    assert "<mark" in a and "cat" in a and "dog" in b and "the" in a.split("<mark")[0]


# ---- command line -----------------------------------------------------------------------------------------


def test_cli_browse_and_review_use_the_same_filter(runs, capsys):
    import json

    from fireact_core.cli import main

    f = TrajectoryFilter(source=[RUN_A], em="wrong", steps_max=2)
    assert main(["--db", runs.path, "browse", "--source", RUN_A, "--em", "wrong", "--steps-max", "2",
                 "--sort", "f1", "--limit", "5", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total"] == runs.count_filtered(f) and len(out["rows"]) == min(5, out["total"])
    assert main(["--db", runs.path, "review", "--source", RUN_A, "--em", "wrong", "--steps-max", "2", "--reject",
                 "--add-label", "short", "--author", "cli", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out == {"annotated": runs.count_filtered(f), "reviewed": runs.count_filtered(f), "total": runs.count_filtered(f)}
    some = runs.filter_ids(f, limit=1)[0]
    state = runs.review_state(some)
    assert (state.status, state.labels, state.author) == ("rejected", ["short"], "cli")
    assert main(["--db", runs.path, "review", "--accept"]) == 2


def test_md_escape_leaves_no_markdown_or_html_active():
    text = "![x](http://127.0.0.1:9/p.png) <b>b</b> [l](javascript:x) :red[x] $x$ **y**"
    escaped = cur.md_escape(text)
    assert re.sub(r"\\(.)", r"\1", escaped) == text
    assert not re.search(r"(?<!\\)[!\[\]()<>*:$]", escaped)
