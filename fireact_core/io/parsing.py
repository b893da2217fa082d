"""Parsing and rendering of FireAct's "Thought: / Action: name[arg] / Observation:" text.

The rule that makes round trips exact: a line belongs to a field only when it starts with exactly
"Thought: ", "Action: " or "Observation: "; any other line continues the field before it. So rendering the
parsed steps gives back the text byte for byte, and nothing is ever dropped: text before the first field
is kept verbatim on a step of its own and flagged.
"""

from __future__ import annotations

import re

from ..records import KNOWN_TOOLS, Action, Step, StepFlags

PREFIXES = {"Thought: ": "thought", "Action: ": "action", "Observation: ": "observation"}
ORDER = {"thought": 0, "action": 1, "observation": 2}
ACTION_RE = re.compile(r"^(\w+)\[(.*)\]$", re.S)
CALL_RE = re.compile(r"\b\w+\[")
REFLECTION_RE = re.compile(r"let me do a reflection|^reflection:", re.I)


UNPARSED = "text outside Thought/Action/Observation"


def action_fields(raw: str, reading: str = "fireact") -> dict:
    """`parse_action` as plain data: {"raw", "name", "arg"} (name and arg only when it parsed)."""
    if reading == "strict":
        match = ACTION_RE.match(raw.strip())
        if not match:
            return {"raw": raw}
        name, arg = match.groups()
        return {"raw": raw, "name": name, "arg": arg}
    split = fireact_split(raw)
    if split is None:
        return {"raw": raw}
    return {"raw": raw, "name": split[0].strip(), "arg": split[1]}


def fireact_split(raw: str) -> tuple[str, str] | None:
    """(type, argument) exactly as FireAct's generation.py splits an action (`raw.split('[')[:2]`, the argument's
    last character dropped), or None where it cannot (no '['): FireAct then skips the action."""
    parts = raw.split("[")
    return (parts[0], parts[1][:-1]) if len(parts) >= 2 else None


def parse_action(raw: str, reading: str = "fireact") -> Action:
    """An action's name and argument, read as FireAct's generation.py reads them: `raw.split('[')[:2]`, the
    argument's last character dropped (`finish[Titan IIIE [rocket]]` answers `Titan IIIE`, `search[x` searches
    for nothing but its last character); the name without the spaces around it (FireAct's run files have
    `Action:  finish[...]`). `reading="strict"` reads the whole `name[argument]` instead (nested brackets kept,
    anything else unparsed). The raw text is always kept."""
    return Action.model_validate(action_fields(raw, reading))


def _problem(raw: str, name: str | None) -> str | None:
    raw = raw.strip()
    if raw.count("[") > 1 and len(CALL_RE.findall(raw)) > 1:
        return "several actions in one turn"
    if name is None or not ACTION_RE.match(raw):
        if "[" in raw and not raw.endswith("]"):
            return "missing ']'"
        return "not of the form name[argument]"
    if name.lower() not in KNOWN_TOOLS:
        return f"unknown tool '{name}'"
    return None


def action_problem(action: Action) -> str | None:
    """Why an action is malformed, or None when it is fine."""
    return _problem(action.raw, action.name)


def _field_of(line: str) -> tuple[str | None, str]:
    for prefix, field in PREFIXES.items():
        if line.startswith(prefix):
            return field, line[len(prefix):]
    return None, line


class _Builder:
    """Accumulates lines into steps; `last` is the field a continuation line extends."""

    def __init__(self) -> None:
        self.steps: list[dict] = []
        self.last: str | None = None

    def add(self, line: str) -> None:
        field, value = _field_of(line)
        if field is None:
            self._continue(line)
            return
        cur = self.steps[-1] if self.steps else None
        if cur is None or "raw" in cur or any(ORDER[f] >= ORDER[field] for f in cur):
            cur = {}
            self.steps.append(cur)
        cur[field] = value
        self.last = field

    def _continue(self, line: str) -> None:
        if not self.steps or self.last is None:
            if self.steps and "raw" in self.steps[-1]:
                self.steps[-1]["raw"] += "\n" + line
            else:
                self.steps.append({"raw": line})
                self.last = None
            return
        self.steps[-1][self.last] += "\n" + line


def _step_fields(fields: dict) -> dict:
    """A step as plain data (what `Step.model_validate` takes; `flags` always given, which validates faster)."""
    if "raw" in fields:
        return {"raw": fields["raw"], "flags": {"parse_error": UNPARSED}}
    step: dict = {"flags": {}}
    if "thought" in fields:
        step["thought"] = fields["thought"]
    if "action" in fields:
        action = step["action"] = action_fields(fields["action"])
        problem = _problem(action["raw"], action.get("name"))
        if problem:
            step["flags"]["parse_error"] = problem
    if "observation" in fields:
        step["observation"] = fields["observation"]
    return step


def parse_text_fields(text: str) -> tuple[list[dict], bool]:
    """`parse_text` as plain data: step dicts, and whether the text ended with a newline."""
    trailing = text.endswith("\n")
    body = text[:-1] if trailing else text
    builder = _Builder()
    if body or (text and not trailing):  # an empty text has no steps
        for line in body.split("\n"):
            builder.add(line)
    return [_step_fields(f) for f in builder.steps], trailing


def parse_text(text: str) -> tuple[list[Step], bool]:
    """Steps of a whole "Thought/Action/Observation" text, and whether it ended with a newline."""
    steps, trailing = parse_text_fields(text)
    return [Step.model_validate(s) for s in steps], trailing


