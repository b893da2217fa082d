"""Curation pages at scale: builds a database of synthetic trajectories, then prints how long Browse filters
(with text search), opening a trajectory and each page's script run take.

    python bench/ui_bench.py                # 100,000 trajectories (about 600,000 steps)
    python bench/ui_bench.py --n 5000 --db /tmp/small.duckdb
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
RUN_FILE = ROOT.parent / "shared" / "fireact" / "trajs" / \
    "hotpotqa_dev_0_500_llama_models_lora_llama-2-7b-d_1000_0.7_2023-09-19-00-49-36.json"
GPT_FILE = ROOT.parent / "shared" / "fireact" / "finetune" / "gpt_hotpotqa.jsonl"
PAGES = ["pages/1_Browse.py", "pages/2_Trajectory.py", "pages/3_Review.py", "pages/4_Compare.py"]


def templates():
    from fireact_core.io.formats import read_file

    trajs = read_file(RUN_FILE).trajectories + read_file(GPT_FILE).trajectories
    return [t for t in trajs if len(t.steps) >= 2]


def build(store, first: int, n: int, batch: int, seed: int = 0) -> None:
    """Trajectories `first` to `n`: four runs over the same questions, steps copied from real FireAct ones."""
    from fireact_core.io.lint import lint_trajectory
    from fireact_core.records import Source, trajectory_data

    rng = random.Random(seed + first)
    pool = templates()
    words = sorted({w for t in pool for w in t.question.split() if w.isalpha()})
    sources = [Source(name=f"bench-run-{k}", kind="run", model=f"model-{k}") for k in range(4)]
    done = first
    while done < n:
        trajs = []
        for i in range(done, min(n, done + batch)):
            t = pool[rng.randrange(len(pool))]
            k = i % 4
            question = f"{t.question} ({' '.join(rng.sample(words, 3))} {i // 4})"
            steps = [t.steps[j] for j in sorted(rng.sample(range(len(t.steps)), min(len(t.steps), 6)))]
            while len(steps) < 6:
                steps.insert(0, t.steps[0])
            steps = [vary(s, rng, words) for s in steps]
            em = float(rng.random() < 0.35 + 0.1 * k)
            trajs.append(t.model_copy(update={
                "id": f"b{i:07d}", "source": f"bench-run-{k}", "model": f"model-{k}", "question": question,
                "steps": steps, "em": em, "f1": em, "reward": bool(em), "gold": t.gold or "unknown"}))
        store.save_trajectories(trajs, [x for t in trajs for x in lint_trajectory(trajectory_data(t))],
                                sources if done == 0 else ())
        done += len(trajs)
        print(f"  built {done}/{n}", file=sys.stderr, end="\r")
    print(file=sys.stderr)


def vary(step, rng, words):
    """A copy of a real step whose thought and observation end in a few random words, so no two texts repeat."""
    update = {}
    if step.thought is not None:
        update["thought"] = f"{step.thought} {' '.join(rng.sample(words, 2))}"
    if step.observation is not None:
        update["observation"] = f"{step.observation} {' '.join(rng.sample(words, 4))}"
    return step.model_copy(update=update) if update else step


def timed(fn, repeat: int = 5) -> str:
    """Median wall-clock and process CPU milliseconds of `repeat` calls (after one warm-up). On a shared,
    busy machine the wall clock includes waiting for a core; the CPU time is the work itself (summed over
    the database's threads)."""
    fn()
    wall, cpu = [], []
    for _ in range(repeat):
        start, start_cpu = time.perf_counter(), time.process_time()
        fn()
        wall.append((time.perf_counter() - start) * 1000)
        cpu.append((time.process_time() - start_cpu) * 1000)
    return f"{statistics.median(wall):7.1f} ms wall, {statistics.median(cpu):6.1f} ms cpu"


def session(store, fn):
    """One connection for the calls of one page run, as the pages do."""
    with store.session():
        return fn()


def bench_queries(store) -> None:
    from fireact_core.filters import TrajectoryFilter

    cases = {
        "no filter": TrajectoryFilter(),
        "em=wrong, source": TrajectoryFilter(em="wrong", source=["bench-run-1"]),
        "q='Super Bowl'": TrajectoryFilter(q="Super Bowl"),
        "q='zzqx' (no match)": TrajectoryFilter(q="zzqx"),
        "q='film' + em=wrong + lint": TrajectoryFilter(q="film", em="wrong", lint=["observation_none"]),
        "review=unreviewed + steps 3-6": TrajectoryFilter(review="unreviewed", steps_min=3, steps_max=6),
    }
    for name, f in cases.items():
        ms = timed(lambda: session(store, lambda: (store.count_filtered(f), store.list_summaries(f, sort="em", limit=50))))
        print(f"browse filter {name:34} count + first page: {ms}  ({store.count_filtered(f)} match)")
    ids = store.filter_ids(TrajectoryFilter(), limit=50000)
    rng = random.Random(1)
    pick = [ids[rng.randrange(len(ids))] for _ in range(20)]
    it = iter(pick * 2)
    print(f"open trajectory (get_trajectory, own connection):   {timed(lambda: session(store, lambda: store.get_trajectory(next(it))), 10)}")
    it2 = iter(pick * 2)

    def open_all():
        tid = next(it2)
        store.get_trajectory(tid), store.lints_of(tid), store.review_state(tid), store.list_revisions(tid)
        store.neighbours(TrajectoryFilter(em="wrong"), tid)

    with store.session():
        print(f"open trajectory (get_trajectory, page connection):  {timed(lambda: store.get_trajectory(next(it)), 10)}")
    print(f"open trajectory page data (+lints, review, history, prev/next): {timed(lambda: session(store, open_all), 10)}")
    print(f"compare counts of two runs:                           {timed(lambda: store.compare_counts('bench-run-0', 'bench-run-1'))}")


def bench_pages(db: str, first_id: str) -> None:
    from streamlit.testing.v1 import AppTest

    os.environ["FIREACT_DB"] = db
    for path in PAGES:
        at = AppTest.from_file(str(ROOT / path), default_timeout=60)
        if "Trajectory" in path:
            at.query_params["id"] = first_id
        if "Compare" in path:
            at.query_params["a"], at.query_params["b"] = "bench-run-0", "bench-run-1"
        at.run()
        errors = [e.value for e in at.exception]
        note = f"  EXCEPTION: {errors[0][:80]}" if errors else ""
        print(f"page {path:24} script run (AppTest): {timed(at.run, 3)}{note}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="trajectories to generate")
    parser.add_argument("--db", help="database file (kept and reused when it already holds --n trajectories)")
    parser.add_argument("--batch", type=int, default=5000)
    parser.add_argument("--no-pages", action="store_true", help="skip the AppTest page runs")
    args = parser.parse_args()
    if args.db:
        run(args.db, args)
        return
    with tempfile.TemporaryDirectory(prefix="fireact-ui-bench-") as folder:
        run(os.path.join(folder, "bench.duckdb"), args)


def run(db: str, args: argparse.Namespace) -> None:
    from fireact_core.filters import TrajectoryFilter
    from fireact_core.store import Store

    store = Store(db)
    have = store.count_trajectories()
    if have < args.n:
        start = time.perf_counter()
        build(store, have, args.n, args.batch)
        print(f"built {args.n - have} trajectories in {time.perf_counter() - start:.1f} s")
    with store.db.connect() as con:
        steps = con.execute("SELECT count(*) FROM steps").fetchone()[0]
    print(f"database {db}: {store.count_trajectories()} trajectories, {steps} steps")
    start, start_cpu = time.perf_counter(), time.process_time()
    f = TrajectoryFilter(q="Super Bowl")
    found = session(store, lambda: (store.count_filtered(f), store.list_summaries(f, limit=50))[0])
    print(f"browse filter q='Super Bowl' while the word index is missing (text scan, once): "
          f"{(time.perf_counter() - start) * 1000:7.1f} ms wall ({found} match)")
    worker = getattr(store, "_search_worker", None)
    if worker is not None:
        worker.join()
    store.refresh_search_index()
    print(f"search word index brought up to date (in the background) in {time.perf_counter() - start:.1f} s wall, "
          f"{time.process_time() - start_cpu:.1f} s cpu")
    bench_queries(store)
    if not args.no_pages:
        bench_pages(db, store.filter_ids(TrajectoryFilter(), limit=1)[0])


if __name__ == "__main__":
    main()
