"""Repairing wrong answers: `fireact repair` (continue each from before its wrong step) against FireAct's way,
generating the questions again from the start with its own generation.py, side by side.

First `fireact generate` runs FireAct's few-shot ReAct (its prompt files, `--prompts-dir`) over N Bamboogle
questions against a stand-in model that searches twice and then answers wrong. Then, interleaved, `repeats`
times each: FireAct's generation.py over the same questions, and `fireact repair --source` over the stored
run; in this phase the stand-in answers right. Both get every question right in the end; what differs is what
it costs. Printed: wall-clock of each command (start-up included), model requests, and the characters of
prompt sent, with the ratios of the medians. Model latency is uniform between 50 and 500 ms, search 50 ms.

    .venv/bin/python bench/repair_vs_fireact.py             # needs .venv-ref (make install-test)
    .venv/bin/python bench/repair_vs_fireact.py --n 125 --repeats 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fireact"
REF_PYTHON = Path(os.environ.get("FIREACT_REF_PYTHON", ROOT / ".venv-ref" / "bin" / "python"))
LATENCY = (0.05, 0.5)
SERVE = """
import csv, json, os, sys, threading
sys.path.insert(0, {root!r})
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serpapi_server import FakeSerpAPI

COUNTS = {counts!r}
with open({csv!r}, newline="") as fh:
    GOLD = {{row["Question"]: row["Answer"] for row in csv.DictReader(fh)}}
PHASE = threading.local()

def policy(first, messages, reflect):
    tail = messages[-1]["content"].split("Episode finished, reward = 1")[-1]
    turns = tail.count("\\nObservation: ")
    if turns < 2:
        return f" I need fact {{turns}}.\\nAction: search[{{tail.strip()[:40]}} {{turns}}]"
    if PHASE.prefix == "gen":
        return " I have it.\\nAction: finish[unknown]"
    answer = next((a for q, a in GOLD.items() if q in tail), "unknown")
    return f" I have it.\\nAction: finish[{{answer}}]"

class Counted(FakeOpenAI):
    def answer(self, path, body):
        PHASE.prefix = path.strip("/").split("/")[0]
        sent = sum(len(m["content"]) for m in json.loads(body)["messages"])
        with self.lock:
            calls, chars = self.tally.get(PHASE.prefix, (0, 0))
            self.tally[PHASE.prefix] = (calls + 1, chars + sent)
            with open(COUNTS, "w") as fh:
                json.dump(self.tally, fh)
        return super().answer(path, body)

llm = Counted(policy=policy, latency={latency!r}, seed=1)
llm.tally = {{}}
serp = FakeSerpAPI(delay_s=0.05)
print(llm.start().removesuffix("/v1"), serp.start(), flush=True)
while True:
    threading.Event().wait(3600)
"""


def start_servers(counts: Path) -> tuple[subprocess.Popen, str, str]:
    code = SERVE.format(root=str(ROOT), counts=str(counts), csv=str(SHARED / "tasks" / "bamboogle" / "test.csv"),
                        latency=LATENCY)
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    llm_url, serp_url = proc.stdout.readline().split()
    return proc, llm_url, serp_url


def run(cmd: list[str], env: dict) -> tuple[float, str]:
    start = time.time()
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode not in (0, 3):
        tail = done.stdout[-2000:] + done.stderr[-2000:]
        raise SystemExit(f"{' '.join(cmd[:5])} ... exited {done.returncode}:\n{tail}")
    return time.time() - start, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=40, help="Bamboogle questions (it has 125)")
    args = parser.parse_args()
    if not REF_PYTHON.exists():
        raise SystemExit(f"FireAct's venv not found at {REF_PYTHON}: `make install-test` builds it")
    tmp = Path(tempfile.mkdtemp(prefix="repair-vs-fireact-"))
    counts = tmp / "counts.json"
    proc, llm_url, serp_url = start_servers(counts)
    env = {**os.environ, "OPENAI_API_KEY": "bench", "SERPAPI_API_KEY": "bench", "FIREACT_SERPAPI_URL": serp_url,
           "PYTHONPATH": str(ROOT)}
    studio = [str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists()
              else sys.executable, "-m", "fireact_core.cli", "--db", str(tmp / "studio.duckdb")]
    try:
        run([*studio, "generate", "--task", "bamboogle", "--split", "test", "--tasks-dir", str(SHARED / "tasks"),
             "--end", str(args.n), "--prompts-dir", str(SHARED / "reference" / "prompts"), "--model", "gpt-4",
             "--base-url", f"{llm_url}/gen/v1", "--run", "wrong", "--quiet"], env)
        print(f"{args.n} Bamboogle questions answered wrong after two searches (few-shot ReAct, FireAct's prompts); "
              f"model latency {LATENCY[0] * 1000:.0f}-{LATENCY[1] * 1000:.0f} ms, search 50 ms; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        rows: dict[str, dict[str, list[float]]] = {k: {"s": [], "calls": [], "chars": []}
                                                  for k in ("FireAct generation.py", "fireact repair")}
        for i in range(args.repeats):
            fa = [str(REF_PYTHON), str(SHARED / "reference" / "run_fireact.py"), "--model-url", f"{llm_url}/fa{i}/v1",
                  "--serp-url", serp_url, "--workdir", str(tmp / "fa"), "--", "--task", "bamboogle", "--task_split",
                  "test", "--task_start_index", "0", "--task_end_index", str(args.n), "--backend", "gpt-4",
                  "--promptpath", "default", "--evaluate", "--temperature", "0"]
            st = [*studio, "repair", "--source", "wrong", "--base-url", f"{llm_url}/st{i}/v1", "--run", f"fix-{i}",
                  "--quiet"]
            order = [("FireAct generation.py", fa, f"fa{i}"), ("fireact repair", st, f"st{i}")]
            for label, cmd, prefix in order if i % 2 == 0 else order[::-1]:
                wall, out = run(cmd, env)
                calls, chars = json.loads(counts.read_text())[prefix]
                for key, value in (("s", wall), ("calls", calls), ("chars", chars)):
                    rows[label][key].append(value)
                last = out.strip().splitlines()[-1] if out.strip() else ""
                print(f"  run {i + 1} {label:22} {wall:6.2f} s {calls:5d} requests {chars / 1e6:7.2f} M chars sent"
                      f"   {last[:90]}")
        print(f"{'':8}{'program':24}{'median s':>9}{'requests':>10}{'M chars':>9}")
        for label, r in rows.items():
            print(f"{'':8}{label:24}{statistics.median(r['s']):9.2f}{statistics.median(r['calls']):10.0f}"
                  f"{statistics.median(r['chars']) / 1e6:9.2f}")
        fa_r, st_r = rows["FireAct generation.py"], rows["fireact repair"]
        print("ratio (Studio repair / FireAct regeneration, medians): " + ", ".join(
            f"{name} {statistics.median(st_r[key]) / statistics.median(fa_r[key]):.2f}x"
            for key, name in (("s", "time"), ("calls", "requests"), ("chars", "prompt characters"))))
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
