"""Import speed: N synthetic trajectories as OpenAI chat JSONL and as native JSONL, imported into fresh databases.

Prints, per format (the median of `--repeat` runs, 3 by default, with their spread): trajectories per second,
the ratio to DuckDB's own `read_json` of the same file (the median of each import's ratio to the read_json run
right after it), and the peak memory of the import (its process and the reader processes it starts); then how long `fireact stats --json`
and `fireact lint --json` take on the resulting database. Targets: >= 10,000 trajectories/s, within 3x of read_json, peak memory < 2 GB, stats and
lint < 1 s each.

    .venv/bin/python bench/import_bench.py            # 100,000 trajectories
    .venv/bin/python bench/import_bench.py --n 5000 --repeat 1   # a quick look
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
WORDS = ("the of and to in a is was for on as with by he at from his an were are which this be or had first "
         "one their its new after who they have her she two been other when there all during into school time may "
         "years more most only over city some world would where later up such used many can state about national "
         "out known university united then made film album series born played team season river band county war "
         "american government early john house music including").split()
TARGETS = {"rate": 10_000, "ratio": 3.0, "rss_mb": 2048, "query_s": 1.0}
POOL_WORKERS = min(os.cpu_count() or 1, 4)  # reader processes of a large import (fireact_core.io.importer)

# Runs one fireact command in a fresh interpreter and reports its own wall time, CPU time and peak memory, and
# those of the reader processes a large import starts (`pool_cpu`, and the largest one's peak `pool_rss_mb`).
# The modules are loaded first, so `seconds` is the command's work; the caller also times the whole process.
MEASURE = """
import json, resource, sys, time
from fireact_core.cli import build_parser, main
import fireact_core.io.exporter, fireact_core.io.importer, fireact_core.store
build_parser()
start = resource.getrusage(resource.RUSAGE_SELF)
cpu0 = start.ru_utime + start.ru_stime
t0 = time.perf_counter()
code = main(sys.argv[1:])
elapsed = time.perf_counter() - t0
use = resource.getrusage(resource.RUSAGE_SELF)
kids = resource.getrusage(resource.RUSAGE_CHILDREN)
print(json.dumps({"code": code, "seconds": elapsed, "cpu": use.ru_utime + use.ru_stime - cpu0, "rss_mb": use.ru_maxrss / 1024,
                  "pool_cpu": kids.ru_utime + kids.ru_stime, "pool_rss_mb": kids.ru_maxrss / 1024}))
