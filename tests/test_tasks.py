"""Tasks: loading FireAct's real question files and scoring answers exactly as FireAct does."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fireact_core.errors import FormatError, NotFoundError, PrerequisiteError
from fireact_core.generation.tasks import Question, Score, exact_match, f1_score, get_task, list_tasks, normalize_answer

FIREACT = Path(__file__).resolve().parents[1].parent / "shared" / "fireact"
TASKS_DIR = FIREACT / "tasks"
TRAJS = FIREACT / "trajs" / "hotpotqa_dev_0_500_llama_models_lora_llama-2-7b-d_1000_0.7_2023-09-19-00-49-36.json"


@pytest.fixture(scope="module")
def hotpotqa_dev() -> list[Question]:
    return get_task("hotpotqa").load(TASKS_DIR, "dev")


# --- scoring --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("The Beatles", "beatles"),
        ("An apple a day", "apple day"),
        ("  Hello,   World!  ", "hello world"),
        ("Theatre and anthem", "theatre and anthem"),
        ("U.S.A.", "usa"),
        ("the-the", "thethe"),
        ("", ""),
    ],
)
def test_normalize_answer(text: str, expected: str) -> None:
    assert normalize_answer(text) == expected


def test_normalize_answer_is_fireacts_regular_expressions_on_any_text() -> None:
    """The quick paths (a byte table for ASCII text, articles dropped as whole words) give what FireAct's own
    steps give: lower, drop punctuation, replace `\\b(a|an|the)\\b` with a space, fold white space; on text with
    Unicode letters, digits, marks, dashes, underscores and separators (`str.split` splits on \\x1c-\\x1f)."""
    import random
    import re
    import string

    drop = {ord(ch): None for ch in string.punctuation}
    articles = re.compile(r"\b(a|an|the)\b")

    def fireact(s: str) -> str:
        return " ".join(articles.sub(" ", s.lower().translate(drop)).split())

    rng = random.Random(3)
    pieces = list("aAnNtThHeE xyz_-.,'?!\t\n\x1c\x1f\u00a0\u2013\u00e9\u0301\u00df\u0130\u00bd\u00b25\u0663") + [
        "the", "an", "a", "The", "A.", "THE", "an_", "the\u0301"]
    for _ in range(50_000):
        text = "".join(rng.choice(pieces) for _ in range(rng.randint(0, 12)))
        assert normalize_answer(text) == fireact(text), text


def test_exact_match_ignores_case_articles_and_punctuation() -> None:
    assert exact_match("The Eiffel Tower.", "eiffel tower")
    assert exact_match("  a  Chief of Protocol ", "Chief of Protocol")
    assert not exact_match("Eiffel", "Eiffel Tower")


def test_f1_partial_overlap() -> None:
    assert f1_score("Eiffel", "the Eiffel Tower") == pytest.approx(2 / 3)
    assert f1_score("Paris France", "Paris") == pytest.approx(2 / 3)
    assert f1_score("London", "Paris") == 0.0
    assert f1_score("Chief of Protocol", "chief of protocol!") == 1.0


def test_f1_counts_repeated_tokens_once_per_match() -> None:
    assert f1_score("new new york", "new york") == pytest.approx(0.8)


def test_f1_yes_no_rule() -> None:
    assert f1_score("yes", "yes") == 1.0
    assert f1_score("Yes.", "yes") == 1.0
    assert f1_score("yes", "yes it is") == 0.0
    assert f1_score("no answer", "no") == 0.0
    assert f1_score("noanswer", "noanswer") == 1.0
    assert f1_score("it is yes", "yes") == 0.0


def test_hotpotqa_score_model() -> None:
    task = get_task("hotpotqa")
    assert task.score("The Animorphs", "Animorphs") == Score(reward=True, em=1.0, f1=1.0)
    partial = task.score("Chief", "Chief of Protocol")
    assert (partial.reward, partial.em) == (False, 0.0)
    assert partial.f1 == pytest.approx(0.5)


@pytest.mark.parametrize("task_name", ["hotpotqa", "bamboogle", "custom", "strategyqa", "mmlu"])
@pytest.mark.parametrize("pred", [None, "", "   "])
def test_missing_prediction_scores_zero(task_name: str, pred: str | None) -> None:
    gold = {"strategyqa": "yes", "mmlu": "A"}.get(task_name, "Paris")
    assert get_task(task_name).score(pred, gold) == Score(reward=False, em=0.0, f1=0.0)


def test_missing_gold_scores_zero() -> None:
    assert get_task("hotpotqa").score("Paris", None).reward is False
    assert get_task("mmlu").score("A", None).em == 0.0


@pytest.mark.parametrize(
    ("pred", "gold", "em"),
    [
        ("Yes", "yes", True),
        ("yes, because it is larger", "yes", True),
        ("Yes.", True, True),
        ("yes", "true", True),
        ("No, it cannot", "no", True),
        ("no", False, True),
        ("No", "false", True),
        ("no", "yes", False),
        ("yes", "no", False),
        ("Maybe yes", "yes", False),
        ("The answer is no", "no", False),
        (" yes", "yes", False),
        ("(yes)", "yes", False),
        ("Not sure", "no", True),
    ],
)
def test_strategyqa_prefix_scoring(pred: str, gold: str | bool, em: bool) -> None:
    """FireAct's rule: the lower-cased prediction starts with "yes" (gold true) or "no" (gold false), nothing stripped."""
    score = get_task("strategyqa").score(pred, gold)
    assert score == Score(reward=em, em=float(em), f1=float(em))


