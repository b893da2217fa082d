"""One episode: a question answered by a method (IO, CoT, ReAct, Reflexion) through a model and tools.

Output without a parsable action gets feedback as its observation and the model is asked again, a bounded
number of times in a row. A failure of the model endpoint after its retries ends the episode as "failed"
with the error; the steps so far are kept. Reflexion: after `reflect_after` actions without an answer, or a
wrong finish when the gold answer is known, the model writes a reflection that joins the trajectory as a
thought ("... let me do a reflection ..."), then goes on.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

from .models import Backend, Completion, ModelError
from .models.limits import CallLimits
from .models.pricing import cost_usd
from ..io.parsing import action_problem, fireact_split, parse_action, parse_model_turn, render_model_turn
from .prompts import STALLED_CUE, WRONG_CUE, Prompt, PromptSpec, build_prompt, fireact_prompt, fireact_start, prompt_messages
from ..records import Action, Message, Status, Step, StepFlags, Trajectory, stable_id
from .tasks import Question, Task
from .tasks.scoring import Score
from .tools import Toolbox

FIREACT_ROUNDS = 11  # generation.py's `while iteration < 11`
FIREACT_REASKS = 5  # its re-asks of a turn without "Action: " before "Thought: failed\nAction: finish[]"
FIREACT_FAILED_TURN = "Thought: failed\nAction: finish[]"
INT_REWARD = {"strategyqa", "mmlu"}  # tasks whose FireAct reward is 0/1 rather than False/True
FEEDBACK = ("Invalid action: {problem}. Reply with 'Thought: ...' on one line and 'Action: search[query]' or "
            "'Action: finish[answer]' on the next.")
SINGLE_TURN = {"io", "cot"}


@dataclass
class EpisodeContext:
    config: Any
    task: Task
    backend: Backend
    limits: CallLimits
    toolbox: Toolbox
    spec: PromptSpec
    prices: dict[str, tuple[float, float]]
    model_name: str


@dataclass
class Usage:
    calls: list[tuple[int, int, float]] = field(default_factory=list)
    retries: int = 0

    def add(self, c: Completion) -> None:
        self.calls.append((c.tokens_in, c.tokens_out, round(c.latency_s, 4)))


class Episode:
    """`prefix`: steps kept as they stand (a fork of a trajectory); the model goes on after them, within the
    same step budget (at least one more)."""

    def __init__(self, ctx: EpisodeContext, question: Question, prefix: list[Step] | None = None):
        self.ctx, self.q, self.cfg = ctx, question, ctx.config
        self.prefix = [s.model_copy(deep=True) for s in prefix or []]
        self.steps: list[Step] = []
        self.reflection_steps: set[int] = set()
        self.usage = Usage()
        self.final: str | None = None
        self.score: Score | None = None
        self.reasks = self.reflections = self.since_answer = self.actions = 0
        self.error: str | None = None

    async def run(self) -> Trajectory:
        start = time.perf_counter()
        status: Status = "unfinished"
        try:
            status = await self._loop()
        except asyncio.CancelledError:
            raise
        except ModelError as exc:
            status, self.error = "failed", str(exc)
        except Exception as exc:  # noqa: BLE001 - one question's failure never stops the run
            status, self.error = "failed", f"{type(exc).__name__}: {exc}"
        return self._trajectory(status, time.perf_counter() - start)

    async def _resume(self) -> None:
        """Take the kept steps as this episode's own; a last kept step whose tool has not answered yet (an
        edited action without an observation) is run first."""
        self.steps = self.prefix[:-1] if self._pending_tool() else list(self.prefix)
        self.actions = sum(1 for s in self.steps if s.action is not None and not s.flags.parse_error)
        if self._pending_tool():
            self.actions += 1
            await self._answer_kept(self.prefix[-1])

    async def _answer_kept(self, step: Step) -> None:
        await self._act(step)

    def _pending_tool(self) -> bool:
        last = self.prefix[-1] if self.prefix else None
        name = last.action.name if last is not None and last.action is not None and last.observation is None else None
        return bool(name and "finish" not in name.lower())

    def _budget(self, default: int) -> int:
        return max(self.cfg.max_steps or default, self.actions + 1) if self.prefix else self.cfg.max_steps or default

    async def _loop(self) -> Status:
        invalid = 0
        await self._resume()
        budget = self._budget(8)
        while self.actions < budget:
            if self._stalled():
                await self._reflect(STALLED_CUE.format(n=self.cfg.reflect_after))
            step = await self._ask()
            problem = self._problem(step)
            if problem:
                invalid += 1
                self.reasks += 1
                step.observation = FEEDBACK.format(problem=problem)
                self.steps.append(step)
                if invalid > self.cfg.max_reasks:
                    self.error = f"no parsable action after {invalid} tries in a row"
                    return "unfinished"
                continue
            invalid = 0
            self.actions += 1
            if "finish" in _action_name(step):
                if await self._finish(step):
                    return "finished"
                continue
            await self._act(step)
        if self.error is None:
            self.error = f"no answer within {budget} steps"
        return "unfinished"

    def _stalled(self) -> bool:
        return (self.cfg.method == "reflexion" and self.since_answer >= self.cfg.reflect_after
                and self.reflections < self.cfg.max_reflections)

    async def _call(self, reflect: bool = False) -> Completion:
        prompt = build_prompt(self.ctx.spec, self.q.question, self.steps, reflect=reflect)
        if self.cfg.stop is not None and not reflect:
            prompt.stop = list(self.cfg.stop)
        return await self._send(prompt)

    async def _send(self, prompt: Prompt) -> Completion:
        def on_retry(_: str) -> None:
            self.usage.retries += 1

        completion = await self.ctx.limits.call(
            lambda: self.ctx.backend.complete(prompt, self.cfg.temperature, self.cfg.max_tokens), on_retry)
        self.usage.add(completion)
        return completion

    async def _ask(self) -> Step:
        text = (await self._call()).text
        text = text.split("\nObservation:", 1)[0].strip("\n")
        if text.startswith("Observation:"):
            text = ""
        if not text.strip():
            return Step(raw=text, flags=StepFlags(parse_error="empty output"))
        step = Step.model_validate(parse_model_turn(text))
        if step.action is not None and self.cfg.action_reading != "fireact":
            step.action = Action.model_validate(parse_action(step.action.raw, self.cfg.action_reading))
        return step

    def _problem(self, step: Step) -> str | None:
        if step.action is None:
            return step.flags.parse_error or "no action"
        problem = action_problem(step.action.raw, step.action.name)
        if problem and not problem.startswith("unknown tool"):
            return problem
        if self.cfg.method in SINGLE_TURN and "finish" not in (step.action.name or "").lower():
            return f"the {self.cfg.method} method answers at once with finish[answer]"
        return None

    async def _finish(self, step: Step) -> bool:
        """Score the answer; True when the episode ends here."""
        answer = _action_arg(step)
        gold = self.q.answer
        score = self.ctx.task.score(answer, gold) if gold is not None else None
        retry = (self.cfg.method == "reflexion" and score is not None and not score.reward
                 and self.reflections < self.cfg.max_reflections)
        if retry:
            step.observation = "Answer is INCORRECT"
            self.steps.append(step)
            await self._reflect(WRONG_CUE.format(answer=answer))
            return False
        step.observation = f"Episode finished, reward = {score.reward}" if score is not None else "Episode finished"
        self.steps.append(step)
        self.final, self.score = answer, score
        return True

    async def _act(self, step: Step) -> None:
        history = [s.observation for s in self.steps if s.observation and s.action and s.action.name == "search"]
        if step.action is None:
            return
        obs = await self.ctx.toolbox.run(step.action, (self.q.qid, len(self.steps)), history)
        step.observation = obs.text
        if obs.perturbed:
            step.flags.perturbed, step.flags.original_observation = obs.perturbed, obs.original
        self.steps.append(step)
        self.since_answer += 1

    async def _reflect(self, cue: str) -> None:
        self.reflections += 1
        self.since_answer = 0
        text = (await self._call(reflect=True)).text
        lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.startswith(("Action:", "Observation:"))]
        body = " ".join(ln.removeprefix("Reflection:").removeprefix("Thought:").strip() for ln in lines)
        self.reflection_steps.add(len(self.steps))
        self.steps.append(Step(thought=f"{cue} {body}".strip()))

    def _merged_steps(self) -> list[Step]:
        """A reflection joins the next thought, as in FireAct's data: "<reflection> Thought: <next thought>"."""
        out: list[Step] = []
        pending: Step | None = None
        for i, step in enumerate(self.steps):
            if pending is not None and step.raw is None and step.thought is not None:
                step = step.model_copy(update={"thought": f"{pending.thought} Thought: {step.thought}"})
                pending = None
            elif pending is not None:
                out.append(pending)
                pending = None
            if i in self.reflection_steps:
                pending = step
                continue
            out.append(step)
        if pending is not None:
            out.append(pending)
        return out

    def _trajectory(self, status: Status, wall_s: float) -> Trajectory:
        cfg, q = self.cfg, self.q
        tin = sum(c[0] for c in self.usage.calls)
        tout = sum(c[1] for c in self.usage.calls)
        cost = cost_usd(self.ctx.prices, self.ctx.model_name, tin, tout) if cfg.backend == "openai" else 0.0
        score = self.score
        zero = 0.0 if q.answer is not None else None  # an unanswered question with a gold answer scores 0
        prompt = prompt_messages(self.ctx.spec) if cfg.store_prompt else None
        meta = {"temperature": cfg.temperature, "search": cfg.search, "perturb": cfg.perturb, "mode": cfg.mode,
                "backend": cfg.backend, "prompt_version": self.ctx.spec.version, "max_steps": cfg.max_steps,
                "prompt_layout": self.ctx.spec.layout, "prompt_file": self.ctx.spec.source,
                "calls": [list(c) for c in self.usage.calls], "retries": self.usage.retries, "reasks": self.reasks,
                "reflections": self.reflections, "model_latency_s": round(sum(c[2] for c in self.usage.calls), 4)}
        if cfg.mode == "finetuned":
            meta["finetuned_format"] = cfg.finetuned_format
        return Trajectory(
            id=stable_id(cfg.run, q.qid), source=cfg.run, task=q.task, split=q.split, qid=q.qid, question=q.question,
            gold=q.answer, method=cfg.method, model=self.ctx.model_name, steps=self._merged_steps(),
            final_answer=self.final if status == "finished" else None,
            reward=score.reward if score else (None if zero is None else False), em=score.em if score else zero,
            f1=score.f1 if score else zero, status=status,
            error=self.error if status != "finished" else None, tokens_in=tin, tokens_out=tout,
            latency_s=round(wall_s, 4), cost_usd=cost,
            prompt=[Message(**m) for m in prompt] if prompt else None, meta=meta,
        )


