"""Dashboard speed: build a synthetic database (default 100,000 trajectories over 50 runs, some of them with
perturbed search, tokens and cost recorded), then time the dashboard's queries together and the page's
script run under AppTest.

    .venv/bin/python bench/dashboard_bench.py [--n 100000] [--runs 50] [--repeat 5] [--db PATH]

Goals (issue 7): queries together under 300 ms, page script run under 1.5 s.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fireact_core.reports import charts as charts, lineage as lineage, figures as reports  # noqa: E402
from fireact_core.records import Action, Source, Step, StepFlags, Trajectory  # noqa: E402
from fireact_core.store import Store  # noqa: E402

MODELS = {"gpt-4": 0.42, "gpt-3.5-turbo": 0.31, "ft:gpt-3.5-turbo:lab::a1": 0.39, "llama-2-7b": 0.14,
          "llama-2-7b-fireact": 0.27}
METHODS = ["react", "cot", "reflexion", "io"]
TASKS = ["hotpotqa", "strategyqa", "bamboogle", "mmlu"]


def run_specs(n_runs: int) -> list[dict]:
    """Clean runs over every model x method, and every fifth a perturbed twin of the run before it."""
    specs, i = [], 0
    combos = [(m, meth) for m in MODELS for meth in METHODS]
    while len(specs) < n_runs:
        model, method = combos[i % len(combos)]
        task = TASKS[(i // len(combos)) % len(TASKS)]
        specs.append({"name": f"{task}-{model}-{method}-{i}", "task": task, "model": model, "method": method,
                      "perturb": None})
        if len(specs) < n_runs and i % 5 == 0:
            noisy = random.choice(["none", "random"])
            specs.append({**specs[-1], "name": specs[-1]["name"] + "-noisy", "perturb": noisy})
        i += 1
    return specs


def make_run(spec: dict, per_run: int, rng: random.Random) -> tuple[list[Trajectory], Source]:
    p = MODELS[spec["model"]] * (0.75 if spec["perturb"] else 1.0)
    trajs = []
    for q in range(per_run):
        n_steps = rng.randint(1, 7)
        steps = []
        for k in range(n_steps):
            last = k == n_steps - 1
            replaced = spec["perturb"] and not last and rng.random() < 0.5
            flags = StepFlags(perturbed=spec["perturb"] if replaced else None)
            steps.append(Step(thought=f"thought {k}", action=Action(raw="finish[x]" if last else f"search[q{q}]",
                                                                    name="finish" if last else "search",
                                                                    arg="x" if last else f"q{q}"),
                              observation=None if last else f"obs {k}", flags=flags))
        status = rng.choices(["finished", "unfinished", "failed"], [0.92, 0.05, 0.03])[0]
        em = float(rng.random() < p) if status == "finished" else 0.0
        tin, tout = rng.randint(300, 4000), rng.randint(30, 300)
        trajs.append(Trajectory(
            source=spec["name"], task=spec["task"], split="dev", qid=str(q), question=f"{spec['task']} question {q}",
            gold="x", method=spec["method"], model=spec["model"], steps=steps, final_answer="x", em=em,
            f1=min(1.0, em + rng.random() * 0.3), status=status, tokens_in=tin, tokens_out=tout,
            latency_s=rng.uniform(0.5, 9), cost_usd=(tin * 0.5 + tout * 1.5) / 1e6,
        ))
    meta = {"perturb": f"{spec['perturb']}:0.5"} if spec["perturb"] else {}
    src = Source(name=spec["name"], kind="run", task=spec["task"], split="dev", model=spec["model"],
                 method=spec["method"], attempted=per_run + rng.randint(0, 5), meta=meta)
    return trajs, src


def build(path: Path, n: int, n_runs: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    random.seed(seed)
    store = Store(path)
    per_run = max(1, n // n_runs)
    t0 = time.perf_counter()
    for spec in run_specs(n_runs):
        trajs, src = make_run(spec, per_run, rng)
        store.save_trajectories(trajs, sources=[src])
    print(f"built {per_run * n_runs} trajectories over {n_runs} runs in {time.perf_counter() - t0:.1f} s")


def timed_store_methods(store: Store, spent: dict[str, float]) -> None:
    """Wrap the store's report methods so that each call adds its wall time to `spent`."""
    for name in [n for n in dir(store) if n.startswith(("report_", "list_models", "get_source", "count_traj"))]:
        method = getattr(store, name)

        def timed(*args, _m=method, _n=name, **kwargs):
            t0 = time.perf_counter()
            try:
                return _m(*args, **kwargs)
            finally:
                spent[_n] = spent.get(_n, 0.0) + time.perf_counter() - t0
        setattr(store, name, timed)


