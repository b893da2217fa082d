"""FireAct's own formats: Alpaca JSON, OpenAI chat JSONL, and evaluation runs (`trajs/*.json`)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Iterable, Iterator, TextIO

from pydantic import ValidationError

from ...errors import FormatError
from ..parsing import (OBSERVATION, QUESTION_PREFIX, parse_model_turn, parse_text, render_model_turn,
                       render_observation, render_text, reward_of)
from ...records import Source, StepData, Trajectory, TrajectoryData, final_answer_of, stable_id
from .common import ReadResult, checked_trajectory, expect, trajectory_record
from .documents import iter_json_array, iter_json_object
from .limits import trajectory_problem, weight_problem

ALPACA_TEMPLATE = (
    "Below is an instruction that describes a task. Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Response:\n"
)
ALPACA_INPUT_TEMPLATE = (
    "Below is an instruction that describes a task, paired with an input that provides further context. "
    "Write a response that appropriately completes the request."
    "\n\n### Instruction:\n{instruction}\n\n### Input:\n{input}\n\n### Response:\n"
)
RUN_NAME_RE = re.compile(
    r"^(?P<task>[a-z0-9]+)_(?P<split>[a-z0-9]+)_(?P<start>\d+)_(?P<end>\d+)_(?P<model>.+)_"
    r"(?P<temperature>\d+(?:\.\d+)?)_(?P<ts>\d{4}-\d\d-\d\d-\d\d-\d\d-\d\d)\.json$"
)
OPTIONS_RE = re.compile(r"A\. [^\n]*\n(?:[B-Z]\. [^\n]*\n)+")  # "A. ...\nB. ...\n" at the head of an Alpaca output
FIELD_LINE_RE = re.compile(r"^(?:Thought|Action|Observation): ", re.M)
MODEL_TURN_RE = re.compile(r"^(Thought|Action):", re.M)


PLAIN_FIELDS = frozenset({"id", "source", "question", "prompt", "meta", "steps", "final_answer", "reward", "status"})


def _checked(traj: dict[str, Any]) -> bool:
    """Whether a chat trajectory is known valid without pydantic: the fields the chat reader sets, strings where
    strings belong, and prompt messages of exactly a string role and content (the reader checked their types)."""
    prompt = traj.get("prompt")
    return (traj.keys() <= PLAIN_FIELDS and type(traj["id"]) is str and type(traj["source"]) is str
            and type(traj["question"]) is str and type(traj.get("meta", {})) is dict
            and (prompt is None or all(len(m) == 2 for m in prompt)))


def _finish(traj: dict[str, Any], steps: list[StepData], path: str = "", line: int = 0) -> TrajectoryData:
    """The trajectory as data, checked once, steps and all (without pydantic when the chat reader's own checks
    suffice)."""
    traj["steps"] = steps
    if "final_answer" not in traj:
        traj["final_answer"] = final_answer_of([(a.get("name"), a.get("arg")) for s in steps if (a := s.get("action"))])
    if traj.get("reward") is None and steps:
        traj["reward"] = reward_of(steps[-1].get("observation"))
    traj.setdefault("status", "finished" if traj["final_answer"] is not None else "unfinished")
    expect(trajectory_problem(traj) is None, path or traj.get("source", "?"), line, trajectory_problem(traj) or "")
    if _checked(traj):
        return trajectory_record(traj)
    try:
        return checked_trajectory(traj)
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(p) for p in err["loc"])
        raise FormatError(path or traj.get("source", "?"), line, f"{where}: {err['msg']}") from exc


def trajectory_from_text(source: str, index: int, question: str, output: str, **extra: Any) -> TrajectoryData:
    steps, trailing = parse_text(output)
    data = {"id": stable_id(source, index), "source": source, "question": question, **extra}
    data.setdefault("meta", {})["trailing_newline"] = trailing
    return _finish(data, steps)


def trajectory_from_messages(source: str, index: int, messages: list[dict], path: str, line: int,
                             **extra: Any) -> TrajectoryData:
    """Messages up to the first assistant turn are the prompt; the last of them, a user turn, is the question. A
    conversation that breaks this (it opens with the model's turn, or has no user turn before it) is kept as it is:
    an opening assistant turn that is not a Thought/Action turn is the question (`meta.question_role` "assistant"),
    else there is no question (`meta.question_role` "none")."""
    first = -1
    for i, m in enumerate(messages):
        if type(m) is not dict or type(m.get("role")) is not str or type(m.get("content")) is not str:
            raise FormatError(path, line, "each message needs a string 'role' and a string 'content'")
        problem = weight_problem(m) if "weight" in m else None
        if problem:
            raise FormatError(path, line, problem)
        if first < 0 and m["role"] == "assistant":
            first = i
    first = len(messages) if first < 0 else first
    meta: dict[str, Any] = extra.pop("meta", {})
    if first > 0 and messages[first - 1]["role"] == "user":
        at, prompt, turns = first - 1, messages[: first - 1] or None, messages[first:]
    elif first == 0 and messages and not MODEL_TURN_RE.search(messages[0]["content"]):
        at, prompt, turns = 0, None, messages[1:]
        meta["question_role"] = "assistant"
    else:
        at, prompt, turns = -1, messages[:first] or None, messages[first:]
        meta["question_role"] = "none"
    question = messages[at]["content"] if at >= 0 else ""
    if question.startswith(QUESTION_PREFIX):
        question = question[len(QUESTION_PREFIX):]
        meta["question_prefix"] = QUESTION_PREFIX
    steps = step_fields_from_turns(turns)
    roles = _observation_roles(turns)
    if roles:
        meta["observation_roles"] = roles
    data = {"id": stable_id(source, index), "source": source, "question": question, "prompt": prompt, "meta": meta, **extra}
    return _finish(data, steps, path, line)


def _observation_roles(turns: list[dict]) -> dict[str, str]:
    """{step index: role} of the observation turns whose role is not "user" (a "tool" or "system" turn), so
    that the conversation is written back with its own roles."""
    roles: dict[str, str] = {}
    step, observed = -1, True
    for m in turns:
        if m["role"] == "assistant":
            step, observed = step + 1, False
            continue
        if observed:
            step += 1
        if m["role"] != "user":
            roles[str(step)] = m["role"]
        observed = True
    return roles


def step_fields_from_turns(turns: list[dict]) -> list[StepData]:
    """Chat turns after the question as steps: each assistant turn opens a step, other turns are observations."""
    steps: list[StepData] = []
    observed = True  # whether the last step has its observation already (then an observation opens a step)
    for m in turns:
        content = m["content"]
        if m["role"] == "assistant":
            step = parse_model_turn(content)
            if m.get("weight") == 0 or m.get("train") is False:  # OpenAI's weight, or the `messages` export's flag
                step["flags"]["train"] = False
            steps.append(step)
            observed = False
            continue
        if observed:
            steps.append({"flags": {}})
        step = steps[-1]
        if content.startswith(OBSERVATION):  # `parse_observation_turn`, inline: this runs for every turn
            step["observation"], step["obs_raw"] = content[len(OBSERVATION):], None
        else:
            step["observation"] = step["obs_raw"] = content
        observed = True
    return steps


def alpaca_batches(path: str, source: str, batch: int) -> Iterator[ReadResult]:
    """An Alpaca file (a JSON array of objects), `batch` trajectories at a time, read one element at a time."""
    result = ReadResult(path=path, format="alpaca")
    for index, (line, row) in enumerate(iter_json_array(path)):
        expect(isinstance(row, dict), path, line, "each element must be an object with 'instruction' and 'output'")
        expect(isinstance(row.get("instruction"), str) and isinstance(row.get("output"), str), path, line,
               "each element needs string fields 'instruction' and 'output'")
        expect(isinstance(row.get("input", ""), str), path, line, "'input' must be a string")
        meta = {"format": "alpaca", "input": row.get("input", "")}
        question, output = row["instruction"], row["output"]
        options = OPTIONS_RE.match(output)
        if options:  # MMLU: the answer options open the output; they belong to the question
            meta["options_in_output"] = options.group()
            question, output = question + "\n" + options.group()[:-1], output[options.end():]
        steps, trailing = parse_text(output)
        meta["trailing_newline"] = trailing
        data = {"id": stable_id(source, index), "source": source, "question": question, "meta": meta}
        result.records.append(_finish(data, steps, path, line))
        result.rows += 1
        if result.rows >= batch:
            yield result
            result = ReadResult(path=path, format="alpaca")
    yield result


def openai_batches(path: str, rows: Iterable[tuple[int, Any]], source: str, batch: int,
                   start: int = 0) -> Iterator[ReadResult]:
    """OpenAI chat JSONL rows, `batch` trajectories at a time (`start`: the index of the first row in the file,
    which the ids derive from)."""
    numbered = ((index, line, row) for index, (line, row) in enumerate(rows, start))
    yield from openai_indexed_batches(path, numbered, source, batch)


def openai_indexed_batches(path: str, rows: Iterable[tuple[int, int, Any]], source: str,
                           batch: int) -> Iterator[ReadResult]:
    """`openai_batches` of (index in the file, line number, row) triples: some rows of a file, not all."""
    result = ReadResult(path=path, format="openai-jsonl")
    for index, line, row in rows:
        expect(isinstance(row, dict) and isinstance(row.get("messages"), list), path, line,
               "each line must be an object with a 'messages' list")
        result.records.append(trajectory_from_messages(source, index, row["messages"], path, line,
                                                       meta={"format": "openai-jsonl"}))
        result.rows += 1
        if result.rows >= batch:
            yield result
            result = ReadResult(path=path, format="openai-jsonl")
    if result.rows:
        yield result


def run_name_fields(path: str) -> dict[str, Any]:
    """task, split, model, attempted and temperature from FireAct's run file name, when it follows the pattern."""
    match = RUN_NAME_RE.match(Path(path).name)
    if not match:
        return {}
    g = match.groupdict()
    return {"task": g["task"], "split": g["split"], "model": g["model"], "attempted": int(g["end"]) - int(g["start"]),
            "temperature": float(g["temperature"]), "started": g["ts"], "start": int(g["start"])}


def _split_run_text(traj: str) -> tuple[str, str | None, str]:
    """(question, prompt text, response) of one text-variant run entry. Alpaca mode writes the Alpaca prompt, then
    the steps; few-shot mode writes the question, a newline, then the steps (prompt text None)."""
    head, sep, response = traj.partition("### Response:\n")
    if sep:
        question = head.split("### Instruction:\n", 1)[-1].split("\n\n### Input:\n", 1)[0]
        return question.removesuffix("\n\n"), head + sep, response
    field = FIELD_LINE_RE.search(traj)
    if field is None or field.start() == 0:
        return "", "", traj
    return traj[: field.start() - 1], None, traj[field.start():]


def fireact_run_batches(path: str, source: str, batch: int) -> Iterator[ReadResult]:
    """A FireAct run file (a JSON object keyed by question index), `batch` trajectories at a time, read one entry
    at a time; the run's source comes with the last batch."""
    named = run_name_fields(path)
    result = ReadResult(path=path, format="fireact-run")
    entries = 0
    for index, (line, key, row) in enumerate(iter_json_object(path, "a FireAct run is a JSON object keyed by question index")):
        expect(isinstance(row, dict) and "traj" in row, path, line, f"entry '{key}' needs a 'traj' field")
        result.records.append(_run_entry(source, index, key, row, named, path, line))
        result.rows += 1
        entries += 1
        if result.rows >= batch:
            yield result
            result = ReadResult(path=path, format="fireact-run")
    result.sources = [Source(name=source, kind="run", format="fireact-run", path=str(path), task=named.get("task"),
                             split=named.get("split"), model=named.get("model"),
                             attempted=named.get("attempted") or entries,
                             meta={k: named[k] for k in ("temperature", "started", "start") if k in named})]
    yield result


def _run_entry(source: str, index: int, key: str, row: dict, named: dict, path: str, line: int) -> TrajectoryData:
    em, f1 = row.get("em"), row.get("f1")
    for name, value in (("em", em), ("f1", f1)):
        expect(value is None or isinstance(value, (int, float)), path, line, f"entry '{key}': '{name}' must be a number")
    extra = {
        "qid": str(key), "gold": None if row.get("gt") is None else str(row["gt"]),
        "reward": row.get("reward") if isinstance(row.get("reward"), bool) else None,
        "em": None if em is None else float(em), "f1": None if f1 is None else float(f1),
        "task": named.get("task", "unknown"), "split": named.get("split"), "model": named.get("model"),
        "meta": {"format": "fireact-run", "pred": row.get("pred")},
    }
    traj = row["traj"]
    if isinstance(traj, list):
        if isinstance(row.get("prompt"), list):
            extra["meta"]["prompt_messages"] = row["prompt"]
        return trajectory_from_messages(source, index, traj, path, line, **extra)
    expect(isinstance(traj, str), path, line, f"entry '{key}': 'traj' must be a string or a list of messages")
    question, prompt, response = _split_run_text(traj)
    if prompt is None:
        extra["meta"]["run_text"] = "fewshot"
    elif prompt != ALPACA_TEMPLATE.format(instruction=question):
        extra["meta"]["prompt_text"] = prompt
    if row.get("prompt"):
        extra["meta"]["fewshot_prompt"] = row["prompt"]
    steps, trailing = parse_text(response)
    extra["meta"]["trailing_newline"] = trailing
    data = {"id": stable_id(source, index), "source": source, "question": question, **extra}
    return _finish(data, steps, path, line)


def alpaca_record(t: Trajectory) -> dict[str, str]:
    """The Alpaca row; answer options read from the head of the output go back there."""
    instruction, output = t.question, render_text(t.steps, t.meta.get("trailing_newline", True))
    options = t.meta.get("options_in_output")
    if options and instruction.endswith("\n" + options[:-1]):
        instruction, output = instruction[: -len(options)], options + output
    return {"instruction": instruction, "input": t.meta.get("input", ""), "output": output}


def chat_messages(t: Trajectory, train_flags: bool = False, mask_observations: bool = True) -> list[dict]:
    """The trajectory as chat messages; with `train_flags`, every assistant turn says whether it carries loss."""
    messages = [m.model_dump() for m in t.prompt or []]
    role = t.meta.get("question_role", "user")
    if role != "none" or t.question:
        messages.append({"role": "user" if role == "none" else role, "content": t.meta.get("question_prefix", "") + t.question})
    weights = not train_flags and any(not s.flags.train for s in t.steps)
    roles = t.meta.get("observation_roles", {})
    for i, step in enumerate(t.steps):
        if step.raw is not None or step.thought is not None or step.action is not None:
            turn: dict[str, Any] = {"role": "assistant", "content": render_model_turn(step)}
            if train_flags:
                turn["train"] = step.flags.train
            elif weights:
                turn["weight"] = int(step.flags.train)
            messages.append(turn)
        obs = render_observation(step)
        if obs is not None:
            turn = {"role": roles.get(str(i), "user"), "content": obs}
            if train_flags:
                turn["train"] = False if mask_observations else step.flags.train
            messages.append(turn)
    return messages


def write_alpaca(trajs: Iterable[Trajectory], out: TextIO) -> int:
    """A JSON array indented as FireAct's files are (4 spaces, ASCII escapes, no final newline)."""
    n = 0
    out.write("[")
    for t in trajs:
        body = json.dumps(alpaca_record(t), indent=4)
        out.write(("," if n else "") + "\n" + "\n".join("    " + line for line in body.split("\n")))
        n += 1
    out.write("\n]" if n else "]")
    return n


def write_openai(trajs: Iterable[Trajectory], out: TextIO) -> int:
    n = 0
    for t in trajs:
        out.write(json.dumps({"messages": chat_messages(t)}) + "\n")  # ASCII escapes, as FireAct's files
        n += 1
    return n


def write_messages(trajs: Iterable[Trajectory], out: TextIO, mask_observations: bool = True) -> int:
    """TRL/axolotl-style: every assistant turn carries `"train": true|false` (its loss flag)."""
    n = 0
    for t in trajs:
        row = {"messages": chat_messages(t, train_flags=True, mask_observations=mask_observations),
               "id": t.id, "task": t.task, "method": t.method}
        out.write(json.dumps(row, ensure_ascii=False) + "\n")
        n += 1
    return n
