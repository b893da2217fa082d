"""What a person waits for in the app: real Chromium (Playwright) against `streamlit run serve.py` on a database of
100,000 trajectories (built once, as bench/ui_bench.py builds it, and kept with --db). Prints median and p95 per
measure, beside the target for it:

    first render of each page        at most 1.0 s     (address typed to the page's content drawn, app idle)
    filter change (Browse)           at most 0.5 s     (a filter clicked to the new count drawn)
    open trajectory (Browse)         at most 0.5 s     (a row chosen to its step cards drawn)
    review keystroke                 at most 0.3 s     (the `a` key to the next trajectory drawn)
    save (Trajectory)                at most 0.5 s     (Save clicked to "Saved revision" drawn)
    slider to preview (Mix)          at most 0.5 s     (a share changed to the new composition drawn)

    python bench/ui_latency.py --db /tmp/ui100k.duckdb            # builds the database the first time
    python bench/ui_latency.py --n 5000 --db /tmp/ui5k.duckdb --repeat 3

No other tool runs here to compare against, so each line prints its ratio to the target; the reads behind the
filter change and the opening of a trajectory are also timed in DuckDB directly (one warm connection, before the
app starts), the floor any page over this database stands on. The machine is shared: absolute times include
waiting for a core, so each line also prints the CPU time the app's process spent on the action (all its
threads; Chromium's own drawing not included).

Times are read in the page's own clock: from the start of loading the address (first renders), or from the key or
pointer press of the action, to the first animation frame drawn with the result there and the app idle (no script
running, no element still loading). Playwright's waits for an element poll at 0, 20, 50, 100 and 100 ms and then
every 500 ms, so timing an action by when Playwright notices it would add up to half a second at random.
"""

from __future__ import annotations

import argparse
import json
import re
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
CHROMIUM = os.environ.get("FIREACT_CHROMIUM", "/usr/bin/chromium")
ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
        "--disable-sync", "--no-first-run", "--disable-quic"]
