"""Shared fixtures: the real FireAct data, temporary databases, a Streamlit server and a real Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from fireact_core.store import Store
    from tests.fakes.openai_server import FakeOpenAI

ROOT = Path(__file__).resolve().parents[1]
SHARED = ROOT.parent / "shared" / "fireact"
FINETUNE = SHARED / "finetune"
RUN_FILE = SHARED / "trajs" / "hotpotqa_dev_0_500_llama_models_lora_llama-2-7b-d_1000_0.7_2023-09-19-00-49-36.json"
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = os.environ.get("FIREACT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture(scope="session")
def shared() -> Path:
    assert SHARED.is_dir(), f"FireAct reference data not found at {SHARED} (../shared/fireact beside the project)"
    return SHARED


@pytest.fixture
def store(tmp_path):
    from fireact_core.store import Store

    return Store(tmp_path / "test.duckdb")


@pytest.fixture
def seeded_store(tmp_path, shared):
    """A database holding gpt_hotpotqa, alpaca_hotpotqa_multimethod and the Llama-2 evaluation run."""
    from fireact_core.io.importer import import_files
    from fireact_core.store import Store

    db = Store(tmp_path / "seeded.duckdb")
    import_files(db, [FINETUNE / "gpt_hotpotqa.jsonl", FINETUNE / "alpaca_hotpotqa_multimethod.json", RUN_FILE],
                 eval_splits=[shared / "tasks" / "strategyqa" / "dev.json"])
    return db


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, proc: subprocess.Popen, timeout: float = 60.0) -> None:
    from tests.helpers import wait_until

    def listening() -> bool:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        with socket.socket() as s:
            return s.connect_ex(("127.0.0.1", port)) == 0

    wait_until(listening, timeout, f"something listening on 127.0.0.1:{port}", interval=0.2)


@pytest.fixture
def streamlit_app(tmp_path):
    """Start `streamlit run serve.py` on a free 127.0.0.1 port against a given database; yields a starter that
    takes more of Streamlit's options after the database (`--server.baseUrlPath`, ...)."""
    procs: list[subprocess.Popen] = []

    def start(db_path: Path, *options: str) -> str:
        port = free_port()
        env = {**os.environ, "FIREACT_DB": str(db_path), "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
        log = open(tmp_path / f"streamlit-{port}.log", "w")
        proc = subprocess.Popen(
            [sys.executable, "-m", "streamlit", "run", str(ROOT / "serve.py"), "--server.address", "127.0.0.1",
             "--server.port", str(port), "--server.headless", "true", "--browser.gatherUsageStats", "false",
             "--server.fileWatcherType", "none", *options],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
        )
        procs.append(proc)
        wait_for_port(port, proc)
        return f"http://127.0.0.1:{port}"

    yield start
    for proc in procs:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def browser():
    """Chromium for one test module: Playwright's sync API keeps an event loop running in this thread while
    it is open, so it is closed before other modules' tests (which run their own loops) start."""
    from playwright.sync_api import sync_playwright

    assert Path(CHROMIUM).exists(), f"Chromium not found at {CHROMIUM}: `make test` installs Debian's chromium"
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


# Follows, in the page, the messages of Streamlit's websocket as they are sent and received (protobuf, read field
# by field): `asked` counts the reruns the page requested (BackMsg rerun_script, field 11: a widget changed, a
# button pressed, a page of the app opened); a run's start (ForwardMsg new_session, 4) records how many had been
# asked by then, its end (script_finished, 6, other than 2 "stopped early for a rerun") keeps that number, and the
# session going idle (session_status_changed, 9, without script_is_running) makes it `answered`. Every request
# has been answered by a run that started after it once answered >= asked. Counted as the bytes pass, so a click's
# request is counted before the click returns.
WATCH_RUNS = """
(() => {
  const w = window.__fireactRuns = {asked: 0, started: 0, finished: 0, answered: 0};
  const varint = (b, i) => {
    let v = 0, m = 1;
    for (;;) { const c = b[i++]; v += (c & 127) * m; m *= 128; if (c < 128) return [v, i]; }
  };
  const fields = (b) => {
    const out = [];
    let i = 0;
    while (i < b.length) {
      let tag, v, n;
      [tag, i] = varint(b, i);
      const type = tag % 8;
      if (type === 0) { [v, i] = varint(b, i); out.push([Math.floor(tag / 8), v]); }
      else if (type === 2) { [n, i] = varint(b, i); out.push([Math.floor(tag / 8), b.subarray(i, i + n)]); i += n; }
      else if (type === 1) i += 8;
      else if (type === 5) i += 4;
      else break;
    }
    return out;
  };
  const bytes = (d) => d instanceof ArrayBuffer ? new Uint8Array(d)
    : ArrayBuffer.isView(d) ? new Uint8Array(d.buffer, d.byteOffset, d.byteLength) : null;
  const received = (event) => {
    const b = bytes(event.data);
    if (!b) return;
    for (const [num, value] of fields(b)) {
      if (num === 4) w.started = w.asked;
      else if (num === 6 && value !== 2) w.finished = w.started;
      else if (num === 9 && !fields(value).some(([n, v]) => n === 2 && v === 1)) w.answered = w.finished;
    }
  };
  const send = WebSocket.prototype.send;
  WebSocket.prototype.send = function (data) {
    const b = bytes(data);
    if (b && fields(b).some(([num]) => num === 11)) w.asked += 1;
    return send.call(this, data);
  };
  const Socket = window.WebSocket;
  window.WebSocket = class extends Socket {
    constructor(...args) { super(...args); this.addEventListener("message", received); }
  };
})();
"""


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.add_init_script(WATCH_RUNS)  # what settle() waits on
    pg = context.new_page()
    yield pg
    context.close()


def screenshot(page, name: str) -> Path:
    """Save a full-page screenshot under test-artifacts/ for people to look at."""
    ARTIFACTS.mkdir(exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


IDLE = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  return !!app && app.getAttribute("data-test-script-state") === "notRunning"
    && !document.querySelector('[data-testid="stStatusWidget"]');
}"""


def wait_for_app(page, timeout: float = 30000) -> None:
    """Wait until Streamlit is connected and no script run is going on (stApp's script state is notRunning)."""
    page.wait_for_selector('[data-testid="stApp"]', timeout=timeout)
    page.wait_for_function(IDLE, timeout=timeout)


def settle(page, timeout: float = 90000) -> None:
    """Wait until every script run the page has asked for so far (a widget changed, a button pressed) has been
    answered by a run that started after the request and finished, and the app is idle. Needs WATCH_RUNS in the
    page (the `page` fixture's context adds it)."""
    page.wait_for_function(
        f"""() => {{
          const w = window.__fireactRuns;
          if (!w) throw new Error("settle() needs WATCH_RUNS in the page (the page fixture adds it)");
          return w.answered >= w.asked && ({IDLE})();
        }}""", timeout=timeout)


@pytest.fixture
def one_torch_thread(monkeypatch):
    """Two shared cores: one thread per process keeps tiny-model steps fast."""
    import torch

    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def llm(monkeypatch):
    """Starts stand-in OpenAI servers (a given one, or FakeOpenAI(**kw)) with the client pointed at the last."""
    from tests.fakes.openai_server import FakeOpenAI

    servers: list[FakeOpenAI] = []

    def start(server: FakeOpenAI | None = None, **kw) -> FakeOpenAI:
        server = server or FakeOpenAI(**kw)
        monkeypatch.setenv("OPENAI_BASE_URL", server.start())
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-0123456789")
        servers.append(server)
        return server

    yield start
    for s in servers:
        s.stop()


@pytest.fixture
def api(monkeypatch):
    """The stand-in OpenAI fine-tuning API, with the client pointed at it."""
    from tests.fakes.openai_ft_server import FakeFineTuning

    server = FakeFineTuning()
    monkeypatch.setenv("OPENAI_BASE_URL", server.start())
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test-not-stored")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, shared) -> Path:
    """A tiny random Llama with a BPE tokenizer trained on FireAct text, built once per test session."""
    from tests.fakes.tiny_model import build_tiny_model

    return build_tiny_model(tmp_path_factory.mktemp("tiny-llama"), shared)


@pytest.fixture(scope="session")
def fireact_reference(shared) -> tuple[Path, Path]:
    """FireAct's own generator: (python of its venv, run_fireact.py). `make test` builds the venv (.venv-ref)."""
    python = Path(os.environ.get("FIREACT_REF_PYTHON", ROOT / ".venv-ref" / "bin" / "python"))
    runner = shared / "reference" / "run_fireact.py"
    assert python.exists(), f"FireAct's venv not found at {python}: `make install-test` builds it"
    assert runner.exists(), f"FireAct's generator not found at {runner}"
    return python, runner


@pytest.fixture(scope="session")
def two_runs_db(tmp_path_factory, shared) -> Path:
    """FireAct's Llama-2 run as run A and a second run built from it as run B (tests/helpers/runs.py), built once
    per session: modules copy it (`copy_database`) and add what they need."""
    from fireact_core.store import Store
    from tests.helpers.runs import build_two_runs

    path = tmp_path_factory.mktemp("two-runs") / "runs.duckdb"
    build_two_runs(Store(path))
    return path


def copy_database(built: Path, folder: Path) -> Path:
    """A copy of a database built once per module, for one test to change as it likes."""
    target = folder / built.name
    target.write_bytes(built.read_bytes())
    return target


def signed_in_pages_database(built: Path, folder: Path, monkeypatch) -> Store:
    """A copy of `built` that AppTest pages open, each session signing in as its own user (oidc mode)."""
    from fireact_core.store import Store

    target = copy_database(built, folder)
    monkeypatch.setenv("FIREACT_DB", str(target))
    monkeypatch.setenv("FIREACT_AUTH", "oidc")
    return Store(target)
