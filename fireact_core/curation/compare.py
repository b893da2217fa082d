"""Side-by-side comparison of two trajectories of the same question: steps aligned by kind (thought with
thought, search with search, finish with finish) and word differences marked.

The HTML built here escapes every piece of model or tool text, so an observation holding `<script>`, tags or a
markdown image shows as the characters it is made of.
"""

from __future__ import annotations

import difflib
import html
import re

from ..records import Step, Trajectory

CELL_LABELS = {
    "both_right": "both right", "only_a": "only A right", "only_b": "only B right", "both_wrong": "both wrong",
    "only_in_a": "only in A", "only_in_b": "only in B",
}
TOKEN_RE = re.compile(r"(\s+)")
STYLE_TABLE = "width:100%;border-collapse:collapse;table-layout:fixed;font-size:0.9rem"
STYLE_CELL = "vertical-align:top;border:1px solid #ddd;padding:6px;white-space:pre-wrap;word-wrap:break-word"
STYLE_MARK = "background:#ffe08a"
FIELD_COLOURS = {"Thought": "#1f6feb", "Action": "#bf5700", "Observation": "#57606a", "Text": "#8250df"}


def step_kind(step: Step) -> str:
    """What a step does, for alignment: the tool it calls, else 'thought' or 'text'."""
    if step.action is not None:
        return (step.action.name or "malformed").lower()
    if step.thought is not None:
        return "thought"
    return "text"


def align_steps(a: list[Step], b: list[Step]) -> list[tuple[int | None, int | None]]:
    """Pairs of step indexes (None where one side has no counterpart), in order."""
    kinds_a, kinds_b = [step_kind(s) for s in a], [step_kind(s) for s in b]
    pairs: list[tuple[int | None, int | None]] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, kinds_a, kinds_b, autojunk=False).get_opcodes():
        if op == "equal":
            pairs.extend(zip(range(i1, i2), range(j1, j2)))
            continue
        left, right = list(range(i1, i2)), list(range(j1, j2))
        for k in range(max(len(left), len(right))):
            pairs.append((left[k] if k < len(left) else None, right[k] if k < len(right) else None))
    return pairs


def word_diff_html(a: str, b: str) -> tuple[str, str]:
    """Both texts escaped, with the words that differ wrapped in <mark>."""
    ta, tb = TOKEN_RE.split(a), TOKEN_RE.split(b)
    out_a: list[str] = []
    out_b: list[str] = []
    for op, i1, i2, j1, j2 in difflib.SequenceMatcher(None, ta, tb, autojunk=False).get_opcodes():
        for tokens, out, lo, hi in ((ta, out_a, i1, i2), (tb, out_b, j1, j2)):
            text = html.escape("".join(tokens[lo:hi]))
            if op != "equal" and text.strip():
                text = f'<mark style="{STYLE_MARK}">{text}</mark>'
            out.append(text)
    return "".join(out_a), "".join(out_b)


def step_fields(step: Step | None) -> dict[str, str]:
    if step is None:
        return {}
    fields: dict[str, str] = {}
    if step.thought is not None:
        fields["Thought"] = step.thought
    if step.action is not None:
        fields["Action"] = step.action.raw
    if step.thought is None and step.action is None and step.raw is not None:
        fields["Text"] = step.raw
    if step.observation is not None:
        fields["Observation"] = step.observation
    return fields


def _cell(fields: dict[str, str], other: dict[str, str], left: bool) -> str:
    if not fields:
        return '<span style="color:#999">(no step)</span>'
    parts = []
    for name, text in fields.items():
        if name in other and other[name] != text:
            a, b = word_diff_html(text, other[name]) if left else word_diff_html(other[name], text)
            body = a if left else b
        else:
            body = html.escape(text)
        colour = FIELD_COLOURS[name]
        parts.append(f'<div><b style="color:{colour}">{name}:</b> {body}</div>')
    return "".join(parts)


def pair_html(a: Trajectory | None, b: Trajectory | None, name_a: str = "A", name_b: str = "B") -> str:
    """A table of the two trajectories' steps, aligned, differences marked; all text escaped."""
    steps_a, steps_b = (a.steps if a else []), (b.steps if b else [])
    rows = []
    for i, j in align_steps(steps_a, steps_b):
        fa = step_fields(steps_a[i] if i is not None else None)
        fb = step_fields(steps_b[j] if j is not None else None)
        label = f"{'' if i is None else i + 1} / {'' if j is None else j + 1}"
        rows.append(
            f'<tr data-testid="aligned-step"><td style="{STYLE_CELL};width:4em;color:#777">{html.escape(label)}</td>'
            f'<td style="{STYLE_CELL}">{_cell(fa, fb, True)}</td><td style="{STYLE_CELL}">{_cell(fb, fa, False)}</td></tr>'
        )
    head = (f'<tr><th style="{STYLE_CELL};width:4em">step</th><th style="{STYLE_CELL}">{html.escape(name_a)}</th>'
            f'<th style="{STYLE_CELL}">{html.escape(name_b)}</th></tr>')
    return f'<table style="{STYLE_TABLE}" class="fireact-compare">{head}{"".join(rows)}</table>'


def align_fork(parent: list[Step], child: list[Step], kept: int) -> list[tuple[int | None, int | None]]:
    """`align_steps` of a parent and a continuation of it: the `kept` shared steps one to one, then the rest."""
    shared: list[tuple[int | None, int | None]] = [(i, i) for i in range(min(kept, len(parent), len(child)))]
    rest = align_steps(parent[len(shared):], child[len(shared):])
    return shared + [(None if i is None else i + len(shared), None if j is None else j + len(shared)) for i, j in rest]