def render_model_turn(step: Step) -> str:
    """The model's part of a step: "Thought: ...\\nAction: ..." (or the verbatim text kept for it)."""
    if step.raw is not None:
        return step.raw
    lines = []
    if step.thought is not None:
        lines.append("Thought: " + step.thought)
    if step.action is not None:
        lines.append("Action: " + step.action.raw)
    return "\n".join(lines)


def render_observation(step: Step) -> str | None:
    if step.obs_raw is not None:
        return step.obs_raw
    if step.observation is None:
        return None
    return "Observation: " + step.observation


def render_text(steps: list[Step], trailing_newline: bool = True) -> str:
    parts: list[str] = []
    for step in steps:
        model = render_model_turn(step)
        if model or step.raw is not None:
            parts.append(model)
        obs = render_observation(step)
        if obs is not None:
            parts.append(obs)
    text = "\n".join(parts)
    return text + "\n" if trailing_newline else text


def model_turn_fields(content: str) -> dict:
    """`parse_model_turn` as plain data, with a fast path for the regular "Thought: ...\\nAction: ..." turn."""
    if content.startswith("Thought: "):
        nl = content.find("\n")
        if nl > 0 and content.startswith("Action: ", nl + 1) and content.find("\n", nl + 1) < 0:
            raw = content[nl + 9:]
            action = action_fields(raw)
            name = action.get("name")
            # one call of a known tool is fine (what `_problem` finds, without its work)
            regular = name is not None and raw.count("[") == 1 and raw.endswith("]") and name.lower() in KNOWN_TOOLS
            problem = None if regular else _problem(raw, name)
            return {"thought": content[9:nl], "action": action, "flags": {"parse_error": problem} if problem else {}}
    return parse_model_turn(content).model_dump()


def parse_model_turn(content: str) -> Step:
    """One assistant message of a chat trajectory as one step; verbatim text kept when it is irregular."""
    steps, _ = parse_text(content)
    if len(steps) == 1 and steps[0].observation is None and steps[0].raw is None:
        step = steps[0]
        if render_model_turn(step) == content:
            return step
    with_action = [s for s in steps if s.action is not None]
    base = with_action[0] if with_action else next((s for s in steps if s.thought is not None), None)
    problem = "several actions in one turn" if len(with_action) > 1 else "turn does not read Thought: ... Action: ..."
    if base is None:
        return Step(raw=content, flags=StepFlags(parse_error="no Thought or Action in this turn"))
    if len(with_action) <= 1 and base.flags.parse_error:
        problem = base.flags.parse_error
    return Step(thought=base.thought, action=base.action, raw=content, flags=StepFlags(parse_error=problem))


def parse_observation_turn(content: str) -> tuple[str, str | None]:
    """The observation text, and the verbatim turn when it lacks the "Observation: " prefix."""
    if content.startswith("Observation: "):
        return content[len("Observation: "):], None
    return content, content


def infer_method(steps: list[Step]) -> str:
    """reflexion (a reflection thought), react (tool calls), cot (thought then finish), io (finish alone)."""
    return _method_of([s.thought for s in steps], [s.raw for s in steps],
                      [s.action.name for s in steps if s.action is not None])


def infer_method_fields(steps: list[dict]) -> str:
    """`infer_method` on steps as plain data (absent keys read as None)."""
    return _method_of([s.get("thought") for s in steps], [s.get("raw") for s in steps],
                      [s["action"].get("name") for s in steps if s.get("action") is not None])


def _method_of(thoughts: list[str | None], raws: list[str | None], action_names: list[str | None]) -> str:
    texts = [t or r or "" for t, r in zip(thoughts, raws)]
    if any("reflection" in t.lower() and REFLECTION_RE.search(t) for t in texts):
        return "reflexion"
    names = [(n or "").lower() for n in action_names]
    if any(n and n != "finish" for n in names):
        return "react"
    if any(thoughts):
        return "cot"
    if names:
        return "io"
    return "unknown"


MMLU_RE = re.compile(r"^A\. .*^B\. .*^C\. .*^D\. ", re.S | re.M)
YES_NO = {"yes", "no", "true", "false"}
COMPARATIVE_RE = re.compile(
    r"\b(both|same|either|neither|than|before|after|first|older|younger|longer|bigger|larger|taller|more|fewer|less)\b", re.I
)
PAIR_RE = re.compile(r"[A-Z][\w'.-]*(?:\s+[\w'.-]+){0,4}?,?\s+(?:and|or)\s+(?:the\s+)?[A-Z]")
LISTED_PAIR_RE = re.compile(r"^[A-Z][^?]*\s(and|or)\s[A-Z][^?]*,")


def infer_task(question: str, answer: str | None = None, gold: str | None = None) -> str:
    """mmlu (A./B./C./D. options), strategyqa (a yes/no answer to a question comparing no two named things),
    else hotpotqa. Bamboogle questions look like HotpotQA's: name the task when importing them."""
    if "A. " in question and MMLU_RE.search(question):
        return "mmlu"
    yes_no = _yes_no(answer) or _yes_no(gold)
    if yes_no and not _compares(question.removeprefix("Question: ").strip()):
        return "strategyqa"
    return "hotpotqa"


def _yes_no(value: str | None) -> bool:
    return value is not None and value.strip().lower().rstrip(".") in YES_NO


def _compares(question: str) -> bool:
    """HotpotQA's yes/no questions compare two named things ("Are X and Y both ...?")."""
    return bool(COMPARATIVE_RE.search(question) and PAIR_RE.search(question)) or bool(LISTED_PAIR_RE.match(question))
