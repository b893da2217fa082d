"""Browse, Trajectory, Review and Compare under AppTest against a temporary database built from the real
FireAct run (two runs over the same questions); every action goes through the widgets and is checked in the store."""

from __future__ import annotations

import html
import re

import pytest
from streamlit.testing.v1 import AppTest

from fireact_core.curation.compare import CELL_LABELS
from fireact_core.filters import TrajectoryFilter
from fireact_core.store import Store
from tests.conftest import copy_database, signed_in_pages_database
from tests.helpers.pages import button, ok, open_page, pick, pick_tables
from tests.helpers.runs import RUN_A, RUN_B, XSS_QUESTION


@pytest.fixture(scope="module")
def runs_db(tmp_path_factory, two_runs_db):
    path = copy_database(two_runs_db, tmp_path_factory.mktemp("pages"))
    store = Store(path)
    store.save_user("alice", "admin", "test")
    for name in ("bob", "carol", "dave"):
        store.save_user(name, "annotator", "alice")
    return path


@pytest.fixture
def db(runs_db, tmp_path, monkeypatch):
    return signed_in_pages_database(runs_db, tmp_path, monkeypatch)


def texts(at: AppTest) -> list[str]:
    return [t.value for t in at.text]


def cards_text(at: AppTest) -> str:
    """The text of the page's step cards and trajectory header (HTML, unescaped)."""
    return "\n".join(html.unescape(h.proto.body) for h in at.get("html"))


def test_pages_say_what_is_missing_on_an_empty_database(tmp_path, monkeypatch):
    monkeypatch.setenv("FIREACT_DB", str(tmp_path / "empty.duckdb"))
    for name in ("1_Browse.py", "2_Trajectory.py", "3_Review.py", "4_Compare.py"):
        at = ok(open_page(name))
        assert at.info, name


def test_browse_filters_from_the_address_and_the_widgets(db):
    at = ok(open_page("1_Browse.py", em="wrong", source=RUN_A))
    expected = db.count_filtered(TrajectoryFilter(em="wrong", source=[RUN_A]))
    assert at.subheader[0].value == f"{expected} trajectories match"
    assert at.radio(key="f_em").value == "wrong" and at.multiselect(key="f_source").value == [RUN_A]
    at.text_input(key="f_q").input("Super Bowl").run()
    ok(at)
    f = TrajectoryFilter(em="wrong", source=[RUN_A], q="Super Bowl")
    assert at.subheader[0].value == f"{db.count_filtered(f)} trajectories match"
    assert at.query_params["q"] == "Super Bowl" and at.query_params["em"] == "wrong"
    at.radio(key="f_em").set_value("any").run()
    assert "em" not in at.query_params
    assert "f_smin" not in [w.key for w in at.number_input]  # behind "More filters and order", closed
    at.session_state["browse_more"] = True  # open "More filters and order"
    at.run()
    at.number_input(key="f_smin").set_value(4).run()
    four = f"{db.count_filtered(TrajectoryFilter(source=[RUN_A], q='Super Bowl', steps_min=4))} trajectories match"
    assert at.subheader[0].value == four and at.query_params["steps_min"] == "4"
    at.session_state["browse_more"] = False  # closed, its filters still apply and are named beside it
    at.run()
    assert "f_smin" not in [w.key for w in at.number_input] and at.subheader[0].value == four
    assert any("at least 4 steps" in c.value for c in at.caption), [c.value for c in at.caption]
    at.radio(key="f_em").set_value("wrong").run()
    f = TrajectoryFilter(source=[RUN_A], q="Super Bowl", steps_min=4, em="wrong")
    assert at.subheader[0].value == f"{db.count_filtered(f)} trajectories match" and at.query_params["steps_min"] == "4"


