"""What a generation run needs before it starts, checked up front so that a run is never registered only to fail
at once: a SerpAPI key for SerpAPI search, an API key for an endpoint, the folders and files named, questions in
the chosen range. Each problem names the setting, as the Generate page labels it, and what to do.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from ..errors import FireactError

CLI_WORDS = {  # the engine's messages name command-line options; the page names its own fields
    "--sample": "the sample size", "(--local-model DIR)": "(Local model folder)", "--search local": "Search: local",
    "`fireact cancel ": "the Cancel button of run `",
}


def in_page_words(message: str) -> str:
    for cli, page in CLI_WORDS.items():
        message = message.replace(cli, page)
    return message


def _key_given(field: Any, *env: str) -> bool:
    value = field.get_secret_value() if field is not None else ""
    return bool(value) or any(os.environ.get(name) for name in env)


def run_problems(cfg: Any) -> list[str]:
    """Everything that would stop the run configured by `cfg` (an engine RunConfig) as soon as it started."""
    problems: list[str] = []
    if cfg.search == "serpapi" and not _key_given(cfg.serpapi_key, "SERPAPI_API_KEY", "SERPAPI_KEY") \
            and not os.environ.get("FIREACT_SERPAPI_URL"):
        problems.append("Search 'serpapi' needs a SerpAPI key, and none is set: start the app with SERPAPI_API_KEY "
                        "in its environment, or choose Search 'local' (BM25 over a corpus) or 'none'.")
    if cfg.search == "local" and cfg.corpus and not Path(cfg.corpus).expanduser().is_file():
        problems.append(f"Corpus JSONL: no file at {cfg.corpus}; leave it empty for the shipped corpus.")
    if cfg.backend == "openai" and not _key_given(cfg.api_key, "OPENAI_API_KEY"):
        problems.append("The endpoint needs an API key, and none is set: type it in 'API key' (any text, such as "
                        "EMPTY, for a local server that takes none) or start the app with OPENAI_API_KEY set.")
    if cfg.backend == "local":
        if not cfg.local_model:
            problems.append("Backend 'local folder' needs a Local model folder.")
        elif not (Path(cfg.local_model).expanduser() / "config.json").exists():
            problems.append(f"Local model folder: {cfg.local_model} holds no config.json, so it is not a model folder.")
        if cfg.adapter and not Path(cfg.adapter).expanduser().is_dir():
            problems.append(f"Adapter folder: no folder at {cfg.adapter}.")
    if cfg.task == "custom":
        if not cfg.questions_path:
            problems.append("Task 'custom' needs a Questions file (CSV or JSONL with question and answer).")
        elif not Path(cfg.questions_path).expanduser().is_file():
            problems.append(f"Questions file: no file at {cfg.questions_path}.")
    else:
        folder = Path(cfg.tasks_dir or os.environ.get("FIREACT_TASKS_DIR") or "tasks").expanduser()
        if not (folder / cfg.task).is_dir():
            problems.append(f"Tasks folder: {folder} has no '{cfg.task}' folder; point it at FireAct's tasks folder "
                            f"(the one holding hotpotqa/, strategyqa/, ...).")
    if not problems:
        try:
            from .engine import select_questions

            select_questions(cfg)
        except FireactError as exc:
            problems.append(in_page_words(str(exc)))
    return problems
