"""FireAct Studio's `fireact generate` against FireAct's own generation.py, side by side, with no tuning flags.

Both run few-shot ReAct over the 125 Bamboogle questions, each with its default prompts and settings (FireAct:
`--promptpath default`, its prompt files; the Studio: `fireact generate` with only the task, model, endpoint and
run name, so its own prompts, whose version it reads from the database, and SerpAPI search), against the same
stand-ins, in a separate process: an OpenAI-compatible server whose latency is uniform between 50 and 500 ms and
a SerpAPI stand-in answering in 50 ms. The model searches twice, then answers, in both layouts. Each Studio run
gets a new database (no search cached by an earlier run). Runs are interleaved, three of each; every figure is
the wall-clock of the whole command (start-up included). Also printed: `fireact --help` and how long after each
program starts its first model request reaches the server (the stand-in notes the time it arrives; the bench,
the time it started the command). `--prompts-dir` runs the Studio on FireAct's prompt files instead.

    .venv/bin/python bench/generate_vs_fireact.py            # needs .venv-ref (make install-test)
    .venv/bin/python bench/generate_vs_fireact.py --repeats 5
"""

from __future__ import annotations

import argparse
import os
import resource
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
CPU: dict[str, float] = {}  # CPU seconds of the last command run with each interpreter
SERVE = """
import os, sys, time
sys.path.insert(0, {root!r})
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serpapi_server import FakeSerpAPI

FIRST = {first!r}
COUNTS = {{}}

def policy(first, messages, reflect):
    if len(messages) == 1:  # FireAct's layout: one text, continued after its "Thought:"
        tail = messages[-1]["content"].split("Episode finished, reward = 1")[-1]
        question, head = tail.strip().split("\\n")[0], " "
        turns = tail.count("\\nObservation: ")
    else:  # the Studio's: instructions and examples, the question, then one message per turn
        question, head = first, "Thought: "
        turns = sum(1 for m in messages if m["role"] == "user" and m["content"].startswith("Observation:"))
    if turns < 2:
        return f"{{head}}I need fact {{turns}}.\\nAction: search[{{question[:40]}} {{turns}}]"
    return f"{{head}}I have it.\\nAction: finish[unknown]"

class Timed(FakeOpenAI):
    def answer(self, path, body):
        mark = os.path.join(FIRST, path.strip("/").split("/")[0])
        now = time.time()
        if not os.path.exists(mark):
            with open(mark, "w") as fh:
                fh.write(repr(now))
        out = super().answer(path, body)
        with self.lock:
            COUNTS[mark] = COUNTS.get(mark, 0) + 1
            with open(mark + ".last", "w") as fh:
                fh.write(f"{{now + out[2]!r}} {{COUNTS[mark]}}")
        return out

llm = Timed(policy=policy, latency={latency!r}, seed=1)
serp = FakeSerpAPI(delay_s=0.05)
print(llm.start().removesuffix("/v1"), serp.start(), flush=True)
while True:
    time.sleep(3600)
"""


def start_servers(first: Path) -> tuple[subprocess.Popen, str, str]:
    code = SERVE.format(root=str(ROOT), latency=LATENCY, first=str(first))
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    llm_url, serp_url = proc.stdout.readline().split()
    return proc, llm_url, serp_url


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(cmd: list[str], env: dict, cwd: Path) -> tuple[float, float, str]:
    start, cpu = time.time(), cpu_seconds()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True)
    wall = time.time() - start
    CPU[cmd[0]] = cpu_seconds() - cpu
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(cmd[:4])} ... exited {done.returncode}:\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return start, wall, done.stdout


