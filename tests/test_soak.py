"""Soak: two processes and four threads of this one work on one database at once for a bounded time, importing
(overlapping files, one process through the staged path), reviewing, editing and mixing. Afterwards no id is
stored twice, every write that was acknowledged is there, and the counts are those expected."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import threading
import time
from collections import Counter
from pathlib import Path

from fireact_core.errors import ConflictError
from fireact_core.io.importer import import_files
from fireact_core.mixing.versions import MixSpec, save_mix
from fireact_core.records import Annotation, now
from fireact_core.store import Store
from tests.conftest import FINETUNE, ROOT

ROWS_PER_FILE = 40
SECONDS = 15  # each worker stops starting new work after this

# One process: import its files (the ids of a file are the same whoever imports it), then review at random
# until the time is up; prints what was acknowledged.
WORKER = """
import json, random, sys, time
from fireact_core.io.importer import import_files
from fireact_core.records import Annotation, now
from fireact_core.store import Store

db, name, deadline, files = sys.argv[1], sys.argv[2], float(sys.argv[3]), sys.argv[4:]
store = Store(db, lock_timeout=120)
rng = random.Random(name)
acks = {"imported": [], "reviews": []}
for path in files:
    import_files(store, [path], parallel=False)
    acks["imported"].append(path)
ids = [t.id for t in store.iter_trajectories(source="gpt_hotpotqa")]
k = 0
while time.time() < deadline:
    label = f"{name}-{k}"
    saved = store.annotate(Annotation(trajectory_id=rng.choice(ids), seq=0, author=name, at=now(), labels=[label]))
    acks["reviews"].append([saved.trajectory_id, label])
    k += 1
print(json.dumps(acks))
"""


def _files(folder: Path) -> list[Path]:
    lines = (FINETUNE / "gpt_multitask.jsonl").read_text().splitlines()
    out = []
    for n in range(6):
        path = folder / f"part{n}.jsonl"
        path.write_text("\n".join(lines[n * ROWS_PER_FILE:(n + 1) * ROWS_PER_FILE]) + "\n")
        out.append(path)
    return out


def test_soak(tmp_path):
    db = tmp_path / "soak.duckdb"
    store = Store(db, lock_timeout=120)
    import_files(store, [FINETUNE / "gpt_hotpotqa.jsonl"], parallel=False)
    ids = [t.id for t in store.iter_trajectories()]
    parts = _files(tmp_path)
    deadline = time.time() + SECONDS
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [subprocess.Popen([sys.executable, "-c", WORKER, str(db), name, str(deadline), *map(str, files)],
                              cwd=ROOT, env=env_, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for name, files, env_ in (("procA", parts[:4], env),
                                       ("procB", parts[2:], {**env, "FIREACT_IMPORT_STAGE_MB": "0"}))]
    acks: dict[str, list] = {"reviews": [], "edits": [], "mixes": [], "imported": []}
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker(fn):
        def run():
            try:
                fn()
            except BaseException as exc:  # noqa: BLE001 - reported by the test
                errors.append(exc)
        return threading.Thread(target=run)

    def reviews():
        rng, k = random.Random(1), 0
        while time.time() < deadline:
            label = f"thread-{k}"
            saved = store.annotate(Annotation(trajectory_id=rng.choice(ids), seq=0, author="thread", at=now(),
                                              labels=[label]))
            with lock:
                acks["reviews"].append([saved.trajectory_id, label])
            k += 1

    def edits(seed: int):
        def run():
            rng, k = random.Random(seed), 0
            while time.time() < deadline:
                traj = store.get_trajectory(rng.choice(ids[:30]))  # few ids: edits clash
                reason = f"soak-{seed}-{k}"
                try:
                    saved = store.save_edit(traj.model_copy(update={"final_answer": reason}),
                                            base_revision=traj.revision, author=f"editor{seed}", reason=reason)
                except ConflictError:
                    continue
                finally:
                    k += 1
                with lock:
                    acks["edits"].append([saved.id, saved.revision, reason])
        return run

    def mixes():
        k = 0
        while time.time() < deadline:
            spec = MixSpec.parse({"sources": ["gpt_hotpotqa"], "size": 20, "val_fraction": 0.0, "seed": k})
            try:
                save_mix(store, spec, f"soak-{k}")
                with lock:
                    acks["mixes"].append(f"soak-{k}")
            except ConflictError:
                pass
            k += 1
            time.sleep(1)

    def imports():
        for path in (parts[1], parts[4]):
            import_files(store, [path], parallel=False)
            with lock:
                acks["imported"].append(str(path))

    threads = [worker(reviews), worker(edits(1)), worker(edits(2)), worker(mixes), worker(imports)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=SECONDS + 60)
    for proc in procs:
        out, err = proc.communicate(timeout=SECONDS + 60)
        assert proc.returncode == 0, err[-3000:]
        done = json.loads(out.strip().splitlines()[-1])
        acks["reviews"] += done["reviews"]
        acks["imported"] += done["imported"]
    assert not errors, errors

    with store.db.connect() as con:
        def one(sql: str):
            return con.execute(sql).fetchall()
        assert one("SELECT count(*), count(DISTINCT id) FROM trajectories") == [(500 + 6 * ROWS_PER_FILE,) * 2]
        assert one("SELECT count(*) FROM (SELECT trajectory_id, idx FROM steps GROUP BY ALL HAVING count(*) > 1)") == [(0,)]
        assert one("SELECT count(*) FROM steps s ANTI JOIN trajectories t ON t.id = s.trajectory_id") == [(0,)]
        assert one("SELECT count(*) FROM sources") == [(7,)]
        labels = {(r[0], label) for r in one("SELECT trajectory_id, labels FROM annotations") for label in json.loads(r[1])}
        seqs = one("SELECT trajectory_id, list(seq ORDER BY seq) FROM annotations GROUP BY ALL")
    assert sorted(map(str, parts)) == sorted(set(acks["imported"]))
    assert len(acks["reviews"]) >= 20 and all(tuple(r) in labels for r in acks["reviews"])
    assert all(s == list(range(1, len(s) + 1)) for _, s in seqs)
    per_id = Counter(tid for tid, _, _ in acks["edits"])
    assert acks["edits"] and all(store.get_trajectory(tid).revision == n for tid, n in per_id.items())
    for tid, rev, reason in acks["edits"]:
        assert [r.reason for r in store.list_revisions(tid) if r.rev == rev] == [reason]
    assert acks["mixes"] and all(store.get_dataset_version(name).size == 20 for name in acks["mixes"])
