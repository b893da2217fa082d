"""Parsing of "Thought: / Action: name[arg] / Observation:" text: exact round trips on every real FireAct row,
irregular text kept verbatim, and the method and task inferred from a trajectory."""

from __future__ import annotations

import json

import pytest

from fireact_core.io.parsing import (
    action_problem,
    infer_method,
    infer_task,
    parse_action,
    parse_model_turn,
    parse_observation_turn,
    parse_text,
    render_model_turn,
    render_text,
)
from fireact_core.records import Step
from tests.conftest import FINETUNE

ALPACA_FILES = ["alpaca_hotpotqa.json", "alpaca_hotpotqa_multimethod.json"]
CHAT_FILES = ["gpt_hotpotqa.jsonl", "gpt_multitask.jsonl"]


def alpaca_outputs(name: str) -> list[str]:
    return [row["output"] for row in json.loads((FINETUNE / name).read_text())]


def steps_of(text: str) -> tuple[list[Step], bool]:
    """`parse_text`, its steps as models."""
    steps, trailing = parse_text(text)
    return [Step.model_validate(s) for s in steps], trailing


def turn_of(content: str) -> Step:
    return Step.model_validate(parse_model_turn(content))


def assistant_turns(name: str) -> list[str]:
    turns = []
    for line in (FINETUNE / name).read_text().splitlines():
        turns += [m["content"] for m in json.loads(line)["messages"] if m["role"] == "assistant"]
    return turns


@pytest.mark.parametrize("name", ALPACA_FILES)
def test_every_alpaca_output_renders_back_byte_for_byte(shared, name):
    outputs = alpaca_outputs(name)
    assert len(outputs) in (500, 734)
    for text in outputs:
        steps, trailing = steps_of(text)
        assert render_text(steps, trailing) == text
    # not vacuous: the rows do parse into fields
    steps, _ = steps_of(outputs[0])
    assert steps[0].thought and steps[0].action and steps[0].observation


@pytest.mark.parametrize("name", CHAT_FILES)
def test_every_chat_assistant_turn_round_trips(shared, name):
    turns = assistant_turns(name)
    assert len(turns) > 1000
    parsed = [turn_of(t) for t in turns]
    assert [render_model_turn(s) for s in parsed] == turns
    assert sum(s.action is not None and s.action.name is not None for s in parsed) > 0.99 * len(turns)


@pytest.mark.parametrize("name", CHAT_FILES)
def test_regular_model_turns_read_as_the_text_parser_reads_them(shared, name):
    """The quick reading of a "Thought: ...\nAction: ..." turn gives the step the whole-text parser gives."""
    turns = [t for t in assistant_turns(name) if t.startswith("Thought: ") and t.count("\n") == 1]
    assert len(turns) > 1000
    assert [turn_of(t) for t in turns] == [steps_of(t)[0][0] for t in turns]


def test_regular_step_fields():
    steps, trailing = steps_of("Thought: look it up\nAction: search[Paris]\nObservation: Paris is a city.\n")
    assert trailing
    [step] = steps
    assert (step.thought, step.action.name, step.action.arg, step.observation) == (
        "look it up", "search", "Paris", "Paris is a city.")
    assert step.raw is None and step.flags.parse_error is None


def test_multi_line_observation_is_one_field_and_verbatim():
    text = "Thought: t\nAction: search[x]\nObservation: line one\nline two\n\nline four\nThought: done\nAction: finish[y]"
    steps, trailing = steps_of(text)
    assert not trailing
    assert len(steps) == 2
    assert steps[0].observation == "line one\nline two\n\nline four"
    assert render_text(steps, trailing) == text


def test_leading_junk_kept_on_its_own_flagged_step():
    text = "Sure, here is my answer:\nThought: t\nAction: finish[x]\nObservation: Episode finished, reward = True\n"
    steps, trailing = steps_of(text)
    assert steps[0].raw == "Sure, here is my answer:"
    assert steps[0].flags.parse_error == "text outside Thought/Action/Observation"
    assert steps[1].action.name == "finish"
    assert render_text(steps, trailing) == text


