"""The two roles every method is written against: a Drafter and a Verifier (the target model)."""

from __future__ import annotations

import abc
from collections.abc import Sequence

from cluster.reasoning.types import EquivalenceScore, StepContext, StepOutput, StepParams, StepScore, VerdictScore


class Drafter(abc.ABC):
    """Writes candidate steps with the cheap draft model."""

    @abc.abstractmethod
    async def draft_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        """Write the next step after each context, batched.

        Returns:
            One StepOutput per context, in order.

        Raises:
            BackendError: the draft model failed (callers may degrade to the target).
            BackendUnavailableError: the drafter cannot be reached or timed out.
        """

    async def draft_step(self, ctx: StepContext, params: StepParams) -> StepOutput:
        """Write the next step after one context."""
        return (await self.draft_steps([ctx], params))[0]


class Verifier(abc.ABC):
    """The target model: judges candidate steps and writes its own steps."""

    @abc.abstractmethod
    async def score_steps(self, items: Sequence[tuple[StepContext, str]], delimiter: str) -> list[StepScore]:
        """Score each candidate step (the step after its context) 0–9 in one forward pass each, batched.

        Raises:
            BackendError / BackendUnavailableError: the target failed or cannot be reached.
        """

    @abc.abstractmethod
    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        """Write the next step after each context with the target model, batched.

        Raises:
            BackendError / BackendUnavailableError: the target failed or cannot be reached.
        """

    async def equivalence_steps(self, items: Sequence[tuple[StepContext, str, str]],
                                delimiter: str) -> list[EquivalenceScore]:
        """Judge whether the two steps of each (context, step a, step b) say the same thing, one forward
        pass each, batched (the LLM-judge step verifier of lookahead).

        Raises:
            NotImplementedError: this verifier has no equivalence judge (the default).
            BackendError / BackendUnavailableError: the judge failed or cannot be reached.
        """
        raise NotImplementedError(f"{type(self).__name__} has no step-equivalence judge")

    async def verdict_solutions(self, items: Sequence[tuple[str, str]]) -> list[VerdictScore]:
        """Judge whether each (question, whole solution) ends with the correct answer, P(yes) from one forward
        pass each, batched (Best-of-N's `verdict` scorer).

        Raises:
            NotImplementedError: this verifier has no solution judge (the default).
            BackendError / BackendUnavailableError: the judge failed or cannot be reached.
        """
        raise NotImplementedError(f"{type(self).__name__} has no solution verdict judge")

    async def score_step(self, ctx: StepContext, candidate: str, delimiter: str) -> StepScore:
        """Score one candidate step."""
        return (await self.score_steps([(ctx, candidate)], delimiter))[0]

    async def target_step(self, ctx: StepContext, params: StepParams) -> StepOutput:
        """Write one target step."""
        return (await self.target_steps([ctx], params))[0]
