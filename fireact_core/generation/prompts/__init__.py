"""Prompts for the four methods (IO, CoT, ReAct, Reflexion), few-shot or in FireAct's fine-tuned layout.

A prompt renders two ways from the same parts: as text (for completion-style local models; the model's turn
is cut at `\\nObservation:`) and as chat messages (question as the user's message, "Thought/Action" assistant
turns, "Observation: ..." user turns). Few-shot examples ship with the package (`examples/TASK.json`); edited
sets are saved in the store as numbered versions, and a run records the version it used.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from ...errors import FireactError, FormatError, NotFoundError
from ...io.parsing import render_model_turn, render_observation
from ...records import METHODS, PromptVersion, Step

if TYPE_CHECKING:
    from ...store import Store

STOP = ["\nObservation:"]
EXAMPLES_DIR = Path(__file__).with_name("examples")
TASK_EXAMPLES = {"hotpotqa": "hotpotqa", "bamboogle": "hotpotqa", "custom": "hotpotqa", "strategyqa": "strategyqa",
                 "mmlu": "mmlu"}
ANSWER_HINT = {"strategyqa": " The answer is yes or no.", "mmlu": " The answer is the letter of the right option."}
INSTRUCTIONS = {
    "io": "Answer the question directly with Action: finish[answer].{hint}\nHere are some examples.",
    "cot": "Answer the question: reason step by step in one Thought, then give the answer with "
           "Action: finish[answer].{hint}\nHere are some examples.",
    "react": "Solve a question answering task with interleaving Thought, Action, Observation steps. Thought can "
             "reason about the current situation, and Action can be two types:\n(1) search[query], which searches "
             "the web and returns a short answer or snippet.\n(2) finish[answer], which returns the answer and "
             "finishes the task.{hint}\nHere are some examples.",
}
INSTRUCTIONS["reflexion"] = INSTRUCTIONS["react"]
REFLECTION_REQUEST = ("You have not solved the task yet. In two or three sentences, reflect on what went wrong and how "
                      "to change your strategy. Do not write an action.")
STALLED_CUE = "Now that I haven't solved the task within {n} steps, let me do a reflection and think about how to " \
              "improve my strategy."
WRONG_CUE = "My answer {answer} was incorrect, let me do a reflection and think about how to improve my strategy."


@dataclass
class PromptSpec:
    """How a run prompts: the method, the task's examples (none in fine-tuned mode) and the layout.

    layout "studio": a system message with instructions and `examples`, the question and the turns as chat
    messages. layout "fireact": FireAct's generation.py exactly (see `fireact_prompt`): in few-shot mode one user
    message, `fewshot` (a FireAct prompt file's text) + question + "\n" + steps + "Thought:"; fine-tuned modes
    always use this layout, without `fewshot`."""

    method: str
    task: str = "hotpotqa"
    mode: Literal["fewshot", "finetuned"] = "fewshot"
    finetuned_format: Literal["chat", "alpaca"] = "chat"
    examples: list[str] = field(default_factory=list)
    version: int | None = 0
    layout: Literal["studio", "fireact"] = "studio"
    fewshot: str = ""
    source: str | None = None

    def system_text(self) -> str | None:
        if self.mode == "finetuned" or self.layout == "fireact":
            return None
        hint = ANSWER_HINT.get(self.task, "")
        head = INSTRUCTIONS[self.method].format(hint=hint)
        return head + "\n\n" + "\n\n".join(self.examples) if self.examples else head


@dataclass
class Prompt:
    text: str
    messages: list[dict[str, str]]
    stop: list[str] | None
    is_reflection: bool = False


def question_line(question: str) -> str:
    return question if question.startswith("Question: ") else "Question: " + question


def history_turns(steps: list[Step]) -> list[tuple[str, str]]:
    """(role, content) of every turn after the question."""
    turns = []
    for step in steps:
        model = render_model_turn(step)
        if model:
            turns.append(("assistant", model))
        obs = render_observation(step)
        if obs is not None:
            turns.append(("user", obs))
    return turns


def build_prompt(spec: PromptSpec, question: str, steps: list[Step], reflect: bool = False) -> Prompt:
    """The prompt for the next model turn (or, with `reflect`, for a reflection on the steps so far)."""
    turns = history_turns(steps)
    system = spec.system_text()
    messages: list[dict[str, str]] = [{"role": "system", "content": system}] if system else []
    messages.append({"role": "user", "content": question})
    messages += [{"role": r, "content": c} for r, c in turns]
    if spec.mode == "finetuned" and spec.finetuned_format == "alpaca":
        from ...io.formats.fireact import ALPACA_TEMPLATE  # the formats package is not needed before this

        text = ALPACA_TEMPLATE.format(instruction=question)
    else:
        text = (system + "\n\n" if system else "") + question_line(question) + "\n"
    text += "".join(c + "\n" for _, c in turns)
    stop = list(STOP)
    if reflect:
        messages.append({"role": "user", "content": REFLECTION_REQUEST})
        text += REFLECTION_REQUEST + "\nReflection:"
        stop += ["\nThought:", "\nAction:"]
    return Prompt(text=text, messages=messages, stop=stop, is_reflection=reflect)


def prompt_messages(spec: PromptSpec) -> list[dict[str, str]] | None:
    """What a trajectory keeps as its prompt: the messages before the question (None in fine-tuned mode); in
    FireAct's layout the few-shot text, as FireAct keeps it (`info["prompt"]`)."""
    if spec.layout == "fireact":
        return [{"role": "user", "content": spec.fewshot}] if spec.fewshot else None
    system = spec.system_text()
    return [{"role": "system", "content": system}] if system else None


# FireAct's layout --------------------------------------------------------------------------------------------
def fireact_start(spec: PromptSpec, question: str) -> str | list[dict[str, str]]:
    """The prompt before any step, as FireAct's generation.py builds it: few-shot text + question + "\n"; the
    Alpaca text of the question (right-stripped); or, in fine-tuned chat mode, the question as a user message."""
    if spec.mode == "finetuned" and spec.finetuned_format == "chat":
        return [{"role": "user", "content": question}]
    if spec.mode == "finetuned":
        from ...io.formats.fireact import ALPACA_TEMPLATE

        return ALPACA_TEMPLATE.format(instruction=question.rstrip())
    return spec.fewshot + question + "\n"


def fireact_prompt(base: str | list[dict[str, str]], stop: list[str] | None, thought: bool = True) -> Prompt:
    """One request in FireAct's layout: a text prompt goes as one user message (with "Thought:" after it unless
    `thought` is False, as FireAct's re-asks send it), a chat prompt as its messages."""
    if isinstance(base, list):
        text = "".join(m["content"] + "\n" for m in base)
        return Prompt(text=text, messages=list(base), stop=stop)
    text = base + "Thought:" if thought else base
    return Prompt(text=text, messages=[{"role": "user", "content": text}], stop=stop)


def fireact_prompt_file(prompts_dir: str | Path, task: str, method: str) -> Path:
    """The FireAct prompt file for a task and method in a FireAct-layout folder: `{method}_{task}_google.txt`,
    else `{method}_{task}.txt`; a task without files of its own uses those of the task whose examples it
    shares (Bamboogle: HotpotQA's, as FireAct's BamboogleTask does)."""
    folder = Path(prompts_dir)
    if not folder.is_dir():
        raise FireactError(f"{folder}: no such prompts folder; give a folder of FireAct prompt files "
                           "({method}_{task}[_google].txt, such as FireAct's prompts/)")
    for name in dict.fromkeys([task, TASK_EXAMPLES.get(task, "hotpotqa")]):
        for candidate in (f"{method}_{name}_google.txt", f"{method}_{name}.txt"):
            if (folder / candidate).is_file():
                return folder / candidate
    found = ", ".join(sorted(p.name for p in folder.glob("*.txt"))) or "no .txt files"
    raise NotFoundError(f"{folder}: no prompt file for {method} on {task} ({method}_{task}_google.txt or "
                        f"{method}_{task}.txt); the folder has {found}")


def read_fireact_prompt(prompts_dir: str | Path, task: str, method: str) -> tuple[str, Path]:
    """(text, file) of a FireAct prompt file, read exactly (no newline translation)."""
    path = fireact_prompt_file(prompts_dir, task, method)
    try:
        with open(path, encoding="utf-8", newline="") as fh:
            return fh.read(), path
    except (OSError, UnicodeDecodeError) as exc:
        raise FormatError(path, 1, f"cannot read this prompt file ({exc})") from None


def import_fireact_prompt(store: Store, prompts_dir: str | Path, task: str, method: str, author: str) -> int:
    """Save a FireAct prompt file as the next prompt version of a task and method (FireAct's layout)."""
    text, path = read_fireact_prompt(prompts_dir, task, method)
    return save_examples(store, task, method, [text], author, f"FireAct prompt file {path.name}", "fireact", path.name)


@cache
def _shipped(task_key: str) -> dict[str, list[str]]:
    return json.loads((EXAMPLES_DIR / f"{task_key}.json").read_text(encoding="utf-8"))


def default_examples(task: str, method: str) -> list[str]:
    """The few-shot examples shipped with FireAct Studio for a task and method."""
    if method not in METHODS:
        raise NotFoundError(f"unknown method '{method}'; methods: {', '.join(METHODS)}")
    return list(_shipped(TASK_EXAMPLES.get(task, "hotpotqa"))[method])


def examples_for(store: Store, task: str, method: str, version: int | None = None) -> tuple[list[str], int]:
    """(examples, version): the given saved version, else the newest saved one, else the shipped set (version 0)."""
    row = version_row(store, task, method, version)
    return row.examples, row.version


def version_row(store: Store | None, task: str, method: str, version: int | None = None) -> PromptVersion:
    """The prompt version a run uses; the shipped set is version 0."""
    saved = store.prompt_versions(task, method) if store is not None else []
    if version == 0 or (version is None and not saved):
        return PromptVersion(version=0, examples=default_examples(task, method))
    for row in saved:
        if version is None or row.version == version:
            return row
    known = ", ".join(str(r.version) for r in saved) or "none saved"
    raise NotFoundError(f"no version {version} of the {task}/{method} examples (versions: 0 (shipped), {known})")


def save_examples(store: Store, task: str, method: str, examples: list[str], author: str, note: str | None = None,
                  layout: str = "studio", source: str | None = None) -> int:
    """Save an edited set of examples as the next version; blank examples are dropped. In FireAct's layout the one
    text is kept exactly (its blank lines and final newline are part of what is sent)."""
    from ...curation.team.roles import actor

    author = actor(store, author, "prompt")
    cleaned = [e.strip("\n") for e in examples if e.strip()] if layout == "studio" else [e for e in examples if e.strip()]
    if not cleaned:
        raise FireactError("no examples to save: write at least one example")
    return store.save_prompt_version(task, method, cleaned, author, note, layout=layout, source=source)


def make_spec(store: Store | None, task: str, method: str, mode: str = "fewshot",
              finetuned_format: Literal["chat", "alpaca"] = "chat",
              version: int | None = None, prompts_dir: str | None = None) -> PromptSpec:
    """The run's prompt: fine-tuned modes in FireAct's layout; few-shot from a FireAct prompt folder when
    `prompts_dir` is given, else from the prompt version (a saved version may hold a FireAct prompt file)."""
    if method not in METHODS:
        raise NotFoundError(f"unknown method '{method}'; methods: {', '.join(METHODS)}")
    if mode == "finetuned":
        return PromptSpec(method=method, task=task, mode="finetuned", finetuned_format=finetuned_format,
                          layout="fireact", version=None)
    if prompts_dir:
        text, path = read_fireact_prompt(prompts_dir, task, method)
        return PromptSpec(method=method, task=task, layout="fireact", fewshot=text, version=None, source=str(path))
    row = version_row(store, task, method, version)
    if row.layout == "fireact":
        return PromptSpec(method=method, task=task, layout="fireact", fewshot=row.examples[0],
                          version=row.version, source=row.source)
    return PromptSpec(method=method, task=task, examples=row.examples, version=row.version)