def split_turn(turn: str) -> tuple[str, str | None]:
    """(thought, action) of a model turn, as FireAct's generation.py splits it (action None: no "Action: ")."""
    text = turn.strip()
    if "\nAction: " in text:
        thought, action = text.split("\nAction: ")[:2]
        return thought, action
    if "Action: " in text:
        return "", turn[len("Action: "):]
    return turn.split("\n")[0], None


def prune_thought(thought: str) -> str:
    return thought[len("Thought:"):].strip() if thought.startswith("Thought:") else thought


class FireActEpisode(Episode):
    """FireAct's generation.py loop for one question, request for request: the prompt grows as FireAct grows it
    (text: "Thought: ...\nAction: ...\nObservation: ...\n" per step, then "Thought:"; chat: the model's turn
    verbatim and "Observation: ..."), a turn without "Action: " is asked again as is (at most 5 times, then
    "Thought: failed\nAction: finish[]"), an action without "[" is dropped and its round asked again, any
    action whose name holds "finish" ends the episode, at most 11 rounds. Only the retries of failed requests
    differ: bounded here, where FireAct waits 10 s and tries forever."""

    async def _loop(self) -> Status:
        base = fireact_start(self.ctx.spec, self.q.question)
        chat = isinstance(base, list)
        default_stop = None if chat else ["\nObservation:"]
        stop = default_stop if self.cfg.stop is None else list(self.cfg.stop)
        await self._resume()
        for step in self.steps:
            base = self._grown(base, step)
        rounds = self._budget(FIREACT_ROUNDS)
        for _ in range(rounds - self.actions):
            turn = (await self._send(fireact_prompt(base, stop))).text
            for attempt in range(FIREACT_REASKS):
                if "Action: " in turn:
                    break
                self.reasks += 1
                turn = (await self._send(fireact_prompt(base, None, thought=False))).text
                if attempt == FIREACT_REASKS - 1 and "Action: " not in turn:
                    turn = FIREACT_FAILED_TURN
            thought, action = split_turn(turn)
            if action is None:  # a turn ending in "Action:": FireAct asks for the action alone (text layout)
                if isinstance(base, list):
                    self.error = "a turn ends in 'Action:' with nothing after it (FireAct stops here in chat mode)"
                    return "unfinished"
                follow = base + f"Thought: {prune_thought(thought)}\nAction:"
                action = (await self._send(fireact_prompt(follow, stop, thought=False))).text.strip()
            self.actions += 1
            parsed = Action.model_validate(parse_action(action, self.cfg.action_reading))
            step = self._step(turn, prune_thought(thought), parsed, chat)
            split = fireact_split(action)
            if split is None:  # FireAct skips the action and sends the same prompt next round
                step.flags.train = False
                step.flags.parse_error = "no '[' in the action: FireAct drops it and asks again"
                self.steps.append(step)
                continue
            if "finish" in split[0].lower():
                self._end(step)
                return "finished"
            await self._tool(step, *split)
            base = self._grown(base, step, turn, action)
        self.error = f"no answer within {rounds} rounds"
        return "unfinished"

    @staticmethod
    def _grown(base: str | list[dict[str, str]], step: Step, turn: str | None = None,
               action: str | None = None) -> str | list[dict[str, str]]:
        """The prompt after one more step, as FireAct grows it (a kept step: its turn as stored; a step whose
        action FireAct would have dropped adds nothing)."""
        if action is None:
            if step.action is None or fireact_split(step.action.raw) is None:
                return base
            action = step.action.raw
        if isinstance(base, list):
            return base + [{"role": "assistant", "content": turn or step.raw or render_model_turn(step)},
                           {"role": "user", "content": f"Observation: {step.observation}"}]
        return base + f"Thought: {step.thought}\nAction: {action}\nObservation: {step.observation}\n"

    @staticmethod
    def _step(turn: str, thought: str, action: Any, chat: bool) -> Step:
        step = Step(thought=thought, action=action)
        if chat and render_model_turn(step) != turn:  # the chat turn is kept as the model wrote it
            step.raw = turn
            step.flags.parse_error = "turn does not read Thought: ... Action: ..."
        return step

    def _end(self, step: Step) -> None:
        answer = _action_arg(step)
        score = self.ctx.task.score(answer, self.q.answer) if self.q.answer is not None else None
        reward: bool | int = score.reward if score is not None else True  # FireAct without --evaluate: reward True
        if self.q.task in INT_REWARD:
            reward = int(reward)
        step.observation = f"Episode finished, reward = {reward}"
        self.steps.append(step)
        self.final, self.score = answer, score

    async def _answer_kept(self, step: Step) -> None:
        split = fireact_split(step.action.raw) if step.action is not None else None
        if split is None:
            self.steps.append(step)
            return
        await self._tool(step, *split)

    async def _tool(self, step: Step, name: str, arg: str) -> None:
        """FireAct's tool call: the type and argument exactly as split (" search" is no tool, as in FireAct)."""
        history = [s.observation for s in self.steps if s.observation and s.action and s.action.name == "search"]
        obs = await self.ctx.toolbox.fireact_run(name, arg, (self.q.qid, len(self.steps)), history)
        step.observation = obs.text
        if obs.perturbed:
            step.flags.perturbed, step.flags.original_observation = obs.perturbed, obs.original
        self.steps.append(step)


def make_episode(ctx: EpisodeContext, question: Question, prefix: list[Step] | None = None) -> Episode:
    """FireAct's loop for a prompt in FireAct's layout, the Studio's for its own prompts; `prefix`: the kept
    steps of a fork, which the model continues."""
    return (FireActEpisode if ctx.spec.layout == "fireact" else Episode)(ctx, question, prefix)


def _action_name(step: Step) -> str:
    """The lower-cased name of the step's action ("" when it has none)."""
    return (step.action.name or "").lower() if step.action is not None else ""


def _action_arg(step: Step) -> str:
    """The argument of the step's action ("" when it has none)."""
    return (step.action.arg or "") if step.action is not None else ""