def test_browse_names_what_is_set_behind_more_filters(db):
    at = ok(open_page("1_Browse.py", lint="failed,no_finish", review="accepted", steps_max="2", sort="em",
                      desc="1"))
    assert "Set: lint failed, no_finish; review accepted; at most 2 steps; by em descending" in captions(at)
    flt = TrajectoryFilter(lint=["failed", "no_finish"], review="accepted", steps_max=2)
    assert at.subheader[0].value == f"{db.count_filtered(flt)} trajectories match"


def test_browse_bulk_label_accept_reject_are_stored(db):
    at = ok(open_page("1_Browse.py", source=RUN_B, em="wrong", steps_max="2"))
    f = TrajectoryFilter(source=[RUN_B], em="wrong", steps_max=2)
    ids = db.filter_ids(f)
    assert ids
    at.radio(key="bulk_scope").set_value("every trajectory matching the filter")
    at.text_input(key="bulk_tag").input("short and wrong").run()
    button(at, "Add label").click().run()
    ok(at)
    assert all(db.review_state(i) is None for i in ids), "a whole-filter action waits for its confirmation"
    assert any(f"to all {len(ids)} trajectories matching this filter" in w.value for w in at.warning), [w.value for w in at.warning]
    button(at, f"Label all {len(ids)}").click().run()
    ok(at)
    assert all(db.review_state(i).labels == ["short and wrong"] for i in ids)
    button(at, "Reject").click().run()
    button(at, "Cancel").click().run()
    assert db.count_filtered(f.model_copy(update={"review": "rejected"})) == 0
    button(at, "Reject").click().run()
    button(at, f"Reject all {len(ids)}").click().run()
    assert db.count_filtered(f.model_copy(update={"review": "rejected"})) == len(ids)
    assert any("rejected" in s.value for s in at.success)
    at.session_state["browse_more"] = True
    at.run()
    at.radio(key="f_review").set_value("rejected").run()
    assert at.subheader[0].value == f"{len(ids)} trajectories match"


def test_browse_lists_a_page_in_a_picking_table_and_acts_on_the_rows_picked(db):
    at = ok(open_page("1_Browse.py", em="wrong", source=RUN_A))
    flt = TrajectoryFilter(em="wrong", source=[RUN_A])
    ids = db.filter_ids(flt, limit=50)
    table = pick_tables(at)["browse_table"]
    names = [c["name"] for c in table["columns"]]
    assert names[:3] == ["EM", "F1", "question"] and {"lints", "review", "source"} <= set(names)
    assert table["select"] == "multi" and names[table["open"]] == "question" and len(table["rows"]) == len(ids)
    first = db.get_trajectory(ids[0])
    assert table["rows"][0][:3] == ["0", f"{first.f1:.2f}", first.question]
    assert table["titles"][str(names.index("source"))][0] == RUN_A  # the full name, on hover
    ok(pick(at, "browse_table", [0, 2]))
    scope = at.radio(key="bulk_scope")
    assert scope.options == ["selected rows", "every trajectory matching the filter"]
    assert "2 selected" in str(scope.proto)
    at.text_input(key="bulk_tag").input("picked").run()
    button(at, "Add label").click().run()
    ok(at)
    assert [i for i in ids if (db.review_state(i) and db.review_state(i).labels == ["picked"])] == [ids[0], ids[2]]
    # the same selection does not carry over to other rows: the next page starts with none
    at.number_input(key="f_page").set_value(2).run()
    assert "0 selected" in str(at.radio(key="bulk_scope").proto)


def test_browse_opens_a_trajectory_keeping_the_filter(db):
    at = ok(open_page("1_Browse.py", em="wrong", source=RUN_A))
    first = db.filter_ids(TrajectoryFilter(em="wrong", source=[RUN_A]), limit=1)[0]
    at.selectbox(key="browse_open").set_value(first).run()
    ok(at)
    assert at.query_params["id"] == first and at.query_params["em"] == "wrong"
    assert at.title[0].value.endswith("Trajectory")
    assert db.get_trajectory(first).question in cards_text(at)