TARGETS = {"first render": 1.0, "filter change": 0.5, "open trajectory": 0.5, "review keystroke": 0.3, "save": 0.5,
           "slider to preview": 0.5}
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]') && " \
       "!document.querySelector('[data-testid=\"stSkeleton\"]')"
# what each page draws last, so that its first render is over when it is there
READY = {"": '[data-testid="stMetric"]', "Browse": "[data-testid=fa-pick-table]",
         "Trajectory": '[data-testid="step-card"]', "Review": '[data-testid="step-card"]',
         "Compare": '[data-testid="aligned-step"]', "Generate": '[data-testid="stFormSubmitButton"]',
         "Mix": '[data-testid="mix-composition"]', "Train": '[data-testid="stTab"]', "Dashboard": '[data-testid="fa-pick-table"]'}


APP: dict[str, int] = {}  # the app's process id, once started
CPU: list[float] = []  # the app's CPU seconds of each timed action, in order


def app_cpu() -> float:
    """CPU seconds the app's process has used so far (every thread): the work an action costs it, apart from
    the time it waits for a core on a busy machine."""
    fields = Path(f"/proc/{APP['pid']}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    k = (len(ordered) - 1) * q
    lo, hi = int(k), min(int(k) + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (k - lo)


def report(name: str, target: float, seconds: list[float]) -> None:
    med, p95 = statistics.median(seconds), percentile(seconds, 0.95)
    cpu = f"   app CPU median {statistics.median(CPU[-len(seconds):]) * 1000:5.0f} ms" if APP and CPU else ""
    print(f"{name:36} median {med * 1000:7.0f} ms   p95 {p95 * 1000:7.0f} ms   target {target * 1000:5.0f} ms   "
          f"median/target {med / target:4.2f}{cpu}   (n={len(seconds)})", flush=True)


def build_database(db: str, n: int) -> None:
    from fireact_core.store import Store
    from ui_bench import build

    store = Store(db)
    have = store.count_trajectories()
    if have < n:
        start = time.perf_counter()
        build(store, have, n, 5000)
        print(f"built {n - have} trajectories in {time.perf_counter() - start:.0f} s", flush=True)
    store.refresh_search_index()


def peer_reads(db: str, repeat: int) -> None:
    """The SQL a filter change and an opened trajectory need, run in DuckDB directly on a warm connection."""
    import duckdb

    con = duckdb.connect(db, read_only=True)
    wrong = "NOT (CASE WHEN t.em IS NOT NULL THEN t.em >= 1 ELSE t.reward END)"
    page = ("SELECT t.id, t.source, t.question, t.gold, t.final_answer, t.em, t.f1, t.n_steps, t.status "
            f"FROM trajectories t WHERE {wrong} ORDER BY t.created_at, t.id LIMIT 50")
    filter_sql = [f"SELECT count(*) FROM trajectories t WHERE {wrong}", page]
    tid = con.execute(f"SELECT id FROM trajectories t WHERE {wrong} LIMIT 1 OFFSET 7").fetchone()[0]
    open_sql = ["SELECT * FROM trajectories WHERE id = ?", "SELECT * FROM steps WHERE trajectory_id = ? ORDER BY idx",
                "SELECT * FROM lints WHERE trajectory_id = ?"]

    def run(sqls: list[str], params: list) -> float:
        start = time.perf_counter()
        for sql in sqls:
            con.execute(sql, params if "?" in sql else []).fetchall()
        return time.perf_counter() - start

    for name, sqls, params in (("filter change", filter_sql, []), ("open trajectory", open_sql, [tid])):
        run(sqls, params)
        seconds = [run(sqls, params) for _ in range(repeat)]
        report(f"peer: {name} reads in DuckDB", TARGETS[name], seconds)
    con.close()


def start_app(db: str, log: Path) -> tuple[subprocess.Popen, str]:
    from tests.conftest import free_port, wait_for_port

    port = free_port()
    env = {**os.environ, "FIREACT_DB": db, "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(ROOT / "serve.py"), "--server.address", "127.0.0.1",
         "--server.port", str(port), "--server.headless", "true", "--server.fileWatcherType", "none"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    wait_for_port(port, proc)
    return proc, f"http://127.0.0.1:{port}"


def settle(page, selector: str | None = None, timeout: float = 60_000) -> None:
    if selector:
        page.locator(selector).first.wait_for(timeout=timeout)
    page.wait_for_function(IDLE, timeout=timeout)


# Every document records when the person last pressed a key or a pointer (the start of an action), in the page's
# own clock; `drawn` reads the page's clock at the first animation frame that shows the action's result. Playwright's
# own waits for an element retry at 0, 20, 50, 100, 100 ms and then every 500 ms, so what they report can be up
# to half a second later than what the browser has drawn; the page's clock has no such steps.
INPUT_CLOCK = """window.__faInput = null;
for (const type of ["pointerdown", "keydown"])
  addEventListener(type, () => { if (window.__faInput === null) window.__faInput = performance.now(); }, true);"""


def drawn(page, condition_js: str, timeout: float = 60_000) -> float:
    """The page's clock (ms since its document started) at the first animation frame at which `condition_js`
    holds and the app is idle: no script running, no element still loading."""
    return page.wait_for_function(
        f"() => (({condition_js})() && ({IDLE})()) ? performance.now() : false", polling="raf",
        timeout=timeout).json_value()


def present(selector: str) -> str:
    return f"() => !!document.querySelector({selector!r})"


def timed(page, action, condition_js: str) -> float:
    """Seconds from the key or pointer press that `action` makes to the first frame drawn with `condition_js`
    holding (and the app idle), both read in the page."""
    page.evaluate("window.__faInput = null")
    cpu = app_cpu() if APP else 0.0
    action()
    done = drawn(page, condition_js)
    pressed = page.evaluate("window.__faInput")
    if APP:
        CPU.append(app_cpu() - cpu)
    if pressed is None:
        raise RuntimeError("the action pressed no key and no pointer in the page")
    return (done - pressed) / 1000


def rendered(page, url: str, selector: str) -> float:
    """Seconds from the start of loading `url` (the address typed) to the first frame drawn with `selector` present
    and the app idle, in the page's clock."""
    cpu = app_cpu() if APP else 0.0
    page.goto(url)
    done = drawn(page, present(selector))
    if APP:
        CPU.append(app_cpu() - cpu)
    return done / 1000


def until_changed(page, action, element_js: str, before: str) -> float:
    """Seconds from `action` until the element found by `element_js` shows another text than `before`."""
    return timed(page, action, f"() => {{ const e = {element_js}; return !!e && e.textContent !== {json.dumps(before)}; }}")


def first_renders(page, base: str, ids: dict, repeat: int) -> None:
    paths = {"Home": "", "Browse": "Browse", "Trajectory": f"Trajectory?id={ids['traj']}", "Review": "Review",
             "Compare": "Compare?a=bench-run-0&b=bench-run-1", "Generate": "Generate", "Mix": "Mix", "Train": "Train",
             "Dashboard": "Dashboard"}
    for name, path in paths.items():
        ready = READY[path.split("?")[0]]
        page.goto(f"{base}/{path}")  # warm-up: caches and the server's first import of the page
        settle(page, ready)
        seconds = [rendered(page, f"{base}/{path}", ready) for _ in range(repeat)]
        report(f"first render: {name}", TARGETS["first render"], seconds)
    for name, path in paths.items():  # the same pages reached from the sidebar within one browser session
        if name == "Trajectory":  # it needs a trajectory id: reached from Browse, measured below
            continue
        start = "Browse" if name == "Home" else ""
        seconds = []
        for _ in range(repeat):
            page.goto(f"{base}/{start}")
            settle(page, READY[start])
            link = page.get_by_test_id("stSidebarNav").get_by_role("link", name=re.compile(f"{name}$"))
            seconds.append(timed(page, link.click, present(READY[path.split("?")[0]])))
        report(f"sidebar to page: {name}", TARGETS["first render"], seconds)


def count_text(page) -> str:
    return page.get_by_test_id("stMain").locator("h2, h3").filter(has_text="trajectories match").first.text_content()


def filter_change(page, base: str, repeat: int) -> list[float]:
    page.goto(f"{base}/Browse")
    settle(page, READY["Browse"])
    sidebar = page.get_by_test_id("stSidebar")
    seconds = []
    for i in range(repeat + 1):
        before = count_text(page)
        choice = ["wrong", "right", "any"][i % 3]
        t = until_changed(page, lambda: sidebar.get_by_text(choice, exact=True).first.click(),
                          "[...document.querySelectorAll('[data-testid=stMain] h2, [data-testid=stMain] h3')]"
                          ".find(h => h.textContent.includes('trajectories match'))", before)
        if i:
            seconds.append(t)
    return seconds


def open_trajectory(page, base: str, repeat: int) -> list[float]:
    seconds = []
    for i in range(repeat + 1):
        page.goto(f"{base}/Browse?em=wrong")
        settle(page, READY["Browse"])
        box = page.get_by_test_id("stSelectbox").filter(has_text="Open a trajectory of this page").locator("input")
        box.click()
        option = page.get_by_role("option").nth(i % 10)
        t = timed(page, option.click, "() => location.pathname.endsWith('/Trajectory') && "
                                      f"({present(READY['Trajectory'])})()")
        if i:
            seconds.append(t)
    return seconds


def header_text(page) -> str:
    return page.get_by_test_id("trajectory-header").locator(".fa-q").text_content()


def review_keystrokes(page, base: str, repeat: int) -> list[float]:
    page.goto(f"{base}/Review?source=bench-run-2")
    settle(page, READY["Review"])
    seconds = []
    for i in range(repeat + 1):
        before = header_text(page)
        page.get_by_test_id("stMain").locator("h1").first.click()  # focus on the page, not in a field
        t = until_changed(page, lambda: page.keyboard.press("a" if i % 2 else "x"),
                          "document.querySelector('[data-testid=trajectory-header] .fa-q')", before)
        if i:
            seconds.append(t)
    return seconds


def saves(page, base: str, ids: list[str], repeat: int) -> list[float]:
    seconds = []
    for i in range(repeat + 1):
        page.goto(f"{base}/Trajectory?id={ids[i]}")
        settle(page, READY["Trajectory"])
        page.get_by_test_id("stMain").get_by_role("button", name="step 1", exact=True).click()
        area = page.get_by_test_id("stMain").get_by_label("Thought")
        area.wait_for()
        area.fill(f"An edited thought, number {i}, at {time.time():.3f}.")
        area.press("Control+Enter")
        settle(page)
        save = page.get_by_test_id("stMain").get_by_role("button").filter(has_text=re.compile(r"Save.*Ctrl"))
        t = timed(page, save.click,
                  "() => document.querySelector('[data-testid=stMain]').textContent.includes('Saved revision')")
        if i:
            seconds.append(t)
    return seconds


def composition(page) -> str:
    return page.get_by_test_id("stMain").locator("p").filter(has_text="Composition").first.text_content()


def slider_preview(page, base: str, repeat: int) -> list[float]:
    page.goto(f"{base}/Mix")
    settle(page, READY["Mix"])
    slider = page.get_by_test_id("stMain").get_by_test_id("stSlider").first.get_by_role("slider")
    seconds = []
    for i in range(repeat + 1):
        before = composition(page)
        slider.focus()
        t = until_changed(page, lambda: slider.press("ArrowLeft" if i % 2 else "ArrowRight"),
                          "[...document.querySelectorAll('[data-testid=stMain] p')]"
                          ".find(p => p.textContent.startsWith('Composition'))", before)
        if i:
            seconds.append(t)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--n", type=int, default=100_000, help="trajectories in the database")
    parser.add_argument("--db", help="database file (kept and reused when it holds --n trajectories)")
    parser.add_argument("--repeat", type=int, default=7, help="measurements per measure (after one warm-up)")
    parser.add_argument("--no-renders", action="store_true", help="only the actions, not the pages' first renders")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="fireact-ui-latency-") as folder:
        db = args.db or os.path.join(folder, "bench.duckdb")
        build_database(db, args.n)
        run(db, Path(folder), args.repeat, renders=not args.no_renders)


def run(db: str, folder: Path, repeat: int, renders: bool = True) -> None:
    from playwright.sync_api import sync_playwright

    from fireact_core.filters import TrajectoryFilter
    from fireact_core.store import Store

    store = Store(db)
    ids = store.filter_ids(TrajectoryFilter(source=["bench-run-3"]), limit=repeat + 1)
    print(f"database {db}: {store.count_trajectories()} trajectories; Chromium at 1400 x 1000", flush=True)
    del store
    peer_reads(db, repeat)
    proc, base = start_app(db, folder / "streamlit.log")
    APP["pid"] = proc.pid
    try:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            context.add_init_script(INPUT_CLOCK)
            page = context.new_page()
            page.set_default_timeout(60_000)
            if renders:
                first_renders(page, base, {"traj": ids[0]}, repeat)
            report("filter change (Browse)", TARGETS["filter change"], filter_change(page, base, repeat))
            report("open trajectory (Browse)", TARGETS["open trajectory"], open_trajectory(page, base, repeat))
            report("review keystroke to next", TARGETS["review keystroke"], review_keystrokes(page, base, repeat))
            report("save (Trajectory)", TARGETS["save"], saves(page, base, ids, repeat))
            report("slider to preview (Mix)", TARGETS["slider to preview"], slider_preview(page, base, repeat))
            browser.close()
    finally:
        proc.terminate()
        proc.wait(timeout=30)


if __name__ == "__main__":
    main()
