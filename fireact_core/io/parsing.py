"""Parsing and rendering of FireAct's "Thought: / Action: name[arg] / Observation:" text.

The rule that makes round trips exact: a line belongs to a field only when it starts with exactly
"Thought: ", "Action: " or "Observation: "; any other line continues the field before it. So rendering the
parsed steps gives back the text byte for byte, and nothing is ever dropped: text before the first field
is kept verbatim on a step of its own and flagged.
"""

from __future__ import annotations

import re

from ..records import FINISH, KNOWN_TOOLS, ActionData, Method, Step, StepData

THOUGHT, ACTION, OBSERVATION = "Thought: ", "Action: ", "Observation: "
PREFIXES = {THOUGHT: "thought", ACTION: "action", OBSERVATION: "observation"}
QUESTION_PREFIX = "Question: "  # FireAct's chat rows open the question with it; kept in `meta.question_prefix`
REWARD_RE = re.compile(r"Episode finished, reward = (\w+)")  # FireAct's last observation
TRUE_REWARDS = ("true", "1")  # the reward words (lower-cased) that mean True
ORDER = {"thought": 0, "action": 1, "observation": 2}
ACTION_RE = re.compile(r"^(\w+)\[(.*)\]$", re.S)
CALL_RE = re.compile(r"\b\w+\[")
REFLECTION_WORD = "reflection"  # a text without it is no reflection (a quick test before REFLECTION_RE)
REFLECTION_RE = re.compile(r"let me do a reflection|^reflection:", re.I)


UNPARSED = "text outside Thought/Action/Observation"


def parse_action(raw: str, reading: str = "fireact") -> ActionData:
    """An action's name and argument, read as FireAct's generation.py reads them: `raw.split('[')[:2]`, the
    argument's last character dropped (`finish[Titan IIIE [rocket]]` answers `Titan IIIE`, `search[x` searches
    for nothing but its last character); the name without the spaces around it (FireAct's run files have
    `Action:  finish[...]`). `reading="strict"` reads the whole `name[argument]` instead (nested brackets kept,
    anything else unparsed). The raw text is always kept; name and arg are there only when it parsed."""
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


def action_problem(raw: str, name: str | None) -> str | None:
    """Why an action (its raw text and the name read from it) is malformed, or None when it is fine."""
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


def _step_fields(fields: dict) -> StepData:
    """A step as data (`flags` always given, which validates faster)."""
    if "raw" in fields:
        return {"raw": fields["raw"], "flags": {"parse_error": UNPARSED}}
    step: StepData = {"flags": {}}
    if "thought" in fields:
        step["thought"] = fields["thought"]
    if "action" in fields:
        action = step["action"] = parse_action(fields["action"])
        problem = action_problem(action["raw"], action.get("name"))
        if problem:
            step["flags"]["parse_error"] = problem
    if "observation" in fields:
        step["observation"] = fields["observation"]
    return step


def parse_text(text: str) -> tuple[list[StepData], bool]:
    """Steps of a whole "Thought/Action/Observation" text, and whether it ended with a newline."""
    trailing = text.endswith("\n")
    body = text[:-1] if trailing else text
    builder = _Builder()
    if body or (text and not trailing):  # an empty text has no steps
        for line in body.split("\n"):
            builder.add(line)
    return [_step_fields(f) for f in builder.steps], trailing


def render_model_turn(step: Step) -> str:
    """The model's part of a step: "Thought: ...\\nAction: ..." (or the verbatim text kept for it)."""
    if step.raw is not None:
        return step.raw
    return _turn_text(step.thought, step.action.raw if step.action is not None else None)


def _turn_text(thought: str | None, action: str | None) -> str:
    lines = []
    if thought is not None:
        lines.append(THOUGHT + thought)
    if action is not None:
        lines.append(ACTION + action)
    return "\n".join(lines)


def render_observation(step: Step) -> str | None:
    if step.obs_raw is not None:
        return step.obs_raw
    if step.observation is None:
        return None
    return OBSERVATION + step.observation


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


def parse_model_turn(content: str) -> StepData:
    """One assistant message of a chat trajectory as one step; verbatim text kept when it is irregular. The
    regular "Thought: ...\\nAction: ..." turn takes a fast path."""
    if content.startswith(THOUGHT):
        nl = content.find("\n")
        if nl > 0 and content.startswith(ACTION, nl + 1) and content.find("\n", nl + 1) < 0:
            raw = content[nl + 1 + len(ACTION):]
            action = parse_action(raw)
            name = action.get("name")
            # one call of a known tool is fine (what `action_problem` finds, without its work)
            regular = name is not None and raw.count("[") == 1 and raw.endswith("]") and name.lower() in KNOWN_TOOLS
            problem = None if regular else action_problem(raw, name)
            return {"thought": content[len(THOUGHT):nl], "action": action, "flags": {"parse_error": problem} if problem else {}}
    steps, _ = parse_text(content)
    if len(steps) == 1 and "observation" not in steps[0] and "raw" not in steps[0]:
        step = steps[0]
        turn_action = step.get("action")
        if _turn_text(step.get("thought"), turn_action["raw"] if turn_action is not None else None) == content:
            return step
    with_action = [s for s in steps if s.get("action") is not None]
    base = with_action[0] if with_action else next((s for s in steps if s.get("thought") is not None), None)
    problem = "several actions in one turn" if len(with_action) > 1 else "turn does not read Thought: ... Action: ..."
    if base is None:
        return {"raw": content, "flags": {"parse_error": "no Thought or Action in this turn"}}
    if len(with_action) <= 1 and base["flags"].get("parse_error"):
        problem = base["flags"]["parse_error"] or problem
    turn: StepData = {"raw": content, "flags": {"parse_error": problem}}
    if "thought" in base:
        turn["thought"] = base["thought"]
    if "action" in base:
        turn["action"] = base["action"]
    return turn


def parse_observation_turn(content: str) -> tuple[str, str | None]:
    """The observation text, and the verbatim turn when it lacks the "Observation: " prefix."""
    if content.startswith(OBSERVATION):
        return content[len(OBSERVATION):], None
    return content, content


def reward_of(observation: str | None) -> bool | None:
    """FireAct's last observation, "Episode finished, reward = True" (or 1 / False / 0)."""
    match = REWARD_RE.search(observation or "")
    if not match:
        return None
    return match.group(1).lower() in TRUE_REWARDS


def infer_method(steps: list[StepData]) -> Method:
    """reflexion (a reflection thought), react (tool calls), cot (thought then finish), io (finish alone)."""
    return _method_of([s.get("thought") for s in steps], [s.get("raw") for s in steps],
                      [a.get("name") for s in steps if (a := s.get("action")) is not None])


def _method_of(thoughts: list[str | None], raws: list[str | None], action_names: list[str | None]) -> Method:
    texts = [t or r or "" for t, r in zip(thoughts, raws)]
    if any(REFLECTION_WORD in t.lower() and REFLECTION_RE.search(t) for t in texts):
        return "reflexion"
    names = [(n or "").lower() for n in action_names]
    if any(n and n != FINISH for n in names):
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
    if yes_no and not _compares(question.removeprefix(QUESTION_PREFIX).strip()):
        return "strategyqa"
    return "hotpotqa"


def _yes_no(value: str | None) -> bool:
    return value is not None and value.strip().lower().rstrip(".") in YES_NO


def _compares(question: str) -> bool:
    """HotpotQA's yes/no questions compare two named things ("Are X and Y both ...?")."""
    return bool(COMPARATIVE_RE.search(question) and PAIR_RE.search(question)) or bool(LISTED_PAIR_RE.match(question))
