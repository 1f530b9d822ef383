"""Baselines: the target model alone and the draft model alone, step by step."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

from cluster.reasoning.run import ReasoningRun, StepCallback
from cluster.reasoning.types import (
    Author,
    ReasoningResult,
    StepContext,
    StepOutcome,
    StepOutput,
    StepParams,
    StopReason,
)

if TYPE_CHECKING:
    from cluster.config.schema import ReasoningParams
    from cluster.reasoning.interfaces import Drafter, Verifier

WriteStep = Callable[[StepContext, StepParams], Awaitable[StepOutput]]


async def single_model_round(run: ReasoningRun, write: WriteStep, author: Author) -> StopReason | None:
    """One step written by one model, unjudged; returns why the run stops, or None."""
    with run.timed(author.value):
        out = await write(run.context, run.step_params())
    return await run.add(out, author, StepOutcome.TARGET if author is Author.TARGET else StepOutcome.DRAFT)


async def _single_model(name: str, write: WriteStep, author: Author, question: str, params: ReasoningParams,
                        on_step: StepCallback | None) -> ReasoningResult:
    """One model writes every step; the stopping rules of ReasoningRun end the loop."""
    run = ReasoningRun(question, params, on_step)
    while (reason := await single_model_round(run, write, author)) is None:
        pass
    return run.finish(name, reason)


async def run_target(question: str, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                     on_step: StepCallback | None = None) -> ReasoningResult:
    """Target-only: the target writes every step (the quality and latency reference)."""
    return await _single_model("target", verifier.target_step, Author.TARGET, question, params, on_step)


async def run_draft(question: str, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                    on_step: StepCallback | None = None) -> ReasoningResult:
    """Draft-only: the draft writes every step, unjudged (the speed reference)."""
    return await _single_model("draft", drafter.draft_step, Author.DRAFT, question, params, on_step)