def time_queries(store: Store, repeat: int) -> None:
    """Everything the page reads from the store: runs, groups, robustness pairs, steps, one comparison, lineage."""
    walls, cpus, spent = [], [], {}
    timed_store_methods(store, spent)
    for _ in range(repeat):
        t0, c0 = time.perf_counter(), time.process_time()
        with store.session():
            data = reports.dashboard_runs(store)
            reports.em_by_model_method(data.runs), reports.prompted_vs_finetuned(data.runs, data.registry)
            pairs = reports.robustness(store, data.runs)
            reports.steps_distribution(store, list(data.runs["run"]))
            names = store.report_run_names()
            reports.compare_runs(store, names[0], names[1])
            lineage.run_lineage(store, data.runs, names[0], data.registry)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    print(f"dashboard queries together ({len(data.runs)} runs, {len(pairs)} clean/perturbed pairs): "
          f"median {1000 * statistics.median(walls):.0f} ms, best {1000 * min(walls):.0f} ms wall "
          f"(process CPU median {1000 * statistics.median(cpus):.0f} ms) (goal < 300 ms)")
    print(f"  SQL {1000 * sum(spent.values()) / repeat:.0f} ms of it (mean wall): " + ", ".join(
        f"{k} {1000 * v / repeat:.0f} ms" for k, v in sorted(spent.items(), key=lambda kv: -kv[1])))
    took = []
    for _ in range(2):
        t0 = time.perf_counter()
        figs = [charts.em_by_model_method(data.by_model_method), charts.prompted_vs_finetuned(data.prompted_finetuned),
                charts.robustness(data.robustness), charts.cost_vs_em(data.runs), charts.steps_distribution(data.steps)]
        took.append(time.perf_counter() - t0)
    print(f"building the {len(figs)} charts: {1000 * took[0]:.0f} ms with plotly's first imports, then "
          f"{1000 * took[1]:.0f} ms")


TABS = ["Runs", "Models & methods", "Robustness", "Cost & steps", "Compare runs", "Lineage"]


def time_page(path: Path, repeat: int) -> None:
    """The page's script run under AppTest: the first (imports included), then each tab (only the open tab's
    content runs), median of `repeat` runs each."""
    import logging

    from streamlit.testing.v1 import AppTest

    # Setting a tab through session state between runs makes Streamlit warn that no script is running.
    logging.getLogger("streamlit.runtime.scriptrunner_utils.script_run_context").addFilter(
        lambda record: "missing ScriptRunContext" not in record.getMessage())
    os.environ["FIREACT_DB"] = str(path)
    at = AppTest.from_file(str(ROOT / "pages" / "8_Dashboard.py"), default_timeout=120)
    t0 = time.perf_counter()
    at.run()
    first = time.perf_counter() - t0
    if at.exception:
        print("page raised:", at.exception[0].message)
        return
    print(f"page script run (AppTest, goal < 1.5 s): first {first:.2f} s (imports included)")
    for tab in TABS:
        at.session_state["dash_tab"] = tab
        runs = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            at.run()
            runs.append(time.perf_counter() - t0)
        assert not at.exception, at.exception
        print(f"  tab {tab!r}: median {statistics.median(runs):.2f} s, best {min(runs):.2f} s")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000, help="trajectories in all")
    ap.add_argument("--runs", type=int, default=50)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--db", help="reuse (or build once into) this database file")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(args.db) if args.db else Path(tmp) / "bench.duckdb"
        if not path.exists():
            build(path, args.n, args.runs)
        store = Store(path)
        print(f"database: {store.count_trajectories()} trajectories")
        time_queries(store, args.repeat)
        time_page(path, args.repeat)


if __name__ == "__main__":
    main()