def test_no_space_after_colon_is_kept_verbatim():
    text = "Thought:no space\nAction:search[x]\nObservation: found"
    steps, trailing = steps_of(text)
    assert steps[0].raw == "Thought:no space\nAction:search[x]"
    assert steps[0].flags.parse_error
    assert render_text(steps, trailing) == text
    turn = turn_of("Thought:no space\nAction: search[x]")
    assert render_model_turn(turn) == "Thought:no space\nAction: search[x]"
    assert turn.action.name == "search"


def test_irregular_model_turns_keep_raw_and_say_why():
    several = turn_of("Thought: a\nAction: search[x]\nThought: b\nAction: search[y]")
    assert several.raw is not None and several.flags.parse_error == "several actions in one turn"
    assert several.action.arg == "x"
    nothing = turn_of("I think the answer is 4.")
    assert nothing.raw == "I think the answer is 4." and nothing.flags.parse_error
    assert render_model_turn(nothing) == "I think the answer is 4."


@pytest.mark.parametrize(
    ("raw", "name", "arg", "problem"),
    [
        ("search[Paris]", "search", "Paris", None),
        ("finish[]", "finish", "", None),
        ("finish[Titan IIIE [rocket]]", "finish", "Titan IIIE", None),
        ("Search[a [nested] thing]", "Search", "a", None),
        ("search[Paris", "search", "Pari", "missing ']'"),
        ("lookup[Paris]", "lookup", "Paris", "unknown tool 'lookup'"),
        ("search[a] finish[b]", "search", "a] finis", "several actions in one turn"),
        ("just words", None, None, "not of the form name[argument]"),
        ("I will search[x]", "I will search", "x", "not of the form name[argument]"),
        (" finish[yes]", "finish", "yes", None),  # FireAct's run files: "Action:  finish[...]"
    ],
)
def test_parse_action(raw, name, arg, problem):
    """FireAct's reading (generation.py: `action.split('[')[:2]`, the argument's last character dropped)."""
    action = parse_action(raw)
    assert (action["raw"], action.get("name"), action.get("arg")) == (raw, name, arg)
    assert action_problem(raw, action.get("name")) == problem


@pytest.mark.parametrize(
    ("raw", "name", "arg"),
    [("finish[Titan IIIE [rocket]]", "finish", "Titan IIIE [rocket]"), ("search[Paris", None, None),
     ("I will search[x]", None, None), ("search[x] ", "search", "x")],
)
def test_parse_action_strict_reading(raw, name, arg):
    action = parse_action(raw, reading="strict")
    assert (action["raw"], action.get("name"), action.get("arg")) == (raw, name, arg)


def test_observation_turn_prefix():
    assert parse_observation_turn("Observation: x\ny") == ("x\ny", None)
    assert parse_observation_turn("Episode finished") == ("Episode finished", "Episode finished")


@pytest.mark.parametrize(
    ("text", "method"),
    [
        ("Thought: a\nAction: search[x]\nObservation: o\nThought: b\nAction: finish[y]\n", "react"),
        ("Thought: reasoning\nAction: finish[y]\n", "cot"),
        ("Action: finish[y]\n", "io"),
        ("Thought: Now that I haven't solved the task within 5 steps, let me do a reflection. x\nAction: finish[y]\n",
         "reflexion"),
    ],
)
def test_infer_method(text, method):
    assert infer_method(parse_text(text)[0]) == method


def test_infer_task():
    mmlu = "Which is a prime?\nA. 4\nB. 6\nC. 7\nD. 9"
    assert infer_task(mmlu, "C") == "mmlu"
    assert infer_task("Could a dog drive a car?", "no") == "strategyqa"
    assert infer_task("Are Paris and Rome both capitals?", "yes") == "hotpotqa"
    assert infer_task("Who directed Alien?", "Ridley Scott") == "hotpotqa"
