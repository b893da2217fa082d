"""Mixer speed: preview after a slider move, and saving a large version, on a synthetic database.

    python bench/mix_bench.py [--n 100000] [--save 50000] [--db PATH]

Builds (or reuses) a database of `--n` synthetic trajectories saved through `store.save_trajectories` in
batches, then prints how long a preview takes when a ratio changes (target: under 300 ms at 100,000) and how
long saving a version of `--save` trajectories takes (target: under 5 s at 50,000).
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

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fireact_core.mixing.versions import MixSpec, plan_mix, save_mix
from fireact_core.records import Action, Annotation, Lint, Source, Step, Trajectory
from fireact_core.store import Store

TASKS = ["hotpotqa", "strategyqa", "mmlu"]
METHODS = ["react", "cot", "reflexion"]


def synthetic(i: int, rng: random.Random) -> Trajectory:
    method = rng.choice(METHODS)
    n = 1 if method == "cot" else rng.randint(2, 7)
    steps = [Step(thought=f"I need to look up fact {k} about item {i}.", action=Action(raw=f"search[item {i} fact {k}]",
                  name="search", arg=f"item {i} fact {k}"), observation=f"Item {i} fact {k} is {rng.random():.6f}. " * 3)
             for k in range(n - 1)]
    steps.append(Step(thought="So the answer is known.", action=Action(raw=f"finish[{i % 97}]", name="finish", arg=str(i % 97))))
    correct = rng.random() < 0.8
    return Trajectory(id=f"syn{i:07d}", source=f"synthetic-{i % 4}", task=rng.choice(TASKS), method=method,
                      question=f"What is the value of item {i % (len(TASKS) * 30000)}?", steps=steps,
                      final_answer=str(i % 97), reward=correct, em=float(correct), f1=float(correct))


def build(path: Path, n: int, batch: int = 5000) -> Store:
    store = Store(path)
    have = store.count_trajectories()
    rng = random.Random(0)
    t0 = time.perf_counter()
    for start in range(have, n, batch):
        trajs = [synthetic(i, rng) for i in range(start, min(n, start + batch))]
        lints = [Lint(trajectory_id=t.id, kind="eval_contamination") for t in trajs if rng.random() < 0.02]
        anns = [Annotation(trajectory_id=t.id, author="bench", status=rng.choice(["accepted", "rejected"]), seq=1)
                for t in trajs if rng.random() < 0.05]
        sources = [Source(name=f"synthetic-{k}") for k in range(4)] if start == 0 else []
        store.save_trajectories(trajs, lints=lints, sources=sources, annotations=anns)
    if n > have:
        print(f"built {n - have} trajectories in {time.perf_counter() - t0:.1f} s")
    return store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000, help="trajectories in the database")
    ap.add_argument("--save", type=int, default=50_000, help="size of the version to save")
    ap.add_argument("--db", help="database file (kept and reused); default: a temporary one")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    tmp = tempfile.TemporaryDirectory()
    store = build(Path(args.db) if args.db else Path(tmp.name) / "bench.duckdb", args.n)
    base = {"task_ratio": {"hotpotqa": 0.5, "strategyqa": 0.25, "mmlu": 0.25}, "method_ratio": {"react": 0.5, "cot": 0.5},
            "size": 2000, "filters": {"dedupe": True, "exclude_lints": ["eval_contamination"], "exclude_rejected": True}}
    t0 = time.perf_counter()
    plan_mix(store, MixSpec.parse(base))
    print(f"first preview (filters or seed changed: the candidates are computed in the database): "
          f"{(time.perf_counter() - t0) * 1000:.0f} ms")
    times = []
    for k in range(args.repeat):
        spec = MixSpec.parse({**base, "task_ratio": {"hotpotqa": 0.3 + 0.1 * k, "strategyqa": 0.3, "mmlu": 0.2}})
        t0 = time.perf_counter()
        plan = plan_mix(store, spec)
        times.append(time.perf_counter() - t0)
    print(f"preview after a slider move, {args.n} trajectories, mix of {plan.size}: median "
          f"{statistics.median(times) * 1000:.0f} ms, max {max(times) * 1000:.0f} ms (target < 300 ms)")
    spec = MixSpec.parse({"size": args.save, "filters": {"dedupe": False}})
    t0 = time.perf_counter()
    version = save_mix(store, spec, f"bench-cold-{time.time_ns()}")
    print(f"saving a version of {version.size} trajectories, cold (no preview before): "
          f"{time.perf_counter() - t0:.2f} s")
    spec = spec.model_copy(update={"seed": 2})
    plan_mix(store, spec)
    t0 = time.perf_counter()
    version = save_mix(store, spec, f"bench-{time.time_ns()}")
    print(f"saving a version of {version.size} trajectories after its preview (as the page does): "
          f"{time.perf_counter() - t0:.2f} s (target < 5 s)")
    print(f"load average during the run: {', '.join(f'{x:.1f}' for x in os.getloadavg())} on {os.cpu_count()} CPUs")
    tmp.cleanup()


if __name__ == "__main__":
    main()
