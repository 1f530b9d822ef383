"""Scripted Drafter / Verifier doubles: deterministic, implement the full ABCs, record their calls."""

from __future__ import annotations

from collections.abc import Sequence

from cluster.errors import BackendError
from cluster.reasoning.interfaces import Drafter, Verifier
from cluster.reasoning.types import FinishReason, StepContext, StepOutput, StepParams, StepScore


def step(text: str, tokens: int | None = None, finish: FinishReason = FinishReason.STOP) -> StepOutput:
    """A StepOutput whose token count defaults to its word count."""
    return StepOutput(text, tokens if tokens is not None else len(text.split()), finish)


class ScriptedDrafter(Drafter):
    """Returns scripted steps in order; `fail_at` raises BackendError on that call index."""

    def __init__(self, steps: Sequence[StepOutput], fail_at: int | None = None) -> None:
        self.steps = list(steps)
        self.fail_at = fail_at
        self.calls: list[StepContext] = []

    async def draft_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        outs = []
        for ctx in ctxs:
            if self.fail_at is not None and len(self.calls) == self.fail_at:
                raise BackendError("scripted drafter failure")
            outs.append(self.steps[len(self.calls) % len(self.steps)])
            self.calls.append(ctx)
        return outs


class ScriptedVerifier(Verifier):
    """Scores candidates from a script (by call order) and writes scripted target steps."""

    def __init__(self, scores: Sequence[float], steps: Sequence[StepOutput]) -> None:
        self.scores = list(scores)
        self.steps = list(steps)
        self.score_calls: list[tuple[StepContext, str]] = []
        self.target_calls: list[StepContext] = []

    async def score_steps(self, items: Sequence[tuple[StepContext, str]], delimiter: str) -> list[StepScore]:
        outs = []
        for item in items:
            s = self.scores[len(self.score_calls) % len(self.scores)]
            outs.append(StepScore(greedy=int(s), expected=float(s), digit_mass=1.0))
            self.score_calls.append(item)
        return outs

    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        outs = []
        for ctx in ctxs:
            outs.append(self.steps[len(self.target_calls) % len(self.steps)])
            self.target_calls.append(ctx)
        return outs
