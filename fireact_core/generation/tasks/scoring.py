"""Answer scoring exactly as FireAct does it (the SQuAD / HotpotQA official normalisation).

`normalize_answer` lower-cases, drops punctuation and the articles a/an/the, and folds white space.
`exact_match` compares normalised strings; `f1_score` is token F1 on them, except that a yes/no/noanswer
on either side scores 0 unless both sides are equal.
"""

from __future__ import annotations

import re
import string
from collections import Counter
from itertools import filterfalse

from pydantic import BaseModel, ConfigDict, Field

_PUNCTUATION = frozenset(string.punctuation)
_DROP_PUNCTUATION = {ord(ch): None for ch in _PUNCTUATION}
PUNCTUATION_BYTES = "".join(sorted(_PUNCTUATION)).encode("ascii")
_ARTICLES = re.compile(r"\b(a|an|the)\b")
ARTICLE_WORDS = frozenset({"a", "an", "the"})
_SPECIAL = frozenset({"yes", "no", "noanswer"})


class Score(BaseModel):
    """The score of one prediction: `reward` is what an agent run counts as solved."""

    model_config = ConfigDict(frozen=True)

    reward: bool = Field(description="True when the prediction counts as correct (em == 1)")
    em: float = Field(ge=0.0, le=1.0, description="exact match, 0 or 1")
    f1: float = Field(ge=0.0, le=1.0, description="token F1 on the normalised answers")

    @classmethod
    def zero(cls) -> Score:
        return cls(reward=False, em=0.0, f1=0.0)

    @classmethod
    def from_em(cls, em: bool) -> Score:
        """A score for tasks whose F1 is their exact match (StrategyQA, MMLU)."""
        value = 1.0 if em else 0.0
        return cls(reward=em, em=value, f1=value)


def normalize_answer(s: str) -> str:
    """Lower case, remove punctuation, remove articles, fold white space (in FireAct's order)."""
    text = s.lower()
    if text.isascii():  # the same removal, a byte table at a time
        text = text.encode("ascii").translate(None, PUNCTUATION_BYTES).decode("ascii")
    else:
        text = text.translate(_DROP_PUNCTUATION)
    words = text.split()
    if "".join(words).isalnum():
        # every word is word characters only (`str.isalnum` is the pattern's `\w`, and no underscore is left), so
        # the pattern's boundaries are the words' ends: an article is a whole word
        return " ".join(filterfalse(ARTICLE_WORDS.__contains__, words))
    return " ".join(_ARTICLES.sub(" ", text).split())


def exact_match(pred: str, gold: str) -> bool:
    """True when the normalised prediction equals the normalised gold answer."""
    return normalize_answer(pred) == normalize_answer(gold)


def f1_score(pred: str, gold: str) -> float:
    """Token-level F1 of the normalised answers, with HotpotQA's yes/no/noanswer rule."""
    pred_norm = normalize_answer(pred)
    gold_norm = normalize_answer(gold)
    if (pred_norm in _SPECIAL or gold_norm in _SPECIAL) and pred_norm != gold_norm:
        return 0.0
    pred_tokens = pred_norm.split()
    gold_tokens = gold_norm.split()
    num_same = sum((Counter(pred_tokens) & Counter(gold_tokens)).values())
    if num_same == 0:
        return 0.0
    precision = num_same / len(pred_tokens)
    recall = num_same / len(gold_tokens)
    return (2 * precision * recall) / (precision + recall)


def is_blank(text: str | None) -> bool:
    """True for a missing or empty prediction or gold answer, which always scores 0."""
    return text is None or not str(text).strip()


def score_qa(pred: str | None, gold: str | None) -> Score:
    """HotpotQA-style scoring: EM and F1 on normalised text, reward = EM."""
    if pred is None or gold is None or is_blank(pred) or is_blank(gold):
        return Score.zero()
    em = exact_match(pred, gold)
    return Score(reward=em, em=1.0 if em else 0.0, f1=f1_score(pred, gold))