def em_of(out: str, prefix: str) -> str:
    line = next((ln for ln in out.splitlines() if ln.startswith(prefix)), "")
    return line.strip()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--n", type=int, default=125, help="Bamboogle questions (it has 125)")
    parser.add_argument("--prompts-dir", action="store_true", help="the Studio on FireAct's prompt files")
    args = parser.parse_args()
    if not REF_PYTHON.exists():
        raise SystemExit(f"FireAct's venv not found at {REF_PYTHON}: `make install-test` builds it")
    tmp = Path(tempfile.mkdtemp(prefix="gen-vs-fireact-"))
    first = tmp / "first"
    first.mkdir()
    proc, llm_url, serp_url = start_servers(first)
    env = {**os.environ, "OPENAI_API_KEY": "bench", "SERPAPI_API_KEY": "bench", "FIREACT_SERPAPI_URL": serp_url,
           "PYTHONPATH": str(ROOT)}
    studio_py = str(ROOT / ".venv" / "bin" / "python") if (ROOT / ".venv" / "bin" / "python").exists() else sys.executable
    try:
        help_times = [timed([studio_py, "-m", "fireact_core.cli", "--help"], env, ROOT)[1] for _ in range(5)]
        rows: dict[str, list[float]] = {"FireAct generation.py": [], "fireact generate": []}
        first_request: dict[str, list[float]] = {label: [] for label in rows}
        prompts = "FireAct's prompt files" if args.prompts_dir else "its default prompts"
        print(f"{args.n} Bamboogle questions, few-shot ReAct (the Studio with {prompts}), model latency "
              f"{LATENCY[0] * 1000:.0f}-{LATENCY[1] * 1000:.0f} ms, search 50 ms; load average "
              f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        for i in range(args.repeats):
            fa_cmd = [str(REF_PYTHON), str(SHARED / "reference" / "run_fireact.py"), "--model-url",
                      f"{llm_url}/fa{i}/v1", "--serp-url", serp_url, "--workdir", str(tmp / "fa"), "--", "--task",
                      "bamboogle", "--task_split", "test", "--task_start_index", "0", "--task_end_index", str(args.n),
                      "--backend", "gpt-4", "--promptpath", "default", "--evaluate", "--temperature", "0"]
            st_cmd = [studio_py, "-m", "fireact_core.cli", "--db", str(tmp / f"studio-{i}.duckdb"), "generate",
                      "--task", "bamboogle", "--split", "test", "--tasks-dir", str(SHARED / "tasks"), "--end",
                      str(args.n), "--model", "gpt-4", "--base-url", f"{llm_url}/st{i}/v1", "--run", f"bench-{i}"]
            if args.prompts_dir:
                st_cmd += ["--prompts-dir", str(SHARED / "reference" / "prompts")]
            order = [("FireAct generation.py", fa_cmd), ("fireact generate", st_cmd)]
            for label, cmd in order if i % 2 == 0 else order[::-1]:
                start, wall, out = timed(cmd, env, ROOT)
                rows[label].append(wall)
                tag = "fa" if label.startswith("FireAct") else "st"
                begin = float((first / f"{tag}{i}").read_text()) - start
                last_at, calls = (first / f"{tag}{i}.last").read_text().split()
                last = float(last_at) - start
                first_request[label].append(begin)
                score = em_of(out, "em " if tag == "fa" else "run ")
                print(f"  run {i + 1} {label:22} {wall:6.2f} s (first request at {begin:5.2f} s, last answer at "
                      f"{last:5.2f} s, {calls} requests, {CPU[cmd[0]]:5.2f} s of CPU)   {score}")
        fa, st = statistics.median(rows["FireAct generation.py"]), statistics.median(rows["fireact generate"])
        print(f"{'':8}{'program':24}{'median s':>9}{'min s':>8}{'max s':>8}")
        for label, values in rows.items():
            print(f"{'':8}{label:24}{statistics.median(values):9.2f}{min(values):8.2f}{max(values):8.2f}")
        verdict = "meets" if st <= 0.67 * fa else "MISSES"
        print(f"ratio (Studio / FireAct, medians): {st / fa:.2f}x; target <= 0.67x: {verdict}")
        fa_first, st_first = (statistics.median(first_request[label]) for label in rows)
        print(f"first model request after the command starts (medians): FireAct generation.py {fa_first:.2f} s, "
              f"fireact generate {st_first:.2f} s ({st_first / fa_first:.2f}x; target <= 0.6 s: "
              f"{'meets' if st_first <= 0.6 else 'MISSES'})")
        print(f"`fireact --help`: median {statistics.median(help_times):.2f} s (target <= 0.3 s)")
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