def edit_keys(at: AppTest, tid: str) -> str:
    """The key prefix of the editor's widgets (it changes when steps are inserted, deleted or moved)."""
    return f"e:{tid}:{at.session_state[f'draft:{tid}']['gen']}:"


def edit_all(at: AppTest, tid: str) -> AppTest:
    """Leave the reading view for the whole-trajectory editor."""
    return ok(at.toggle(key=f"t:whole:{tid}").set_value(True).run())


def test_editor_redraws_only_when_an_edit_moves_another_field(db):
    """A thought edit keeps every field's key, so text being typed in another field during that rerun is kept;
    a final answer edit changes the finish action, so the fields are redrawn from the draft."""
    tid = db.filter_ids(TrajectoryFilter(source=[RUN_A], em="wrong"), limit=1)[0]
    before = db.get_trajectory(tid)
    last = len(before.steps) - 1
    assert before.steps[last].action and before.steps[last].action.name == "finish"
    at = edit_all(ok(open_page("2_Trajectory.py", id=tid)), tid)
    prefix = edit_keys(at, tid)
    ok(at.text_area(key=f"{prefix}0:thought").input("A new first thought").run())
    assert edit_keys(at, tid) == prefix
    assert at.text_area(key=f"{prefix}0:thought").value == "A new first thought"
    ok(at.text_input(key=f"{prefix}final").input(before.gold).run())
    redrawn = edit_keys(at, tid)
    assert redrawn != prefix
    assert at.text_input(key=f"{redrawn}{last}:action").value == f"finish[{before.gold}]"
    assert at.text_area(key=f"{redrawn}0:thought").value == "A new first thought"


def test_trajectory_edit_save_history_restore(db):
    f = TrajectoryFilter(source=[RUN_A], em="wrong")
    tid = db.filter_ids(f, limit=1)[0]
    before = db.get_trajectory(tid)
    at = ok(open_page("2_Trajectory.py", id=tid, source=RUN_A, em="wrong"))
    assert before.question in cards_text(at)
    assert any(c.value == f"1 of {db.count_filtered(f)} in this filter" for c in at.caption)
    assert not [t for t in at.text_area if t.key.startswith("e:")], "the page opens on the reading view"
    edit_all(at, tid)
    prefix = edit_keys(at, tid)
    at.text_area(key=f"{prefix}0:thought").input("An edited first thought")
    at.text_input(key=f"{prefix}final").input(before.gold)
    at.toggle(key=f"{prefix}0:train").set_value(False)
    at.text_input(key=f"reason:{tid}").input("gold answer")
    at.run()
    button(at, "Save").click().run()
    ok(at)
    saved = db.get_trajectory(tid)
    assert saved.revision == 1 and saved.steps[0].thought == "An edited first thought"
    assert saved.final_answer == before.gold and saved.em == 1.0 and saved.steps[0].flags.train is False
    assert db.list_revisions(tid)[-1].author == "alice" and db.list_revisions(tid)[-1].reason == "gold answer"
    assert any("Saved revision 1" in s.value for s in at.success)
    assert not at.code, "the history's diffs are drawn only while it is open"
    at.session_state[f"history:{tid}"] = True  # open the History panel
    ok(at.run())
    assert any("+Thought: An edited first thought" in c.value for c in at.code)
    button(at, "Restore revision 0").click().run()
    ok(at)
    restored = db.get_trajectory(tid)
    assert restored.revision == 2 and restored.steps == before.steps and restored.final_answer == before.final_answer
    assert [r.reason for r in db.list_revisions(tid)][-1] == "restored revision 0"


