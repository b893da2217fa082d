"""Databases the tests share: two real FireAct runs (A imported from FireAct's file, B built from it, with one
question holding HTML and a script), and generated runs of given scores."""

from __future__ import annotations

from fireact_core.curation import edits as cur
from fireact_core.io.formats import read_file
from fireact_core.io.importer import import_files, prepare
from fireact_core.io.lint import lint_trajectory
from fireact_core.records import Action, Source, Step, StepFlags, Trajectory, trajectory_data
from fireact_core.store import Store
from tests.conftest import RUN_FILE

RUN_A, RUN_B = "llama-run-a", "llama-run-b"
XSS = ("<script>window.__xss = 1; alert('xss')</script> <b>bold</b> ![x](http://127.0.0.1:9/pixel.png) "
       "[click](javascript:alert(1))")
XSS_QUESTION = "Which observation tries to run a script?"


def second_run(source: str = RUN_B) -> list[Trajectory]:
    """The real Llama-2 run again under another name: every 10th question left out, every 5th answer flipped
    (a wrong one set to the gold answer, a right one to a wrong answer), and one question only this run has,
    whose observation holds HTML, a script and a markdown image."""
    trajs = []
    for i, t in enumerate(prepare(read_file(RUN_FILE, source=source)).trajectories):
        if i % 10 == 9:
            continue
        if i % 5 == 0 and t.gold:
            t = cur.rescore(cur.set_final_answer(t, "no idea" if t.em else t.gold))
        trajs.append(t.model_copy(update={"model": "llama-b"}))
    xss = Trajectory(
        id="xss0000000000001", source=source, task="hotpotqa", question=XSS_QUESTION, gold="nothing", method="react",
        steps=[Step(thought="I should search.", action=Action(raw="search[script]", name="search", arg="script"),
                    observation=XSS),
               Step(thought="Done.", action=Action(raw="finish[script]", name="finish", arg="script"),
                    observation="Episode finished, reward = False")],
    )
    return trajs + [cur.rescore(xss)]


def build_two_runs(store: Store) -> None:
    """The real FireAct run imported as run A, a second run built from it as run B."""
    import_files(store, [RUN_FILE], source=RUN_A)
    trajs = second_run()
    store.save_trajectories(trajs, [x for t in trajs for x in lint_trajectory(trajectory_data(t))],
                            [Source(name=RUN_B, kind="run", model="llama-b")])


def make_run(store, name, em, *, status=None, model="gpt-4", method="react", task="hotpotqa", attempted=None,
             perturb=None, meta=None, tokens=True, questions=None):
    """A generated run: one trajectory per entry of `em` (question i asks `Question number i`)."""
    status = status or ["finished"] * len(em)
    trajs = []
    for i, (score, st) in enumerate(zip(em, status)):
        steps = [Step(thought="look it up", action=Action(raw=f"search[q{i}]", name="search", arg=f"q{i}"),
                      observation="None" if perturb else f"result {i}",
                      flags=StepFlags(perturbed=perturb if perturb and i % 2 == 0 else None)),
                 Step(thought="done", action=Action(raw="finish[x]", name="finish", arg="x"))]
        trajs.append(Trajectory(
            source=name, task=task, split="dev", qid=str(i),
            question=(questions or [f"Question number {k}?" for k in range(len(em))])[i], gold="x", method=method,
            model=model, steps=steps if st != "failed" else [], final_answer="x" if st == "finished" else None,
            em=score, f1=None if score is None else min(1.0, score + 0.25), status=st,
            error="HTTP 500" if st == "failed" else None,
            tokens_in=1000 if tokens else None, tokens_out=100 if tokens else None,
            latency_s=2.0 if tokens else None, cost_usd=0.01 if tokens else None,
        ))
    store.save_trajectories(trajs)
    store.save_source(Source(name=name, kind="run", task=task, split="dev", model=model, method=method,
                             attempted=attempted if attempted is not None else len(em), meta=meta or {}))
    return trajs
