"""The CLI's lists of tasks, methods, search tools and modes are the registries' own."""

from __future__ import annotations

from typing import get_args

import pytest

from fireact_core.cli import build_parser
from fireact_core.generation.engine import RunConfig
from fireact_core.records import METHODS
from fireact_core.generation.tasks import list_tasks
from fireact_core.generation.tools import SEARCH_BACKENDS, SEARCH_KINDS


def command_choices(command: str) -> dict[str, list[str]]:
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    return {a.dest: list(a.choices) for a in sub.choices[command]._actions if a.choices is not None}


def generate_choices() -> dict[str, list[str]]:
    return command_choices("generate")


def test_generate_offers_what_the_registries_hold():
    choices = generate_choices()
    assert choices["task"] == list_tasks()
    assert choices["method"] == list(METHODS)
    assert choices["search"] == list(SEARCH_KINDS)
    assert set(SEARCH_KINDS) == {*SEARCH_BACKENDS, "none"}
    assert choices["finetuned"] == list(get_args(RunConfig.model_fields["finetuned_format"].annotation))
    assert choices["action_reading"] == list(get_args(RunConfig.model_fields["action_reading"].annotation))


def test_continue_and_repair_offer_the_same_search_tools_as_generate():
    assert command_choices("continue")["search"] == command_choices("repair")["search"] == list(SEARCH_KINDS)


def test_an_unknown_task_is_refused_with_the_known_ones(capsys):
    with pytest.raises(SystemExit) as exc:
        build_parser().parse_args(["generate", "--task", "nope", "--run", "r"])
    assert exc.value.code == 2
    assert "'hotpotqa'" in capsys.readouterr().err