def test_trajectory_structure_buttons_and_next(db):
    f = TrajectoryFilter(source=[RUN_A], em="wrong")
    ids = db.filter_ids(f, limit=2)
    before = db.get_trajectory(ids[0])
    at = edit_all(ok(open_page("2_Trajectory.py", id=ids[0], source=RUN_A, em="wrong")), ids[0])
    prefix = edit_keys(at, ids[0])
    at.text_area(key=f"{prefix}0:thought").input("typed before the insert").run()
    at.button(key=f"{edit_keys(at, ids[0])}0:ins").click().run()
    ok(at)
    prefix = edit_keys(at, ids[0])
    assert at.text_area(key=f"{prefix}0:thought").value == "typed before the insert"
    at.text_input(key=f"{prefix}1:action").input("search[inserted query]").run()
    at.button(key=f"{edit_keys(at, ids[0])}{len(before.steps)}:del").click().run()
    button(at, "Save").click().run()
    saved = db.get_trajectory(ids[0])
    assert len(saved.steps) == len(before.steps)
    assert saved.steps[1].action.arg == "inserted query" and saved.steps[0].thought == "typed before the insert"
    button(at, "Next (j)").click().run()
    ok(at)
    assert at.query_params["id"] == ids[1] and db.get_trajectory(ids[1]).question in cards_text(at)
    at.pills(key=f"p:open:{ids[1]}:{at.session_state[f'draft:{ids[1]}']['gen']}").set_value([0]).run()
    at.text_area(key=f"{edit_keys(at, ids[1])}0:thought").input("typed, not saved").run()
    button(at, "Previous (k)").click().run()
    button(at, "Next (j)").click().run()
    assert at.text_area(key=f"{edit_keys(at, ids[1])}0:thought").value == "typed, not saved"
    assert any(c.value.startswith("Unsaved changes") for c in at.caption) and db.get_trajectory(ids[1]).revision == 0
    assert any("Unsaved edits" in i.value for i in at.info)


def captions(at) -> list[str]:
    """The captions' text as shown (markdown escapes taken out)."""
    return [re.sub(r"\\(.)", r"\1", c.value) for c in at.caption]


def test_trajectory_review_widgets_store_an_annotation(db):
    tid = db.filter_ids(TrajectoryFilter(source=[RUN_B]), limit=1)[0]
    at = ok(open_page("2_Trajectory.py", who="carol", id=tid))
    assert f"ann:{tid}:0:status" not in [r.key for r in at.radio]  # the Review panel is drawn when opened
    assert "Not reviewed yet." in captions(at)
    at.session_state["traj_review_open"] = True
    at.run()
    at.radio(key=f"ann:{tid}:0:status").set_value("rejected")
    at.multiselect(key=f"ann:{tid}:0:labels").set_value(["wrong entity"])
    at.radio(key=f"ann:{tid}:0:rating").set_value(2)
    at.text_area(key=f"ann:{tid}:0:comment").input("searched the wrong film").run()
    button(at, "Save review").click().run()
    ok(at)
    state = db.review_state(tid)
    assert (state.status, state.labels, state.rating, state.comment, state.author) == (
        "rejected", ["wrong entity"], 2, "searched the wrong film", "carol")
    assert at.radio(key=f"ann:{tid}:1:status").value == "rejected"
    assert any(c.startswith("Latest review: rejected, ★★, labels: wrong entity, with a comment (by carol")
               for c in captions(at)), captions(at)


def test_two_sessions_editing_the_same_trajectory(db):
    tid = db.filter_ids(TrajectoryFilter(source=[RUN_A], em="wrong"), limit=1)[0]
    alice = edit_all(ok(open_page("2_Trajectory.py", who="alice", id=tid)), tid)
    bob = edit_all(ok(open_page("2_Trajectory.py", who="bob", id=tid)), tid)
    pa, pb = edit_keys(alice, tid), edit_keys(bob, tid)
    alice.text_area(key=f"{pa}0:thought").input("Alice was here").run()
    bob.text_input(key=f"{pb}final").input("Bob's answer").run()
    button(alice, "Save").click().run()
    button(bob, "Save").click().run()
    ok(bob)
    assert any("alice" in e.value for e in bob.error)
    assert bob.text_input(key=f"{edit_keys(bob, tid)}final").value == "Bob's answer"
    assert db.get_trajectory(tid).steps[0].thought == "Alice was here"
    button(bob, "Save mine on top of revision 1").click().run()
    ok(bob)
    now = db.get_trajectory(tid)
    assert now.revision == 2 and now.final_answer == "Bob's answer"
    assert [r.author for r in db.list_revisions(tid)][-2:] == ["alice", "bob"]


