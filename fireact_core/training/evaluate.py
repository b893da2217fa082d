"""Evaluate a registered model: a generation run of it on a task split in fine-tuned mode (no few-shot examples)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal

from ..errors import FireactError

if TYPE_CHECKING:
    from ..records import AgentMethod
    from ..store import Store


def default_tasks_dir() -> str:
    from ..generation import engine as engine

    return engine.default_tasks_dir()


def evaluation_config(store: Store, model_name: str, task: str, split: str, sample: int = 50,
                      search: Literal["serpapi", "local", "none"] = "local", tasks_dir: str | None = None, method: AgentMethod = "react",
                      **extra: Any):
    """The engine's RunConfig for evaluating `model_name` on `sample` questions of `task`/`split`."""
    from ..generation import engine as engine

    model = store.get_model(model_name)
    if sample < 1:
        raise FireactError(f"evaluate {model_name}: the sample must hold at least one question")
    settings = engine.model_settings(model)
    run = engine.default_run_name(task, split, method, f"{model.name}-finetuned")
    return engine.RunConfig(run=run, task=task, split=split, tasks_dir=tasks_dir or engine.default_tasks_dir(),
                            sample=sample, method=method, search=search, **{**settings, **extra})


def start_evaluation(store: Store, model_name: str, task: str, split: str, by: str | None = None, **options: Any) -> str:
    """Start the evaluation run in the background (as the Generate page does); returns the run's name."""
    from ..generation import engine as engine

    return engine.start_run(store, evaluation_config(store, model_name, task, split, **options), by=by)
