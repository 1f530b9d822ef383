"""The step-verifier interface: does a drafted step say what the target's own step at that position says?"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass

from cluster.reasoning.types import StepContext


@dataclass(frozen=True, slots=True)
class StepPair:
    """A drafted step and the target's own step, both written after `ctx`.

    Attributes:
        ctx: the question and the steps before the pair.
        draft: the draft model's step.
        target: the target model's step at the same position.
    """

    ctx: StepContext
    draft: str
    target: str


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a drafted step may stand in for the target's step.

    Attributes:
        accepted: the draft is kept.
        score: what the decision thresholded (cosine, P(aligned), 0–9 score); None when the exact-match
            fast path decided without a model.
    """

    accepted: bool
    score: float | None = None


def normalize_step(text: str) -> str:
    """The comparison form of a step: lowercase, with every whitespace character removed."""
    return "".join(text.lower().split())


def same_step(a: str, b: str) -> bool:
    """Whether two steps are equal after `normalize_step`."""
    return normalize_step(a) == normalize_step(b)


class StepVerifier(abc.ABC):
    """Decides, for each (draft, target) pair, whether the draft is equivalent to the target's step.

    Pairs equal after normalisation are accepted without a model (the fast path: keeping the draft
    then changes nothing the target would have written); the rest go to `_judge` in one batch.
    """

    async def verify(self, pairs: Sequence[StepPair]) -> list[Verdict]:
        """One Verdict per pair, in order.

        Raises:
            BackendError / BackendUnavailableError: the model behind the verifier failed.
        """
        verdicts: list[Verdict | None] = [Verdict(True) if same_step(p.draft, p.target) else None for p in pairs]
        todo = [i for i, v in enumerate(verdicts) if v is None]
        if todo:
            for i, v in zip(todo, await self._judge([pairs[i] for i in todo]), strict=True):
                verdicts[i] = v
        return [v for v in verdicts if v is not None]

    @abc.abstractmethod
    async def _judge(self, pairs: Sequence[StepPair]) -> list[Verdict]:
        """Verdicts on pairs that differ after normalisation, batched."""


class ExactMatchVerifier(StepVerifier):
    """Accepts a draft only when it equals the target's step after normalisation (no model)."""

    async def _judge(self, pairs: Sequence[StepPair]) -> list[Verdict]:
        return [Verdict(False) for _ in pairs]
