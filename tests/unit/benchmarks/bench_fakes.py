"""Test doubles of the benchmark: a scripted in-process engine, a scripted served client, hand-made records."""

from __future__ import annotations

import asyncio
from typing import Any

from benchmarks.records import ProblemRecord
from cluster.config.schema import AppArgs
from cluster.errors import InvalidRequestError
from cluster.reasoning.types import (
    Author,
    ReasoningResult,
    ReasoningStats,
    StepOutcome,
    StepRecord,
    StopReason,
)

ACCEPTED, REWRITTEN, TARGET, DRAFT = (StepOutcome.ACCEPTED, StepOutcome.REWRITTEN, StepOutcome.TARGET,
                                      StepOutcome.DRAFT)


def trace(outcomes: list[StepOutcome], tokens: int = 10) -> tuple[StepRecord, ...]:
    """A step trace with the given outcomes, `tokens` tokens per step, judged steps scored 8 or 2."""
    steps = []
    for i, o in enumerate(outcomes):
        author = Author.DRAFT if o in (ACCEPTED, DRAFT) else Author.TARGET
        score = 8.0 if o is ACCEPTED else 2.0 if o is REWRITTEN else None
        steps.append(StepRecord(i, f"step {i}", author, o, score, "bad draft" if o is REWRITTEN else None, tokens))
    return tuple(steps)


def stats_for(steps: tuple[StepRecord, ...], *, draft_s: float = 1.0, judge_s: float = 0.5,
              target_s: float = 4.0) -> ReasoningStats:
    """Stats consistent with `steps`: per-step phase times draft_s / judge_s / target_s."""
    accepted = sum(s.outcome is ACCEPTED for s in steps)
    rewritten = sum(s.outcome is REWRITTEN for s in steps)
    target = sum(s.author is Author.TARGET for s in steps)
    drafted = accepted + rewritten
    draft_calls = drafted + sum(s.outcome is DRAFT for s in steps)
    return ReasoningStats(
        steps_drafted=drafted, steps_accepted=accepted, steps_rewritten=rewritten, target_steps=target,
        draft_tokens=sum(s.num_tokens for s in steps if s.author is Author.DRAFT) + 10 * rewritten,
        target_tokens=sum(s.num_tokens for s in steps if s.author is Author.TARGET), judge_calls=drafted,
        draft_time_s=draft_s * draft_calls, judge_time_s=judge_s * drafted, target_time_s=target_s * target,
        wall_time_s=draft_s * draft_calls + judge_s * drafted + target_s * target)


def record(run: str, pid: str, *, latency: float, correct: bool = True, outcomes: list[StepOutcome] | None = None,
           knobs: dict[str, Any] | None = None, error: str | None = None, seq: int = 0, **times: float
           ) -> ProblemRecord:
    """A hand-made record of `run` on problem `pid`."""
    steps = trace(outcomes or [])
    return ProblemRecord(
        run=run, knobs=knobs or {"method": run}, problem_id=pid, question=f"question {pid}", expected="7",
        predicted=None if error else ("7" if correct else "8"), correct=correct and error is None,
        latency_s=latency, seq=seq, started_s=0.0, error=error, method=None if error else run,
        stop_reason=None if error else "answer", text=None, stats=None if error else stats_for(steps, **times),
        steps=() if error else steps)


class FakeEngine:
    """A scripted Engine: target answers right, draft answers wrong, specreason accepts 2 of 3 drafts.

    Args:
        app: the app config (its reasoning defaults resolve the knobs, as the real Engine does).
        answers: question → correct answer.
        fail_questions: questions that raise InvalidRequestError.
    """

    instances: list[FakeEngine] = []

    def __init__(self, app: AppArgs, answers: dict[str, str], fail_questions: frozenset[str] = frozenset()) -> None:
        self.app = app
        self.answers = answers
        self.fail_questions = fail_questions
        self.calls: list[tuple[str, dict[str, Any]]] = []
        self.closed = False
        FakeEngine.instances.append(self)

    async def reason(self, question: str, overrides: dict[str, Any] | None = None) -> ReasoningResult:
        params = self.app.reasoning.with_overrides(overrides or {})
        self.calls.append((question, dict(overrides or {})))
        await asyncio.sleep(0)
        if question in self.fail_questions:
            raise InvalidRequestError("question too long", field="question")
        right = self.answers.get(question, "5")
        if params.method == "target":
            steps, answer = trace([TARGET, TARGET, TARGET]), right
        elif params.method == "draft":
            steps, answer = trace([DRAFT, DRAFT]), right + "1"
        else:
            steps, answer = trace([ACCEPTED, REWRITTEN, ACCEPTED]), right
        return ReasoningResult(params.method, answer, f"... \\boxed{{{answer}}}", steps, StopReason.ANSWER,
                               stats_for(steps))

    async def close(self) -> None:
        self.closed = True


class FakeClient:
    """A scripted served client: `reason(question, **knobs)` returns FakeEngine's result as a dict, with the
    arm a bandit would have chosen (`ARM`)."""

    ARM = "no-spec"

    def __init__(self, app: AppArgs, answers: dict[str, str]) -> None:
        self.engine = FakeEngine(app, answers)
        self.closed = False

    def reason(self, question: str, **knobs: Any) -> dict[str, Any]:
        return {**asyncio.run(self.engine.reason(question, knobs)).to_dict(), "arm": self.ARM}

    def stats(self) -> dict[str, Any]:
        return {"defaults": self.engine.app.reasoning.model_dump(mode="json"), "requests": len(self.engine.calls)}

    def health(self) -> dict[str, Any]:
        raise ConnectionError("no /healthz here")

    def close(self) -> None:
        self.closed = True