@pytest.mark.parametrize(
    ("pred", "gold", "em"),
    [("B", "B", True), ("b", "B", True), ("B. 1", "B", True), (" B. 1", "B", False), ("b) the second", "b", True),
     ("A", "B", False), ("The answer is B", "B", False)],
)
def test_mmlu_letter_scoring(pred: str, gold: str, em: bool) -> None:
    assert get_task("mmlu").score(pred, gold) == Score(reward=em, em=float(em), f1=float(em))


def test_fireact_run_scores_agree_row_by_row(hotpotqa_dev: list[Question]) -> None:
    rows = json.loads(TRAJS.read_text())
    assert len(rows) == 500
    task = get_task("hotpotqa")
    scores = []
    for key, row in rows.items():
        score = task.score(row["pred"], row["gt"])
        assert score.em == float(row["em"]), key
        assert score.f1 == pytest.approx(row["f1"], abs=1e-12), key
        assert score.reward == bool(row["reward"]), key
        assert task.score(row["pred"], hotpotqa_dev[int(key)].answer) == score, key
        scores.append(score)
    assert round(sum(s.em for s in scores) / len(scores), 3) == 0.262
    assert round(sum(s.f1 for s in scores) / len(scores), 3) == 0.380


# --- registry and real files ------------------------------------------------------------------------


def test_registry() -> None:
    assert list_tasks() == ["bamboogle", "custom", "hotpotqa", "mmlu", "strategyqa"]
    assert get_task("HotpotQA") is get_task("hotpotqa")
    assert get_task(" MMLU ").name == "mmlu"
    with pytest.raises(NotFoundError, match="known tasks: bamboogle, custom"):
        get_task("gsm8k")


def test_splits_present() -> None:
    assert get_task("hotpotqa").splits(TASKS_DIR) == ["dev", "test"]
    assert get_task("strategyqa").splits(TASKS_DIR) == ["dev", "test"]
    assert get_task("bamboogle").splits(TASKS_DIR) == ["test"]
    assert get_task("mmlu").splits(TASKS_DIR) == ["dev", "val"]
    assert get_task("custom").splits(TASKS_DIR) == []
    assert get_task("hotpotqa").splits(TASKS_DIR / "nowhere") == []


def test_hotpotqa_dev(hotpotqa_dev: list[Question]) -> None:
    assert len(hotpotqa_dev) == 7405
    first = hotpotqa_dev[0]
    assert first == Question(task="hotpotqa", split="dev", qid="0",
                             question="Were Scott Derrickson and Ed Wood of the same nationality?",
                             answer="yes", meta={"type": "comparison"})
    assert hotpotqa_dev[1].answer == "Chief of Protocol"
    assert [q.qid for q in hotpotqa_dev[:3]] == ["0", "1", "2"]
    assert {q.meta["type"] for q in hotpotqa_dev} == {"bridge", "comparison"}


def test_hotpotqa_test_has_no_answers() -> None:
    questions = get_task("hotpotqa").load(TASKS_DIR, "test")
    assert len(questions) == 7405
    assert all(q.answer is None for q in questions)
    assert questions[0].question.startswith("What position on the Billboard Top 100")


def test_strategyqa() -> None:
    task = get_task("strategyqa")
    dev = task.load(TASKS_DIR, "dev")
    assert len(dev) == 229
    assert dev[0].qid == "e0044a7b4d146d611e73"
    assert dev[0].answer == "no"
    assert dev[0].meta["term"] == "Albany, Georgia"
    assert {q.answer for q in dev} == {"yes", "no"}
    assert task.score("No.", dev[0].answer).reward
    test = task.load(TASKS_DIR, "test")
    assert len(test) == 490
    assert test[0].qid == "564959490dd0b8316a88" and test[0].answer is None