"""


def text(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    length = 0
    while length < chars:
        w = rng.choice(WORDS)
        words.append(w)
        length += len(w) + 1
    return " ".join(words).capitalize()


def synthetic(rng: random.Random, i: int, steps: int = 6) -> dict:
    """One trajectory as plain data: question, gold, and (thought, action name, argument, observation) steps."""
    gold = text(rng, 12)
    out = []
    for k in range(steps):
        last = k == steps - 1
        name, arg = ("finish", gold) if last else ("search", text(rng, 30))
        obs = "Episode finished, reward = True" if last else text(rng, 300)
        out.append((text(rng, 150), name, arg, obs))
    return {"question": text(rng, 100) + f" ({i})?", "gold": gold, "steps": out}


def openai_row(t: dict) -> dict:
    messages = [{"role": "user", "content": t["question"]}]
    for thought, name, arg, obs in t["steps"]:
        messages.append({"role": "assistant", "content": f"Thought: {thought}\nAction: {name}[{arg}]"})
        messages.append({"role": "user", "content": f"Observation: {obs}"})
    return {"messages": messages}


def native_row(t: dict, i: int) -> dict:
    flags = {"train": True, "perturbed": None, "original_observation": None, "parse_error": None}
    steps = [{"thought": th, "action": {"raw": f"{name}[{arg}]", "name": name, "arg": arg}, "observation": obs,
              "raw": None, "obs_raw": None, "flags": dict(flags)} for th, name, arg, obs in t["steps"]]
    traj = {
        "schema_version": 1, "id": f"bench{i:09d}", "source": "bench", "task": "hotpotqa", "split": None, "qid": str(i),
        "question": t["question"], "gold": t["gold"], "method": "react", "model": "synthetic", "steps": steps,
        "final_answer": t["gold"], "reward": True, "em": 1.0, "f1": 1.0, "status": "finished", "error": None,
        "tokens_in": None, "tokens_out": None, "latency_s": None, "cost_usd": None, "prompt": None, "meta": {},
        "revision": 0, "created_at": "2026-01-01T00:00:00Z", "updated_at": None, "updated_by": None,
    }
    return {"record": "trajectory", "trajectory": traj, "revisions": [], "annotations": [], "lints": []}


def write_files(folder: Path, n: int) -> tuple[Path, Path]:
    """The two files (kept from an earlier run into the same --keep folder when they hold as many)."""
    rng = random.Random(0)
    chat, native = folder / "bench_chat.jsonl", folder / "bench_native.jsonl"
    marker = folder / "bench_n.txt"
    if marker.exists() and marker.read_text() == str(n) and chat.exists() and native.exists():
        return chat, native
    with open(chat, "w") as fc, open(native, "w") as fn:
        fn.write(json.dumps({"record": "header", "format": "fireact-native", "version": 1}) + "\n")
        fn.write(json.dumps({"record": "source", "source": {"name": "bench", "kind": "import", "format": "native"}}) + "\n")
        for i in range(n):
            t = synthetic(rng, i)
            fc.write(json.dumps(openai_row(t)) + "\n")
            fn.write(json.dumps(native_row(t, i)) + "\n")
    marker.write_text(str(n))
    return chat, native


def fireact(db: Path, *args: str) -> dict:
    """Run `fireact --db DB ARGS...` in its own process; its seconds (without start-up), peak MB and wall seconds."""
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", MEASURE, "--db", str(db), *args], cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.exit(f"fireact {' '.join(args)} failed:\n{proc.stderr[-2000:]}")
    figures = json.loads(proc.stdout.strip().splitlines()[-1])
    figures["wall"] = wall
    return figures


def duckdb_read_json(path: Path, db: Path) -> float:
    """Seconds DuckDB takes to read the same file into a table of its own (in a fresh process)."""
    script = (
        "import duckdb, sys, time\n"
        "con = duckdb.connect(sys.argv[1])\n"
        "con.execute('SET enable_progress_bar = false')\n"
        "t0 = time.perf_counter()\n"
        "con.execute(\"CREATE TABLE raw AS SELECT * FROM read_json(?, format='newline_delimited', "
        "maximum_object_size=67108864)\", [sys.argv[2]])\n"
        "n = con.execute('SELECT count(*) FROM raw').fetchone()[0]\n"
        "print(time.perf_counter() - t0, n)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script, str(db), str(path)], capture_output=True, text=True, check=True)
    return float(proc.stdout.strip().splitlines()[-1].split()[0])


def mark(ok: bool) -> str:
    return "ok" if ok else "MISSED"


def bench_format(folder: Path, label: str, path: Path, n: int, repeat: int) -> Path:
    """Import the file and read it with DuckDB's `read_json`, `repeat` times each in turn, into fresh databases;
    the figures are the median run's (this machine's timings vary from run to run by a fifth)."""
    db, raw = folder / f"{label}.duckdb", folder / f"{label}_raw.duckdb"
    runs, refs = [], []
    for _ in range(repeat):
        for old in (db, raw, db.with_suffix(".duckdb.wal"), raw.with_suffix(".duckdb.wal")):
            old.unlink(missing_ok=True)
        os.sync()  # no writeback of the files just written (or of the last database) runs under a measurement
        runs.append(fireact(db, "import", str(path)))
        os.sync()
        refs.append(duckdb_read_json(path, raw))
    run = sorted(runs, key=lambda r: r["seconds"])[len(runs) // 2]
    ref = statistics.median(refs)
    rate = n / run["seconds"]
    # each import against the read_json run right after it: this machine's speed drifts by a fifth from minute
    # to minute, and both sides of one pair ran at about the same speed
    ratio = statistics.median(r["seconds"] / x for r, x in zip(runs, refs))
    size_mb = path.stat().st_size / 1e6
    cpu = run["cpu"] + run["pool_cpu"]
    peak = max(r["rss_mb"] + POOL_WORKERS * r["pool_rss_mb"] for r in runs)  # at worst every reader at its peak
    spread = (f"; of {repeat}: import {min(r['seconds'] for r in runs):.2f}-{max(r['seconds'] for r in runs):.2f} s, "
              f"read_json {min(refs):.2f}-{max(refs):.2f} s" if repeat > 1 else "")
    print(f"{label:7} {size_mb:6.1f} MB  import {run['seconds']:6.2f} s wall, {cpu:6.2f} s CPU "
          f"({run['cpu']:.2f} s writer + {run['pool_cpu']:.2f} s readers; {run['wall']:.2f} s with start-up)  "
          f"{rate:7,.0f} traj/s [{mark(rate >= TARGETS['rate'])}] ({n / cpu:,.0f} per CPU second)  "
          f"read_json {ref:5.2f} s  ratio {ratio:4.2f}x [{mark(ratio <= TARGETS['ratio'])}] (median of the runs' "
          f"ratios; {run['seconds'] / ref:4.2f}x of the medians)  "
          f"peak {peak:5.0f} MB [{mark(peak < TARGETS['rss_mb'])}] (writer {run['rss_mb']:.0f} MB, "
          f"each reader up to {run['pool_rss_mb']:.0f} MB){spread}")
    return db


def bench_queries(db: Path) -> None:
    for command in (["stats", "--json"], ["lint", "--json"]):
        run = fireact(db, *command)
        print(f"fireact {' '.join(command):12} {run['seconds']:5.2f} s [{mark(run['seconds'] < TARGETS['query_s'])}] "
              f"({run['wall']:.2f} s with Python start-up and imports)")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="trajectories to write and import (default 100000)")
    parser.add_argument("--keep", help="folder to write into and keep (default: a temporary folder)")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each measurement; the median is shown")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="fireact-bench-") as tmp:
        folder = Path(args.keep or tmp)
        folder.mkdir(parents=True, exist_ok=True)
        t0 = time.perf_counter()
        chat, native = write_files(folder, args.n)
        print(f"{args.n:,} synthetic trajectories (6 steps) written in {time.perf_counter() - t0:.1f} s to {folder}; "
              f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
        db = bench_format(folder, "openai", chat, args.n, args.repeat)
        bench_format(folder, "native", native, args.n, args.repeat)
        bench_queries(db)


if __name__ == "__main__":
    main()
