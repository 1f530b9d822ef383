"""SpecReason: the draft writes a step, the target scores it 0–9 and rewrites it below the threshold."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from cluster.errors import BackendError
from cluster.reasoning.run import ReasoningRun, StepCallback
from cluster.reasoning.types import Author, ReasoningResult, StepOutcome, StopReason

if TYPE_CHECKING:
    from cluster.config.schema import ReasoningParams
    from cluster.reasoning.interfaces import Drafter, Verifier

logger = logging.getLogger(__name__)


async def run_specreason(question: str, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                         on_step: StepCallback | None = None) -> ReasoningResult:
    """Step-level speculation with a target judge (SpecReason, ALGORITHMS.md §2.1).

    Each step: the first `first_n_target_steps` are written by the target; after that the draft
    writes a step, the target scores it in one forward pass and keeps it when
    score ≥ `threshold` (score = greedy digit or expected value, per `score_method`), else writes
    the step itself. A drafter failure degrades the rest of the request to target-only, recorded
    in `stats.degraded_steps` / `stats.degraded_reason`; target failures propagate.
    """
    run = ReasoningRun(question, params, on_step)
    drafter_ok = True
    while True:
        ctx, step_params = run.context, run.step_params()
        reason: StopReason | None
        if len(run.records) < params.first_n_target_steps or not drafter_ok:
            with run.timed("target"):
                out = await verifier.target_step(ctx, step_params)
            if not drafter_ok:
                run.stats.degraded_steps += 1
            reason = await run.add(out, Author.TARGET, StepOutcome.TARGET)
        else:
            try:
                with run.timed("draft"):
                    draft = await drafter.draft_step(ctx, step_params)
            except BackendError as e:
                logger.warning("drafter failed (%s); continuing target-only", e)
                drafter_ok = False
                run.stats.degraded_reason = f"drafter failed: {e}"
                continue
            run.stats.steps_drafted += 1
            with run.timed("judge"):
                score = await verifier.score_step(ctx, draft.text, params.step_delimiter)
            run.stats.judge_calls += 1
            value = score.value(params.score_method)
            if value >= params.threshold:
                run.stats.steps_accepted += 1
                reason = await run.add(draft, Author.DRAFT, StepOutcome.ACCEPTED, score=value)
            else:
                run.stats.steps_rewritten += 1
                run.stats.draft_tokens += draft.num_tokens  # the rejected draft still cost draft tokens
                with run.timed("target"):
                    out = await verifier.target_step(ctx, step_params)
                reason = await run.add(out, Author.TARGET, StepOutcome.REWRITTEN, score=value, draft_text=draft.text)
        if reason is not None:
            return run.finish("specreason", reason)