def test_review_queue_accept_skip_reject(db):
    f = TrajectoryFilter(source=[RUN_A], em="wrong")
    ids = db.filter_ids(f, limit=3)
    at = ok(open_page("3_Review.py", who="dave", source=RUN_A, em="wrong"))
    total = db.count_filtered(f)
    assert db.get_trajectory(ids[0]).question in cards_text(at)
    assert 'data-testid="step-card"' in "".join(h.proto.body for h in at.get("html"))
    at.multiselect(key="review_labels").set_value(["needs fix"]).run()
    at.session_state[f"review_rating:{ids[0]}"] = 3  # the fourth star
    button(at, "Accept (a)").click().run()
    ok(at)
    state = db.review_state(ids[0])
    assert state.status == "accepted" and state.labels == ["needs fix"] and state.rating == 4
    assert db.get_trajectory(ids[1]).question in cards_text(at)
    button(at, "Skip (s)").click().run()
    assert db.get_trajectory(ids[2]).question in cards_text(at) and db.review_state(ids[1]) is None
    button(at, "Reject (x)").click().run()
    assert db.review_state(ids[2]).status == "rejected"
    assert db.review_progress(f) == (2, total)
    assert f"2 of {total} reviewed" in str(at.get("progress")[0].proto)


def test_compare_counts_cells_and_aligned_steps(db):
    at = ok(open_page("4_Compare.py", a=RUN_A, b=RUN_B))
    counts = db.compare_counts(RUN_A, RUN_B)
    labels = [b.label for b in at.button]
    for cell, label in CELL_LABELS.items():
        assert f"{label}: {counts[cell]}" in labels
    button(at, f"{CELL_LABELS['only_b']}: {counts['only_b']}").click().run()
    ok(at)
    assert at.query_params["cell"] == "only_b"
    assert at.subheader[1].value.startswith(f"{counts['only_b']} questions")
    pairs = db.compare_pairs(RUN_A, RUN_B, "only_b", limit=200)
    table = pick_tables(at)["cmp_table"]
    assert table["select"] == "single" and [r[0] for r in table["rows"]] == [p.question for p in pairs]
    ok(pick(at, "cmp_table", [1]))  # a row picked in the table is the question shown below it
    assert [t.value for t in at.text if t.value == pairs[1].question]
    body = at.get("html")[0].proto.body
    assert body.count('data-testid="aligned-step"') >= 2 and "<mark" in body
    button(at, f"Open {counts['only_b']} trajectories of run A in Browse").click().run()
    ok(at)
    assert at.subheader[0].value == f"{counts['only_b']} trajectories match"


def test_model_text_is_shown_as_text_on_every_page(db):
    tid = "xss0000000000001"
    from tests.helpers.runs import XSS

    at = ok(open_page("2_Trajectory.py", id=tid))
    body = "".join(h.proto.body for h in at.get("html"))
    assert html.escape(XSS) in body and "<script" not in body and "<img" not in body
    edit_all(at, tid)
    assert at.text_area(key=f"{edit_keys(at, tid)}0:observation").value == XSS
    assert not any("<script" in m.value for m in at.markdown)
    at = ok(open_page("3_Review.py", ids=tid))
    body = "".join(h.proto.body for h in at.get("html"))
    assert html.escape(XSS) in body and "<script" not in body and "<img" not in body
    assert not any("<script" in m.value or "![x]" in m.value for m in at.markdown)
    at = ok(open_page("4_Compare.py", a=RUN_A, b=RUN_B, cell="only_in_b"))
    body = at.get("html")[0].proto.body
    assert XSS_QUESTION in texts(at) and "<script" not in body and "&lt;script&gt;" in body and "<img" not in body


