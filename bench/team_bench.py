"""Many annotators on one server: the app runs as in production (`streamlit run serve.py`, identity from a proxy's
X-Forwarded-User header) and N clients speak its own websocket protocol, each a browser session of its own
annotator on the Review page, accepting, rejecting and skipping their assigned trajectories on one real database
for S seconds. Then it checks that every decision a session saw
succeed is stored exactly once, none is stored that no session made, and no two review events of a trajectory
share a sequence number; and prints the p50 / p95 time per action, beside the same actions in one session alone.

    python bench/team_bench.py                     # 20 sessions, 60 s, overlap 2, 500 real FireAct trajectories
    python bench/team_bench.py --sessions 5 --seconds 10 --alone 5
"""

from __future__ import annotations

import argparse
import asyncio
import html
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
RUN_FILE = ROOT.parent / "shared" / "fireact" / "trajs" / \
    "hotpotqa_dev_0_500_llama_models_lora_llama-2-7b-d_1000_0.7_2023-09-19-00-49-36.json"
HEADER = "X-Forwarded-User"
ACTIONS = {"accept": ("Accept (a)", "accepted", 0.55), "reject": ("Reject (x)", "rejected", 0.30),
           "skip": ("Skip (s)", None, 0.15)}  # button labels, with or without a leading emoji


def build(path: str, n_annotators: int, overlap: int) -> dict[str, str]:
    """The real FireAct run, an admin and the annotators, each trajectory assigned to `overlap` of them.
    Returns {question: trajectory id} (the run's questions are distinct)."""
    from fireact_core.filters import TrajectoryFilter
    from fireact_core.io.importer import import_files
    from fireact_core.store import Store
    from fireact_core.curation.team import add_user
    from fireact_core.curation.team.assign import assign

    store = Store(path)
    import_files(store, [RUN_FILE], by="lead")
    add_user(store, "lead", "lead", "admin")
    names = annotators(n_annotators)
    for name in names:
        add_user(store, "lead", name, "annotator")
    ids = store.filter_ids(TrajectoryFilter())
    assign(store, "lead", ids, names, overlap)
    return {s.question: s.id for s in store.list_summaries(TrajectoryFilter(), limit=len(ids))}


def annotators(n: int) -> list[str]:
    return [f"annotator-{i:02d}" for i in range(n)]


class Session:
    """One browser session: the app's own websocket, the proxy's identity header, the Review page; it decides
    until its time is up. Each action is a script run the server does for this session alone."""

    def __init__(self, name: str, questions: dict[str, str], seconds: float, seed: int):
        self.who, self.questions, self.seconds = name, questions, seconds
        self.escaped = {html.escape(q, quote=quote): tid for q, tid in questions.items() for quote in (False, True)}
        self.rng = random.Random(seed)
        self.times: dict[str, list[float]] = defaultdict(list)
        self.decided: list[tuple[str, str, str]] = []  # (trajectory, author, status) the page showed as done
        self.refused: list[str] = []
        self.failure: str | None = None

    async def run(self, port: int) -> None:
        try:
            await self._work(port)
        except Exception as exc:  # noqa: BLE001 - reported in the summary
            self.failure = f"{type(exc).__name__}: {exc}"

    async def _work(self, port: int) -> None:
        from websockets.asyncio.client import connect

        async with connect(f"ws://127.0.0.1:{port}/_stcore/stream", subprotocols=["streamlit"], max_size=None,
                           additional_headers={HEADER: self.who}, origin=f"http://127.0.0.1:{port}") as ws:
            start = time.perf_counter()
            page = await script_run(ws)
            self.times["open"].append(time.perf_counter() - start)
            deadline = time.perf_counter() + self.seconds
            kinds, weights = list(ACTIONS), [a[2] for a in ACTIONS.values()]
            while time.perf_counter() < deadline:
                shown = self.shown(page)
                if shown is None:
                    return
                kind = self.rng.choices(kinds, weights)[0]
                label, status, _ = ACTIONS[kind]
                button = next(i for k, b, i in page if k == "button" and (b == label or b.endswith(" " + label)))
                start = time.perf_counter()
                page = await script_run(ws, button)
                self.times[kind].append(time.perf_counter() - start)
                errors = [b for k, b, _ in page if k in ("error", "exception")]
                if any(k == "exception" for k, _, _ in page):
                    raise RuntimeError(errors[0])
                if errors:
                    self.refused.append(errors[0])
                elif status:
                    self.decided.append((shown, self.who, status))


    def shown(self, page: list[tuple[str, str, str]]) -> str | None:
        """The trajectory the page shows: its question as a text element, or inside the header's HTML."""
        for kind, body, _ in page:
            if kind == "text" and body in self.questions:
                return self.questions[body]
            if kind == "html":
                found = next((tid for q, tid in self.escaped.items() if q in body), None)
                if found:
                    return found
        return None


