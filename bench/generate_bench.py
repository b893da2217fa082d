"""Generation throughput: ReAct questions against a local OpenAI-compatible server whose latency is random
between 50 and 500 ms, with a SerpAPI stand-in answering in 50 ms (both in a separate process, so the numbers
are the engine's). Prints, for the engine's schedule and for FireAct's lock-step schedule (each round of
`concurrency` questions waits for its slowest): model calls per second against the ideal rate
(concurrency / mean latency). Target: the engine reaches >= 85% of the ideal. Also printed: a call's time as the client sees it (server
latency plus the HTTP stack's own time), how busy the concurrency slots were, and the rate of the bare openai
client at the same concurrency with no engine at all (the ceiling this machine allows). Then prompt tokens per
trajectory for few-shot ReAct versus FireAct's fine-tuned mode (no few-shot examples; tokens as the stand-in
counts them, one per 4 characters).

    .venv/bin/python bench/generate_bench.py                      # 500 questions, concurrency 32
    .venv/bin/python bench/generate_bench.py --n 100 --concurrency 16
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
TASKS = ROOT.parent / "shared" / "fireact" / "tasks"
LATENCY = (0.05, 0.5)
SERVE = """
import sys, time
sys.path.insert(0, {root!r})
from tests.fakes.openai_server import FakeOpenAI
from tests.fakes.serpapi_server import FakeSerpAPI

def policy(question, messages, reflect):
    turns = sum(1 for m in messages if m["role"] == "assistant")
    if turns < 2:
        return f"Thought: I need fact {{turns}}.\\nAction: search[{{question[:30]}} {{turns}}]"
    return "Thought: I have it.\\nAction: finish[unknown]"

llm = FakeOpenAI(policy=policy, latency={latency!r}, seed=1)
serp = FakeSerpAPI(delay_s=0.05)
print(llm.start(), serp.start(), flush=True)
while True:
    time.sleep(3600)
"""


def start_servers() -> tuple[subprocess.Popen, str, str]:
    proc = subprocess.Popen([sys.executable, "-c", SERVE.format(root=str(ROOT), latency=LATENCY)],
                            stdout=subprocess.PIPE, text=True)
    llm_url, serp_url = proc.stdout.readline().split()
    return proc, llm_url, serp_url


def timed_run(store, name: str, n: int, concurrency: int, **kw) -> tuple[float, int, list]:
    from fireact_core.generation.engine import RunConfig, execute, prepare_run

    cfg = RunConfig(run=name, task="hotpotqa", split="dev", tasks_dir=str(TASKS), end=n, method="react",
                    model="gpt-4o-mini", concurrency=concurrency, backoff_s=0.05, timeout_s=30, **kw)
    plan = prepare_run(store, cfg)
    start = time.perf_counter()
    execute(plan)
    wall = time.perf_counter() - start
    trajs = list(store.iter_trajectories(source=name))
    calls = sum(len(t.meta["calls"]) for t in trajs)
    return wall, calls, trajs


def client_ceiling(url: str, concurrency: int, n: int) -> float:
    """Model calls per second of the bare openai client at this concurrency, with no engine around it: the
    most this machine lets any engine reach against this server."""
    import asyncio

    import openai
    from openai.types.chat import ChatCompletion

    async def go() -> float:
        client = openai.AsyncOpenAI(base_url=url, api_key="bench", max_retries=0)
        body = {"model": "m", "messages": [{"role": "user", "content": "Question: " + "word " * 300}]}
        sem = asyncio.Semaphore(concurrency)

        async def one() -> None:
            async with sem:
                await client.post("/chat/completions", cast_to=ChatCompletion, body=body)

        start = time.perf_counter()
        await asyncio.gather(*(one() for _ in range(n)))
        return n / (time.perf_counter() - start)

    return asyncio.run(go())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--n", type=int, default=500, help="questions per run")
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--token-n", type=int, default=50, help="questions for the prompt-token comparison")
    args = parser.parse_args()
    from fireact_core.store import Store

    proc, llm_url, serp_url = start_servers()
    os.environ.update({"OPENAI_BASE_URL": llm_url, "OPENAI_API_KEY": "bench", "FIREACT_SERPAPI_URL": serp_url})
    try:
        store = Store(Path(tempfile.mkdtemp()) / "bench.duckdb")
        ideal = args.concurrency / (sum(LATENCY) / 2)
        print(f"{args.n} ReAct questions, concurrency {args.concurrency}, model latency {LATENCY[0]*1000:.0f}-"
              f"{LATENCY[1]*1000:.0f} ms, search 50 ms; ideal {ideal:.1f} model calls/s")
        timed_run(store, "warm-up", 8, args.concurrency)  # imports and first connections, outside the timings
        rows = []
        for label, schedule in (("engine (every question its own task)", "free"), ("FireAct lock-step", "lockstep")):
            wall, calls, trajs = timed_run(store, schedule, args.n, args.concurrency, schedule=schedule)
            rate = calls / wall
            busy = sum(c[2] for t in trajs for c in t.meta["calls"])  # seconds a call held a slot, seen by the client
            rows.append((label, wall, calls, rate, rate / ideal, sum(t.status == "failed" for t in trajs),
                         busy / calls, busy / (wall * args.concurrency)))
        print(f"{'schedule':38} {'wall s':>7} {'calls':>6} {'calls/s':>8} {'of ideal':>9} {'failed':>7} "
              f"{'call ms':>8} {'slots busy':>11}")
        for label, wall, calls, rate, frac, failed, call_s, busy in rows:
            print(f"{label:38} {wall:7.1f} {calls:6d} {rate:8.1f} {frac:9.1%} {failed:7d} {call_s * 1000:8.0f} "
                  f"{busy:11.1%}")
        print(f"(call ms: a model call as the client sees it, against {sum(LATENCY) / 2 * 1000:.0f} ms mean server "
              "latency; slots busy: the share of time the concurrency slots held a call)")
        ceiling = client_ceiling(llm_url, args.concurrency, min(args.n, 300))
        print(f"bare openai client, same server and concurrency, no engine: {ceiling:.1f} calls/s "
              f"({ceiling / ideal:.1%} of ideal); load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
        verdict = "meets" if rows[0][4] >= 0.85 else "MISSES"
        print(f"engine {verdict} the 85% target; {rows[0][3] / rows[1][3]:.2f}x the lock-step rate")
        tokens = {}
        for mode in ("fewshot", "finetuned"):
            _, _, trajs = timed_run(store, f"tokens-{mode}", args.token_n, args.concurrency, mode=mode)
            tokens[mode] = sum(t.tokens_in for t in trajs) / len(trajs)
        print(f"prompt tokens per trajectory ({args.token_n} questions): few-shot ReAct {tokens['fewshot']:.0f}, "
              f"fine-tuned {tokens['finetuned']:.0f} ({tokens['fewshot'] / tokens['finetuned']:.1f}x fewer)")
    finally:
        proc.kill()


if __name__ == "__main__":
    main()
