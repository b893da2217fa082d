"""The reading view of a trajectory as HTML: a header (question, gold, answer, EM, F1) and one compact card per
step (thought, the action as a tool chip with its argument, the observation folded past a few lines, the step's
lints, its train flag and perturbation mark). The Trajectory, Review and Compare pages show the same cards.

Every piece of model, tool or user text is escaped here, so text holding `<script>`, tags or a markdown image
shows as the characters it is made of.
"""

from __future__ import annotations

import html
from typing import Iterable

from .compare import align_steps, step_fields, word_diff_html
from ..names import display_name
from ..records import Lint, Step, Trajectory

FOLD_LINES = 4
FOLD_CHARS = 360
CSS = """<style>
.fa-cards{display:flex;flex-direction:column;gap:.45rem;font-size:.92rem;line-height:1.45}
.fa-card{border:1px solid #d0d7de;border-radius:.5rem;padding:.45rem .7rem;background:#fff}
.fa-card.fa-off{background:#f6f8fa;border-style:dashed}
.fa-top{display:flex;flex-wrap:wrap;gap:.35rem;align-items:baseline;margin-bottom:.15rem}
.fa-n{font-weight:600;color:#57606a;min-width:3.2em}
.fa-chip{display:inline-block;border-radius:1em;padding:0 .55em;font-size:.82rem;font-weight:600;
 background:#ddf4ff;color:#0550ae}
.fa-chip.fa-finish{background:#dafbe1;color:#116329}.fa-chip.fa-bad{background:#ffebe9;color:#a40e26}
.fa-arg{font-family:ui-monospace,monospace;font-size:.85rem;white-space:pre-wrap;word-break:break-word}
.fa-mark{display:inline-block;border-radius:.3em;padding:0 .4em;font-size:.78rem;border:1px solid #d0d7de;color:#57606a}
.fa-mark.fa-lint{border-color:#d4a72c;background:#fff8c5;color:#7d4e00}
.fa-mark.fa-pert{border-color:#8250df;color:#8250df}
.fa-thought{white-space:pre-wrap;word-break:break-word;color:#1f2328}
.fa-obs{white-space:pre-wrap;word-break:break-word;color:#57606a;border-left:3px solid #d0d7de;padding-left:.5rem;
 margin-top:.2rem}
.fa-obs summary{cursor:pointer;list-style:none}.fa-obs summary::-webkit-details-marker{display:none}
.fa-more{color:#0969da;font-size:.8rem;white-space:nowrap}
.fa-obs[open] .fa-preview{display:none}
.fa-raw{white-space:pre-wrap;word-break:break-word;font-family:ui-monospace,monospace;font-size:.85rem;color:#8250df}
.fa-head{border:1px solid #d0d7de;border-radius:.5rem;padding:.6rem .8rem;background:#f6f8fa;font-size:.92rem}
.fa-q{font-size:1.05rem;font-weight:600;white-space:pre-wrap;word-break:break-word;margin-bottom:.35rem}
.fa-facts{display:flex;flex-wrap:wrap;gap:.3rem 1.2rem}.fa-facts b{color:#57606a;font-weight:500}
.fa-right{color:#116329;font-weight:600}.fa-wrong{color:#a40e26;font-weight:600}
.fa-meta{color:#57606a;font-size:.82rem;margin-top:.3rem}
.fa-pair{display:grid;grid-template-columns:1fr 1fr;gap:.45rem .8rem}
.fa-pair .fa-none{color:#999;font-size:.85rem;padding:.45rem}
mark.fa-diff{background:#ffe08a;padding:0}
</style>"""


def esc(text: object) -> str:
    return html.escape(str(text), quote=True)


def _fold(text: str, cls: str = "fa-obs", body: str | None = None) -> str:
    """Text shown whole when short, else its first lines with the rest behind a click (a <details>)."""
    shown = esc(text) if body is None else body
    lines = text.split("\n")
    if len(lines) <= FOLD_LINES and len(text) <= FOLD_CHARS:
        return f'<div class="{cls}">{shown}</div>'
    preview = "\n".join(lines[:FOLD_LINES])[:FOLD_CHARS]
    more = f"show all ({len(lines)} lines, {len(text)} characters)"
    return (f'<details class="{cls}"><summary><span class="fa-preview">{esc(preview)}… </span>'
            f'<span class="fa-more">{more}</span></summary>{shown}</details>')


def action_chip(step: Step, arg_html: str | None = None) -> str:
    """The action as a tool chip and its argument; a malformed action shows as written."""
    action = step.action
    if action is None:
        return ""
    name = action.name
    if name is None or step.flags.parse_error:
        chip = '<span class="fa-chip fa-bad">malformed</span>'
        arg = arg_html if arg_html is not None else esc(action.raw)
        return f'{chip} <span class="fa-arg">{arg}</span>'
    cls = "fa-chip fa-finish" if name.lower() == "finish" else "fa-chip"
    arg = arg_html if arg_html is not None else esc(action.arg or "")
    return f'<span class="{cls}">{esc(name)}</span> <span class="fa-arg">{arg}</span>'


def step_marks(step: Step, lints: Iterable[Lint] = ()) -> str:
    marks = []
    if not step.flags.train:
        marks.append('<span class="fa-mark" title="this step carries no loss in training">not trained</span>')
    if step.flags.perturbed:
        marks.append(f'<span class="fa-mark fa-pert" title="the observation was replaced">perturbed: '
                     f'{esc(step.flags.perturbed)}</span>')
    for lint in lints:
        title = f' title="{esc(lint.detail)}"' if lint.detail else ""
        marks.append(f'<span class="fa-mark fa-lint"{title}>{esc(lint.kind)}</span>')
    return "".join(marks)


