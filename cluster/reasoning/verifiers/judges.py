"""Verifiers that ask a language model (the target, or a separate judge model) through the Verifier role."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from cluster.reasoning.verifiers.base import StepPair, StepVerifier, Verdict

if TYPE_CHECKING:
    from cluster.reasoning.interfaces import Verifier

DEFAULT_ALIGNED_THRESHOLD = 0.5  # P(aligned) over the two answers ≥ 0.5: the judge's more likely answer


class LLMJudgeVerifier(StepVerifier):
    """Accepts a draft when the judge model, asked whether the two steps say the same thing, puts
    P(aligned) ≥ `threshold` on its first answer token (one forward pass per pair, batched).

    Args:
        judge: the model that judges: the target's Verifier role, or any Verifier wrapping a judge model.
        threshold: the least P(aligned) / (P(aligned) + P(unaligned)) that accepts.
        delimiter: the step delimiter, for the judge prompt.
    """

    def __init__(self, judge: Verifier, threshold: float = DEFAULT_ALIGNED_THRESHOLD, delimiter: str = "\n\n") -> None:
        self.judge = judge
        self.threshold = threshold
        self.delimiter = delimiter

    async def _judge(self, pairs: Sequence[StepPair]) -> list[Verdict]:
        scores = await self.judge.equivalence_steps([(p.ctx, p.draft, p.target) for p in pairs], self.delimiter)
        return [Verdict(s.aligned >= self.threshold, s.aligned) for s in scores]


class ScoreVerifier(StepVerifier):
    """SpecReason's 0–9 judge: accepts a draft whose score ≥ `threshold`; the target's step is not consulted
    (beyond the exact-match fast path).

    Args:
        judge: the model that scores (the target's Verifier role).
        threshold: the least score that accepts.
        score_method: "greedy" digit or "expected" value over digits.
        delimiter: the step delimiter, for the judge prompt.
    """

    def __init__(self, judge: Verifier, threshold: float, score_method: str = "expected",
                 delimiter: str = "\n\n") -> None:
        self.judge = judge
        self.threshold = threshold
        self.score_method = score_method
        self.delimiter = delimiter

    async def _judge(self, pairs: Sequence[StepPair]) -> list[Verdict]:
        scores = await self.judge.score_steps([(p.ctx, p.draft) for p in pairs], self.delimiter)
        values = [s.value(self.score_method) for s in scores]
        return [Verdict(v >= self.threshold, v) for v in values]
