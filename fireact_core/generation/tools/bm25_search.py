"""Offline search: BM25 (bm25s) over a passage corpus, a JSONL file of {"title", "text"} lines.
Without a file it searches the small corpus shipped with FireAct Studio (`corpus.jsonl`)."""

from __future__ import annotations

import json
import threading
from functools import lru_cache
from pathlib import Path

from ...errors import FormatError, missing_package

DEFAULT_CORPUS = Path(__file__).with_name("corpus.jsonl")
MAX_CHARS = 600


def read_corpus(path: str | Path) -> list[dict[str, str]]:
    path = Path(path)
    if not path.is_file():
        raise FormatError(path, 1, "no such corpus file; give a JSONL file of {\"title\", \"text\"} lines")
    passages = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise FormatError(path, number, f"invalid JSON ({exc.msg}); each line is one {{title, text}} object") from None
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            raise FormatError(path, number, "each line needs a string 'text' (and a 'title')")
        passages.append({"title": str(row.get("title") or ""), "text": row["text"]})
    if not passages:
        raise FormatError(path, 1, "the corpus is empty")
    return passages


@lru_cache(maxsize=4)
def _index(path: str, mtime: float):
    try:
        import bm25s
    except ImportError:
        raise missing_package("bm25s") from None
    passages = read_corpus(path)
    retriever = bm25s.BM25()
    retriever.index(bm25s.tokenize([f"{p['title']} {p['text']}" for p in passages], stopwords="en", show_progress=False),
                    show_progress=False)
    return retriever, passages


class BM25Search:
    name = "local"

    def __init__(self, corpus: str | None = None, **_: object):
        self.path = str(Path(corpus or DEFAULT_CORPUS).resolve())
        self.cache_key = f"local:{self.path}"
        self._lock = threading.Lock()
        if not Path(self.path).is_file():
            raise FormatError(self.path, 1, "no such corpus file; give a JSONL file of {\"title\", \"text\"} lines")
        self._retriever, self._passages = _index(self.path, Path(self.path).stat().st_mtime)

    def search(self, query: str) -> str | None:
        import bm25s

        tokens = bm25s.tokenize([query], stopwords="en", show_progress=False)
        if not tokens.vocab:
            return None
        with self._lock:
            docs, scores = self._retriever.retrieve(tokens, k=1, show_progress=False)
        if float(scores[0][0]) <= 0:
            return None
        text = self._passages[int(docs[0][0])]["text"]
        return text if len(text) <= MAX_CHARS else text[:MAX_CHARS].rsplit(" ", 1)[0] + " ..."