def step_card(step: Step, index: int, lints: Iterable[Lint] = (), diff: dict[str, str] | None = None) -> str:
    """One step's card; `diff` holds already escaped and marked HTML for fields that differ from another run."""
    diff = diff or {}
    off = "" if step.flags.train else " fa-off"
    top = (f'<div class="fa-top"><span class="fa-n">{index + 1}</span>{action_chip(step, diff.get("Action"))}'
           f'{step_marks(step, lints)}</div>')
    parts = [top]
    if step.thought is None and step.action is None and step.raw is not None:
        parts.append(_fold(step.raw, "fa-raw", diff.get("Text")))
    if step.thought is not None:
        parts.append(f'<div class="fa-thought">{diff.get("Thought") or esc(step.thought)}</div>')
    if step.observation is not None:
        parts.append(_fold(step.observation, body=diff.get("Observation")))
    if step.flags.perturbed and step.flags.original_observation:
        parts.append(_fold("Before perturbation: " + step.flags.original_observation))
    return f'<div class="fa-card{off}" data-testid="step-card">{"".join(parts)}</div>'


def steps_html(steps: list[Step], lints: Iterable[Lint] = (), first: int = 0, with_css: bool = True) -> str:
    """Cards for `steps` (numbered from `first`), each with the lints found on it."""
    by_step: dict[int, list[Lint]] = {}
    for lint in lints:
        if lint.step is not None:
            by_step.setdefault(lint.step, []).append(lint)
    cards = "".join(step_card(s, first + i, by_step.get(first + i, ())) for i, s in enumerate(steps))
    return (CSS if with_css else "") + f'<div class="fa-cards">{cards}</div>'


def _score(value: float | None) -> str:
    if value is None:
        return "—"
    cls = "fa-right" if value >= 1 else "fa-wrong"
    return f'<span class="{cls}">{value:.2f}</span>' if value not in (0, 1) else \
        f'<span class="{cls}">{"right" if value >= 1 else "wrong"}</span>'


def header_html(traj: Trajectory, lints: Iterable[Lint] = (), review: str | None = None, answer: str | None = None,
                with_css: bool = True) -> str:
    """Question, gold, answer, EM and F1, then source, task, method, model, status and the trajectory's lints."""
    final = traj.final_answer if answer is None else answer
    facts = [("Gold", esc(traj.gold) if traj.gold is not None else "—"),
             ("Answer", esc(final) if final is not None else "—"), ("EM", _score(traj.em)),
             ("F1", "—" if traj.f1 is None else f"{traj.f1:.2f}"), ("Steps", str(len(traj.steps)))]
    if review:
        facts.append(("Review", esc(review)))
    whole = [x for x in lints if x.step is None]
    meta = (f'<span title="{esc(traj.source)}">{esc(display_name(traj.source))}</span> · task {esc(traj.task)} · '
            f'method {esc(traj.method)} · model {esc(traj.model or "—")} · {esc(traj.status)} · revision '
            f'{traj.revision}' + (f" by {esc(traj.updated_by)}" if traj.updated_by else ""))
    marks = "".join(f'<span class="fa-mark fa-lint" title="{esc(x.detail)}">{esc(x.kind)}</span> ' for x in whole)
    body = (f'<div class="fa-head" data-testid="trajectory-header"><div class="fa-q">{esc(traj.question)}</div>'
            f'<div class="fa-facts">{"".join(f"<span><b>{k}</b> {v}</span>" for k, v in facts)}</div>'
            f'<div class="fa-meta">{meta}</div>{"<div>" + marks + "</div>" if marks else ""}</div>')
    return (CSS if with_css else "") + body


def _diffs(fields: dict[str, str], other: dict[str, str], left: bool) -> dict[str, str]:
    out = {}
    for name, text in fields.items():
        if name in other and other[name] != text:
            a, b = word_diff_html(text, other[name]) if left else word_diff_html(other[name], text)
            out[name] = (a if left else b).replace("<mark style=", '<mark class="fa-diff" style=')
    return out


def pair_cards_html(a: Trajectory | None, b: Trajectory | None, name_a: str = "A", name_b: str = "B",
                    pairs: list[tuple[int | None, int | None]] | None = None) -> str:
    """Two trajectories' cards side by side, steps aligned by kind (thought, search, finish) unless `pairs`
    gives the alignment, the words that differ marked."""
    steps_a, steps_b = (a.steps if a else []), (b.steps if b else [])
    rows = [f'<div class="fa-n">{esc(name_a)}</div><div class="fa-n">{esc(name_b)}</div>']
    for i, j in align_steps(steps_a, steps_b) if pairs is None else pairs:
        sa = steps_a[i] if i is not None else None
        sb = steps_b[j] if j is not None else None
        fa, fb = step_fields(sa), step_fields(sb)
        cells = []
        for step, idx, mine, other, left in ((sa, i, fa, fb, True), (sb, j, fb, fa, False)):
            if step is None or idx is None:
                cells.append('<div class="fa-none">(no step here)</div>')
                continue
            diff = _diffs(mine, other, left)
            if "Action" in diff and step.action is not None and step.action.name and not step.flags.parse_error:
                # the chip shows the tool; mark the argument's words against the other side's argument
                other_step = sb if left else sa
                other_arg = other_step.action.arg if other_step and other_step.action else ""
                pa, pb = word_diff_html(step.action.arg or "", other_arg or "") if left else \
                    word_diff_html(other_arg or "", step.action.arg or "")
                diff["Action"] = (pa if left else pb).replace("<mark style=", '<mark class="fa-diff" style=')
            cells.append(step_card(step, idx, diff=diff))
        rows.append(f'<div data-testid="aligned-step" style="display:contents">{cells[0]}{cells[1]}</div>')
    return CSS + f'<div class="fa-pair fireact-compare">{"".join(rows)}</div>'
