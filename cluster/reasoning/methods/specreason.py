"""SpecReason: the draft writes a step, the target scores it 0–9 and rewrites it below the threshold."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cluster.errors import BackendError
from cluster.reasoning.run import ReasoningRun, StepCallback
from cluster.reasoning.types import Author, ReasoningResult, StepOutcome, StopReason

if TYPE_CHECKING:
    from cluster.config.schema import ReasoningParams
    from cluster.reasoning.interfaces import Drafter, Verifier


async def specreason_round(run: ReasoningRun, drafter: Drafter, verifier: Verifier) -> StopReason | None:
    """One SpecReason step under `run.params`: the target's own step (first `first_n_target_steps`, or the run
    is degraded), else a draft step, scored by the target and kept at score ≥ `threshold`, else rewritten.

    A drafter failure degrades the run (the next round is the target's); returns why the run stops, or None.
    """
    params = run.params
    ctx, step_params = run.context, run.step_params()
    if run.target_writes_next:
        with run.timed("target"):
            out = await verifier.target_step(ctx, step_params)
        return await run.add(out, Author.TARGET, StepOutcome.TARGET)
    try:
        with run.timed("draft"):
            draft = await drafter.draft_step(ctx, step_params)
    except BackendError as e:
        run.degrade(e)
        return None
    run.stats.steps_drafted += 1
    with run.timed("judge"):
        score = await verifier.score_step(ctx, draft.text, params.step_delimiter)
    run.stats.judge_calls += 1
    value = score.value(params.score_method)
    if value >= params.threshold:
        run.stats.steps_accepted += 1
        return await run.add(draft, Author.DRAFT, StepOutcome.ACCEPTED, score=value)
    run.stats.steps_rewritten += 1
    run.stats.draft_tokens += draft.num_tokens  # the rejected draft still cost draft tokens
    with run.timed("target"):
        out = await verifier.target_step(ctx, step_params)
    return await run.add(out, Author.TARGET, StepOutcome.REWRITTEN, score=value, draft_text=draft.text)


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
    while (reason := await specreason_round(run, drafter, verifier)) is None:
        pass
    return run.finish("specreason", reason)