def test_markdown_from_the_address_is_shown_literally(db):
    crafted = "![x](http://127.0.0.1:9/p.png) <img src=x>"
    at = ok(open_page("3_Review.py", q=crafted))
    caption = next(c.value for c in at.caption if c.value.startswith("Filter"))
    assert "\\!\\[x\\]" in caption and "<img" not in caption.replace("\\<img", "")
    at = ok(open_page("2_Trajectory.py", id=crafted))
    assert at.info and "\\!\\[x\\]" in at.info[0].value


def test_browse_keeps_the_address_filter_when_coming_back(db):
    at = ok(open_page("1_Browse.py", em="wrong", source=RUN_A))
    first = db.filter_ids(TrajectoryFilter(em="wrong", source=[RUN_A]), limit=1)[0]
    at.selectbox(key="browse_open").set_value(first).run()
    button(at, "Back to Browse").click().run()
    ok(at)
    assert at.radio(key="f_em").value == "wrong" and at.query_params["em"] == "wrong"
    assert at.subheader[0].value == f"{db.count_filtered(TrajectoryFilter(em='wrong', source=[RUN_A]))} trajectories match"


def test_more_filters_opened_after_a_visit_to_another_page_keep_the_address_values(db):
    """A panel's widgets drawn again after the page was left must show the address's values, not their own
    defaults (Streamlit drops a kept widget's value when it is next drawn, unless that run sets it)."""
    at = ok(open_page("1_Browse.py", source=RUN_A, steps_max="2", review="unreviewed"))
    flt = TrajectoryFilter(source=[RUN_A], steps_max=2, review="unreviewed")
    expected = f"{db.count_filtered(flt)} trajectories match"
    at.session_state["browse_more"] = True
    ok(at.run())
    assert at.number_input(key="f_smax").value == 2 and at.subheader[0].value == expected
    ok(at.switch_page("pages/3_Review.py").run())
    at.switch_page("pages/1_Browse.py")
    for key, value in {"source": RUN_A, "steps_max": "2", "review": "unreviewed"}.items():
        at.query_params[key] = value
    ok(at.run())
    assert at.subheader[0].value == expected
    at.session_state["browse_more"] = True
    ok(at.run())
    assert at.number_input(key="f_smax").value == 2 and at.radio(key="f_review").value == "unreviewed"
    assert at.subheader[0].value == expected and at.query_params["steps_max"] == "2"


def test_mix_and_generate_panels_opened_after_a_visit_to_another_page_keep_the_page_defaults(db):
    at = ok(open_page("6_Mix.py"))
    at.session_state["mix_filters_open"] = at.session_state["mix_split_open"] = True
    ok(at.run())
    ok(at.switch_page("pages/1_Browse.py").run())
    ok(at.switch_page("pages/6_Mix.py").run())
    at.session_state["mix_filters_open"] = at.session_state["mix_split_open"] = True
    ok(at.run())
    assert at.checkbox(key="mix_eval").value and at.checkbox(key="mix_dedupe").value
    assert at.slider(key="mix_val").value == 0.1 and at.number_input(key="mix_seed").value == 1
    assert any(c.startswith("Filters: no evaluation questions, one per question") for c in captions(at))

    at = ok(open_page("5_Generate.py"))
    at.session_state["gen_more_open"] = True
    ok(at.run())
    ok(at.switch_page("pages/1_Browse.py").run())
    ok(at.switch_page("pages/5_Generate.py").run())
    at.session_state["gen_more_open"] = True
    ok(at.run())
    assert at.slider(key="gen_perturb_p").value == 0.5 and at.text_input(key="gen_tasks_dir").value
