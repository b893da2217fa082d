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
from typing import Any, Literal

from ..errors import FireactError, NotFoundError
from ..formats.fireact import ALPACA_TEMPLATE
from ..parsing import render_model_turn, render_observation
from ..records import Step

METHODS = ("io", "cot", "react", "reflexion")
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
    """How a run prompts: the method, the task's examples (none in fine-tuned mode) and the layout."""

    method: str
    task: str = "hotpotqa"
    mode: Literal["fewshot", "finetuned"] = "fewshot"
    finetuned_format: Literal["chat", "alpaca"] = "chat"
    examples: list[str] = field(default_factory=list)
    version: int = 0

    def system_text(self) -> str | None:
        if self.mode == "finetuned":
            return None
        hint = ANSWER_HINT.get(self.task, "")
        head = INSTRUCTIONS[self.method].format(hint=hint)
        return head + "\n\n" + "\n\n".join(self.examples) if self.examples else head


@dataclass
class Prompt:
    text: str
    messages: list[dict[str, str]]
    stop: list[str]
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
    """What a trajectory keeps as its prompt: the messages before the question (None in fine-tuned mode)."""
    system = spec.system_text()
    return [{"role": "system", "content": system}] if system else None


@cache
def _shipped(task_key: str) -> dict[str, list[str]]:
    return json.loads((EXAMPLES_DIR / f"{task_key}.json").read_text(encoding="utf-8"))


def default_examples(task: str, method: str) -> list[str]:
    """The few-shot examples shipped with FireAct Studio for a task and method."""
    if method not in METHODS:
        raise NotFoundError(f"unknown method '{method}'; methods: {', '.join(METHODS)}")
    return list(_shipped(TASK_EXAMPLES.get(task, "hotpotqa"))[method])


def examples_for(store: Any, task: str, method: str, version: int | None = None) -> tuple[list[str], int]:
    """(examples, version): the given saved version, else the newest saved one, else the shipped set (version 0)."""
    saved = store.prompt_versions(task, method) if store is not None else []
    if version == 0 or (version is None and not saved):
        return default_examples(task, method), 0
    for row in saved:
        if version is None or row["version"] == version:
            return row["examples"], row["version"]
    known = ", ".join(str(r["version"]) for r in saved) or "none saved"
    raise NotFoundError(f"no version {version} of the {task}/{method} examples (versions: 0 (shipped), {known})")


def save_examples(store: Any, task: str, method: str, examples: list[str], author: str, note: str | None = None) -> int:
    """Save an edited set of examples as the next version; blank examples are dropped."""
    from ..team.roles import actor

    author = actor(store, author, "prompt")
    cleaned = [e.strip("\n") for e in examples if e.strip()]
    if not cleaned:
        raise FireactError("no examples to save: write at least one example")
    return store.save_prompt_version(task, method, cleaned, author, note)


def make_spec(store: Any, task: str, method: str, mode: str = "fewshot", finetuned_format: str = "chat",
              version: int | None = None) -> PromptSpec:
    if method not in METHODS:
        raise NotFoundError(f"unknown method '{method}'; methods: {', '.join(METHODS)}")
    if mode == "finetuned":
        return PromptSpec(method=method, task=task, mode="finetuned", finetuned_format=finetuned_format)
    examples, used = examples_for(store, task, method, version)
    return PromptSpec(method=method, task=task, examples=examples, version=used)