def test_bamboogle() -> None:
    questions = get_task("bamboogle").load(TASKS_DIR, "test")
    assert len(questions) == 125
    assert questions[0].question == "Who was president of the United States in the year that Citibank was founded?"
    assert questions[0].answer == "james madison"
    assert questions[2].answer == "1999"
    assert all(q.answer for q in questions)


def test_mmlu_dev() -> None:
    questions = get_task("mmlu").load(TASKS_DIR, "dev")
    subjects = {q.meta["subject"] for q in questions}
    assert len(subjects) == 57
    assert len(questions) == 57 * 5
    first = questions[0]
    assert first.qid == "abstract_algebra/0"
    question = "Question: Find all c in Z_3 such that Z_3[x]/(x^2 + c) is a field."
    assert first.question == question + "\nA. 0\nB. 1\nC. 2\nD. 3"
    assert first.answer == "B"
    assert first.meta["choices"] == {"A": "0", "B": "1", "C": "2", "D": "3"}
    assert {q.answer for q in questions} == {"A", "B", "C", "D"}
    assert len({q.qid for q in questions}) == len(questions)


def test_mmlu_single_subject_file() -> None:
    path = TASKS_DIR / "mmlu" / "val" / "astronomy_val.csv"
    questions = get_task("mmlu").load(TASKS_DIR, "val", path=path)
    assert len(questions) == 16
    assert {q.meta["subject"] for q in questions} == {"astronomy"}
    assert questions[3].qid == "astronomy/3"


# --- custom ---------------------------------------------------------------------------------------------


