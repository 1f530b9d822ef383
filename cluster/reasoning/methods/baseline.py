"""Baselines: the target model alone and the draft model alone, step by step."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cluster.reasoning.run import ReasoningRun, StepCallback
from cluster.reasoning.types import Author, ReasoningResult, StepOutcome

if TYPE_CHECKING:
    from cluster.config.schema import ReasoningParams
    from cluster.reasoning.interfaces import Drafter, Verifier


async def run_target(question: str, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                     on_step: StepCallback | None = None) -> ReasoningResult:
    """Target-only: the target writes every step (the quality and latency reference)."""
    run = ReasoningRun(question, params, on_step)
    while True:
        with run.timed("target"):
            out = await verifier.target_step(run.context, run.step_params())
        if (reason := await run.add(out, Author.TARGET, StepOutcome.TARGET)) is not None:
            return run.finish("target", reason)


async def run_draft(question: str, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                    on_step: StepCallback | None = None) -> ReasoningResult:
    """Draft-only: the draft writes every step, unjudged (the speed reference)."""
    run = ReasoningRun(question, params, on_step)
    while True:
        with run.timed("draft"):
            out = await drafter.draft_step(run.context, run.step_params())
        if (reason := await run.add(out, Author.DRAFT, StepOutcome.DRAFT)) is not None:
            return run.finish("draft", reason)
