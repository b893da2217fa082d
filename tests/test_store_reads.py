"""The app's reads: a database kept open between units of work (and let go when idle), and answers kept while
the database is unchanged, never once it changed (in this process or another)."""

from __future__ import annotations

import subprocess
import sys
import threading
from pathlib import Path

from fireact_core.filters import TrajectoryFilter
from fireact_core.records import Action, Source, Step, Trajectory
from fireact_core.store import Store

ROOT = Path(__file__).resolve().parents[1]
ADDED = "Trajectory(id='added', source='run-c', question='Added elsewhere?', gold='no', final_answer='no', em=1.0)"


def traj(i: int, source: str = "run-a") -> Trajectory:
    return Trajectory(id=f"t{i:04d}", source=source, task="hotpotqa", question=f"Question {i}?", gold="yes",
                      method="react", final_answer="yes" if i % 2 else "no", em=float(i % 2), f1=float(i % 2),
                      steps=[Step(thought=f"Thought {i}.", action=Action(raw="finish[yes]", name="finish", arg="yes"),
                                  observation="Episode finished")])


def seeded(path: Path, n: int = 6, linger: float = 0.0) -> Store:
    store = Store(path, linger=linger)
    store.save_trajectories([traj(i) for i in range(n)], sources=[Source(name="run-a", kind="run")])
    return store


def other_process(db: Path, code: str) -> str:
    """Run `code` (with `store`, a Store of `db` that waits up to a minute for the file) in another process."""
    script = f"import sys; sys.path.insert(0, {str(ROOT)!r})\nfrom fireact_core.store import Store\n" \
             f"from fireact_core.records import Trajectory\nstore = Store({str(db)!r}, lock_timeout=60)\n{code}"
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_lingering_database_is_reused_then_let_go_for_another_process(tmp_path):
    store = seeded(tmp_path / "a.duckdb", linger=0.2)
    store.count_trajectories()
    held = store.db._held
    assert held is not None
    store.stats()
    assert store.db._held is held  # the second read took a cursor of the same open database
    # another process waits for the file, gets it once this one is idle, and writes
    out = other_process(tmp_path / "a.duckdb", f"store.save_trajectories([{ADDED}])"
                        "\nprint(store.count_trajectories())")
    assert out == "7"
    assert store.count_trajectories() == 7  # read afresh: the other process's write is seen


def test_a_waiting_process_gets_the_file_long_before_the_linger_ends(tmp_path):
    db = tmp_path / "w.duckdb"
    store = seeded(db, linger=3600)
    assert store.count_trajectories() == 6
    assert store.db._held is not None
    # an hour of lingering, but the other process (a minute of patience) asks for its turn and gets it
    assert other_process(db, f"store.save_trajectories([{ADDED}])\nprint(store.count_trajectories())") == "7"
    assert store.count_trajectories() == 7


def test_release_lets_go_at_once(tmp_path):
    store = seeded(tmp_path / "r.duckdb", linger=600)
    store.count_trajectories()
    store.release()
    assert store.db._held is None
    assert other_process(tmp_path / "r.duckdb", "print(store.count_trajectories())") == "6"


def test_threads_share_the_lingering_database(tmp_path):
    store = seeded(tmp_path / "t.duckdb", n=20, linger=0.5)
    answers: list[int] = []
    errors: list[BaseException] = []

    def read() -> None:
        try:
            for _ in range(20):
                answers.append(store.count_filtered(TrajectoryFilter(em="right")))
                answers.append(len(store.list_summaries(TrajectoryFilter(), limit=5)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    workers = [threading.Thread(target=read) for _ in range(4)]
    for w in workers:
        w.start()
    store.save_trajectories([traj(200)])  # a write while they read
    for w in workers:
        w.join()
    assert not errors
    assert set(answers) <= {10, 11, 5}
    assert store.count_filtered(TrajectoryFilter(em="right")) == 10  # traj 200 is wrong (even)


def test_kept_answers_follow_writes_of_this_process(tmp_path):
    store = seeded(tmp_path / "w.duckdb", linger=30)
    f = TrajectoryFilter(em="right")
    assert store.count_filtered(f) == 3
    assert store.facet_values()["source"] == ["run-a"]
    store.save_trajectories([traj(7, source="run-b")], sources=[Source(name="run-b", kind="run")])
    assert store.count_filtered(f) == 4
    assert store.facet_values()["source"] == ["run-a", "run-b"]
    edited = store.get_trajectory("t0001").model_copy(update={"question": "An edited question?"})
    store.save_edit(edited, base_revision=0, author="ann")
    assert store.get_trajectory("t0001").question == "An edited question?"
    assert [s.question for s in store.list_summaries(f, limit=1)] == ["An edited question?"]
    store.release()


def test_kept_answers_follow_writes_of_another_process(tmp_path):
    db = tmp_path / "o.duckdb"
    store = seeded(db, linger=0.05)
    assert store.count_trajectories() == 6 and store.stats().trajectories == 6
    store.release()
    other_process(db, f"store.save_trajectories([{ADDED}])")
    assert store.stats().trajectories == 7
    assert store.count_filtered(TrajectoryFilter()) == 7


def test_a_kept_answer_is_the_callers_own_copy(tmp_path):
    store = seeded(tmp_path / "c.duckdb", linger=30)
    facets = store.facet_values()
    facets["source"].append("changed by the caller")
    first = store.get_trajectory("t0002")
    first.steps.clear()
    assert store.facet_values()["source"] == ["run-a"]
    assert len(store.get_trajectory("t0002").steps) == 1
    store.release()