def test_custom_csv(tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    path.write_text('Question,ANSWER,source\nWho wrote "Dune"?,Frank Herbert,book\n"Capital, France?",Paris,\n')
    task = get_task("custom")
    questions = task.load(tmp_path, "test", path=path)
    assert [(q.qid, q.question, q.answer) for q in questions] == [
        ("0", 'Who wrote "Dune"?', "Frank Herbert"),
        ("1", "Capital, France?", "Paris"),
    ]
    assert questions[0].meta == {"source": "book"} and questions[0].task == "custom"
    assert task.score("frank herbert.", questions[0].answer).reward


def test_custom_jsonl(tmp_path: Path) -> None:
    path = tmp_path / "mine.jsonl"
    path.write_text('{"question": "2+2?", "answer": 4}\n\n{"question": "Open question", "id": "x"}\n')
    questions = get_task("custom").load(tmp_path, "dev", path=path)
    assert [(q.qid, q.answer) for q in questions] == [("0", "4"), ("1", None)]
    assert questions[1].meta == {"id": "x"} and questions[1].split == "dev"


def test_custom_needs_a_path() -> None:
    with pytest.raises(PrerequisiteError, match="pass the path"):
        get_task("custom").load(TASKS_DIR, "test")


# --- bad input ---------------------------------------------------------------------------------------


def _format_error(task: str, tmp_path: Path, split: str = "dev", path: Path | None = None) -> FormatError:
    with pytest.raises(FormatError) as info:
        get_task(task).load(tmp_path, split, path=path)
    return info.value


def test_missing_task_folder(tmp_path: Path) -> None:
    error = _format_error("hotpotqa", tmp_path)
    assert error.path == str(tmp_path / "hotpotqa" / "dev.json") and error.line == 1
    assert "copy FireAct's data/hotpotqa" in str(error)


def test_missing_split_names_present_splits() -> None:
    error = _format_error("strategyqa", TASKS_DIR, split="train")
    assert error.path.endswith("strategyqa/train.json")
    assert "splits of strategyqa there: dev, test" in error.message


def test_missing_mmlu_folder(tmp_path: Path) -> None:
    error = _format_error("mmlu", tmp_path, split="test")
    assert error.path == str(tmp_path / "mmlu" / "test") and error.line == 1


def test_empty_mmlu_folder(tmp_path: Path) -> None:
    (tmp_path / "mmlu" / "dev").mkdir(parents=True)
    assert get_task("mmlu").splits(tmp_path) == []
    assert "no SUBJECT_dev.csv files" in _format_error("mmlu", tmp_path).message


def test_invalid_json_names_line(tmp_path: Path) -> None:
    (tmp_path / "hotpotqa").mkdir()
    (tmp_path / "hotpotqa" / "dev.json").write_text('[\n{"question": "q", "answer": "a"},\n{"question": }\n]\n')
    error = _format_error("hotpotqa", tmp_path)
    assert error.line == 3 and "invalid JSON" in error.message
    assert str(error).startswith(f"{tmp_path / 'hotpotqa' / 'dev.json'}:3: ")


def test_json_not_an_array(tmp_path: Path) -> None:
    path = tmp_path / "q.json"
    path.write_text('{"question": "q"}')
    error = _format_error("hotpotqa", tmp_path, path=path)
    assert (error.line, error.path) == (1, str(path)) and "JSON array" in error.message


def test_json_item_missing_field_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    items = [{"qid": "a", "question": "q1", "answer": True}, {"qid": "b", "answer": False}]
    path.write_text(json.dumps(items, indent=4))
    error = _format_error("strategyqa", tmp_path, path=path)
    assert error.line == 7 and "missing field 'question'" in error.message


def test_json_item_wrong_type(tmp_path: Path) -> None:
    path = tmp_path / "dev.json"
    path.write_text('[{"qid": "a", "question": "q", "answer": "yes"}]')
    error = _format_error("strategyqa", tmp_path, path=path)
    assert error.line == 1 and "field 'answer' should be bool" in error.message
    path.write_text('[{"question": "q"},\n "just text"]')
    error = _format_error("hotpotqa", tmp_path, path=path)
    assert error.line == 2 and "expected a JSON object" in error.message


def test_csv_missing_column(tmp_path: Path) -> None:
    (tmp_path / "bamboogle").mkdir()
    (tmp_path / "bamboogle" / "test.csv").write_text("Question,Reply\nWho?,Me\n")
    error = _format_error("bamboogle", tmp_path, split="test")
    assert error.line == 1 and "missing column 'answer'" in error.message and "Question, Reply" in error.message


def test_csv_ragged_row_names_its_line(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text('question,answer\n"multi\nline",ok\nWho, me, you?,x\n')
    error = _format_error("custom", tmp_path, path=path)
    assert error.line == 4 and "quote cells with commas" in error.message


def test_csv_empty_file(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_text("")
    assert "empty file" in _format_error("custom", tmp_path, path=path).message


def test_mmlu_bad_rows(tmp_path: Path) -> None:
    folder = tmp_path / "mmlu" / "dev"
    folder.mkdir(parents=True)
    path = folder / "physics_dev.csv"
    path.write_text("q1,a,b,c,d,A\nq2,a,b,c,d,E\n")
    error = _format_error("mmlu", tmp_path)
    assert (error.path, error.line) == (str(path), 2) and "not one of A, B, C, D" in error.message
    path.write_text("q1,a,b,c,d,A\nq2,a,b,c\n")
    assert _format_error("mmlu", tmp_path).line == 2


def test_invalid_jsonl_names_line(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "a"}\n{"question": "b"\n')
    error = _format_error("custom", tmp_path, path=path)
    assert error.line == 2 and "one JSON object" in error.message


def test_not_utf8(tmp_path: Path) -> None:
    path = tmp_path / "q.csv"
    path.write_bytes(b"question,answer\ncaf\xe9,x\n")
    error = _format_error("custom", tmp_path, path=path)
    assert error.line == 2 and "UTF-8" in error.message


def test_custom_unknown_extension_and_missing_file(tmp_path: Path) -> None:
    assert "unknown file type" in _format_error("custom", tmp_path, path=tmp_path / "q.txt").message
    error = _format_error("custom", tmp_path, path=tmp_path / "absent.jsonl")
    assert error.line == 1 and "no such file" in error.message


def test_question_keys_in_bulk_are_those_of_one_question_at_a_time() -> None:
    """`question_key_column` (ASCII text in bulk, the rest one at a time) gives `question_key`'s string for every
    question: FireAct's own questions, and text of printable ASCII, every kind of white space,
    control characters, non-ASCII letters, punctuation, articles and the `Question: ` prefix (once or twice)."""
    import random

    from fireact_core.io.formats import iter_batches
    from fireact_core.io.lint import question_key, question_key_column
    from tests.conftest import FINETUNE

    questions = [t["question"] for name in ("gpt_multitask.jsonl", "alpaca_multitask.json")
                 for part in iter_batches(str(FINETUNE / name), "auto", None, 10_000) for t in part.records]
    rng = random.Random(7)
    pieces = list("aAnNtThHeE xyz09_-.,'?!()[]{}~\t\n\r\x0b\x0c\x1c\x1f\x00\x7f\u00a0\u2013\u00e9\u00df\u0130") + [
        "the", "an", "a", "The", "A.", "THE", "an_", "Question: ", "question: ", "  "]
    questions += ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 14))) for _ in range(30_000)]
    questions += ["", " ", "Question: ", "Question: Question: The a", "Question:the"]
    assert len(questions) > 32_000
    assert question_key_column(questions) == [question_key(q) for q in questions]
    assert question_key_column(["caf\u00e9 the", "\x01 A"]) == [question_key("caf\u00e9 the"), question_key("\x01 A")]
    assert question_key_column([]) == []