async def script_run(ws, click: str | None = None) -> list[tuple[str, str, str]]:
    """Ask for a run of the Review page (clicking the button with id `click`); the page's elements as
    (kind, text, widget id), once the run has finished."""
    from streamlit.proto.Alert_pb2 import Alert
    from streamlit.proto.BackMsg_pb2 import BackMsg
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.proto.WidgetStates_pb2 import WidgetState

    msg = BackMsg()
    msg.rerun_script.page_name = "Review"
    if click:
        msg.rerun_script.widget_states.widgets.append(WidgetState(id=click, trigger_value=True))
    await ws.send(msg.SerializeToString())
    page = []
    while True:
        fwd = ForwardMsg()
        fwd.ParseFromString(await ws.recv())
        kind = fwd.WhichOneof("type")
        if kind == "script_finished":
            return page
        if kind != "delta" or fwd.delta.WhichOneof("type") != "new_element":
            continue
        el = fwd.delta.new_element
        what = el.WhichOneof("type")
        if what == "button":
            page.append(("button", el.button.label, el.button.id))
        elif what == "text":
            page.append(("text", el.text.body, ""))
        elif what == "html":
            page.append(("html", el.html.body, ""))
        elif what == "alert" and el.alert.format == Alert.ERROR:
            page.append(("error", el.alert.body, ""))
        elif what == "exception":
            page.append(("exception", f"{el.exception.type}: {el.exception.message}", ""))


def run_sessions(port: int, names: list[str], questions: dict[str, str], seconds: float, seed: int) -> list[Session]:
    """All sessions at once: each opens the page, then decides for `seconds`."""
    sessions = [Session(n, questions, seconds, seed + i) for i, n in enumerate(names)]

    async def together() -> None:
        await asyncio.gather(*(s.run(port) for s in sessions))

    asyncio.run(together())
    return sessions


@contextmanager
def server(path: str, log: Path) -> Iterator[int]:
    """`streamlit run serve.py` on a free 127.0.0.1 port, taking the user from the proxy header."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    env = {**os.environ, "FIREACT_DB": path, "FIREACT_AUTH": f"header:{HEADER}", "PYTHONPATH": str(ROOT)}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", str(ROOT / "serve.py"), "--server.address",
                                 "127.0.0.1", "--server.port", str(port), "--server.headless", "true",
                                 "--server.fileWatcherType", "none", "--browser.gatherUsageStats", "false"],
                                cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start: see {log}")
            time.sleep(0.2)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


def check(path: str, sessions: list[Session]) -> dict[str, int]:
    """Compare what the sessions saw succeed with what the database holds."""
    from fireact_core.store import Store

    store = Store(path)
    authors = [s.who for s in sessions]
    with store.session() as con:
        stored = con.execute("SELECT trajectory_id, author, status FROM annotations WHERE author = ANY(?)",
                             [authors]).fetchall()
        reused = con.execute("SELECT count(*) FROM (SELECT trajectory_id, seq FROM annotations "
                             "GROUP BY ALL HAVING count(*) > 1)").fetchone()[0]
        unassigned = con.execute("SELECT count(*) FROM annotations a ANTI JOIN assignments s ON s.trajectory_id = "
                                 "a.trajectory_id AND s.annotator = a.author WHERE a.author = ANY(?)",
                                 [authors]).fetchone()[0]
    want = Counter(d for s in sessions for d in s.decided)
    have = Counter(stored)
    return {"decisions made": sum(want.values()), "stored": sum(have.values()),
            "lost": sum((want - have).values()), "extra or duplicated": sum((have - want).values()),
            "sequence numbers used twice": reused, "decisions outside the annotator's assignment": unassigned}


def percentiles(values: list[float]) -> str:
    if not values:
        return "-"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return f"p50 {statistics.median(ordered) * 1000:7.0f} ms  p95 {p95 * 1000:7.0f} ms  (n={len(ordered)})"


def report(title: str, sessions: list[Session], seconds: float) -> None:
    print(f"\n{title}")
    times: dict[str, list[float]] = defaultdict(list)
    for s in sessions:
        for kind, values in s.times.items():
            times[kind].extend(values)
    for kind in ("open", *ACTIONS):
        print(f"  {kind:7} {percentiles(times[kind])}")
    done = sum(len(times[k]) for k in ACTIONS)
    print(f"  {done} actions in {seconds:.0f} s: {done / seconds:.1f} actions/s over all sessions")
    refused = [r for s in sessions for r in s.refused]
    failed = [f"{s.who}: {s.failure}" for s in sessions if s.failure]
    if refused:
        print(f"  refused with a message: {len(refused)} (first: {refused[0][:160]})")
    for f in failed:
        print(f"  session failed: {f}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--alone", type=float, default=20.0, help="seconds of the one-session baseline (0: none)")
    parser.add_argument("--overlap", type=int, default=2, help="annotators per trajectory")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="fireact-team-bench-"))
    names = annotators(args.sessions + 1)
    path = str(folder / "team.duckdb")
    questions = build(path, len(names), args.overlap)
    print(f"database {path}: {len(questions)} trajectories, {len(names)} annotators, overlap {args.overlap}")
    with server(path, folder / "streamlit.log") as port:
        warm = run_sessions(port, names[-1:], questions, 1, args.seed + 999)  # the first run loads the modules
        alone = run_sessions(port, names[-1:], questions, args.alone, args.seed + 1000) if args.alone else []
        if alone:
            report(f"1 session alone, {args.alone:.0f} s", alone, args.alone)
        sessions = run_sessions(port, names[:-1], questions, args.seconds, args.seed)
        report(f"{args.sessions} concurrent sessions, {args.seconds:.0f} s", sessions, args.seconds)
    sessions += alone + warm
    result = check(path, sessions)
    print("\nchecks: " + ", ".join(f"{k} {v}" for k, v in result.items()))
    ok = result["lost"] == result["extra or duplicated"] == result["sequence numbers used twice"] == 0 \
        and not result["decisions outside the annotator's assignment"] and not any(s.failure for s in sessions)
    print("OK: no decision lost or duplicated" if ok else "FAILED: see the checks above")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
