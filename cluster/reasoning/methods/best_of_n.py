"""Best-of-N with OptScale stopping: candidates from a step method, scored, sampled until N* (ALGORITHMS.md §5)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import TYPE_CHECKING

from cluster.policies.optscale import OptScaleSampler
from cluster.reasoning.methods.baseline import run_draft, run_target
from cluster.reasoning.methods.lookahead import run_lookahead
from cluster.reasoning.methods.specreason import run_specreason
from cluster.reasoning.parallel_paths import combine_stats, mean_step_score
from cluster.reasoning.run import StepCallback
from cluster.reasoning.steps import answer_groups
from cluster.reasoning.types import Candidate, ReasoningResult, StepContext

if TYPE_CHECKING:
    from cluster.config.schema import ReasoningParams, SelectName
    from cluster.policies.truncnorm import ScorePrior, TruncNormal
    from cluster.reasoning.interfaces import Drafter, Verifier

CANDIDATE_SEED_STRIDE = 1_000_003  # seed offset between candidates, so sampled candidates differ
STEP_METHODS = {"target": run_target, "draft": run_draft, "specreason": run_specreason, "lookahead": run_lookahead}


async def score_candidate(result: ReasoningResult, question: str, verifier: Verifier,
                          params: ReasoningParams) -> float:
    """The candidate's score in [0, 1] (`best_of_n.scorer`): the target's 0–9 judge on the whole solution (read
    per `score_method`) divided by 9; its P(yes) that the solution's final answer is correct (`verdict`); or the
    mean step score of its trace divided by 9 (`step_mean`). An empty solution scores 0."""
    if not result.text.strip():
        return 0.0
    scorer = params.best_of_n.scorer
    if scorer == "step_mean":
        return min(1.0, mean_step_score(result.steps) / 9.0)
    if scorer == "verdict":
        return (await verifier.verdict_solutions([(question, result.text)]))[0].correct
    score = await verifier.score_step(StepContext(question), result.text, params.step_delimiter)
    return min(1.0, max(0.0, score.value(params.score_method) / 9.0))


def choose(candidates: Sequence[Candidate], select: SelectName) -> int:
    """The index of the candidate whose trace a Best-of-N request returns (`best_of_n.select`).

    best: the highest score, the earliest on ties. weighted_vote: among the candidates of the answer whose
    scores sum highest (answers compared normalised; ties go to the answer seen first; candidates without an
    answer do not vote), the highest-scoring one; with no answer at all, as best.

    Example:
        answers 7 (0.5), 7 (0.5), 9 (0.75) → best: index 2 (the 9); weighted_vote: index 0 (7 sums 1.0 > 0.75).
    """
    def top(indices: Sequence[int]) -> int:
        return max(indices, key=lambda i: (candidates[i].score, -i))

    groups = answer_groups([c.answer for c in candidates]) if select == "weighted_vote" else {}
    if not groups:
        return top(range(len(candidates)))
    return top(max(groups.values(), key=lambda m: (sum(candidates[i].score for i in m), -m[0])))


async def run_best_of_n(question: str, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                        on_step: StepCallback | None = None, *, prior: ScorePrior | None = None,
                        on_fit: Callable[[TruncNormal], None] | None = None) -> ReasoningResult:
    """Sample candidates with `best_of_n.method`, `parallel` at a time, and return the chosen one (`choose`).

    Adaptive (OptScale): after `peek` scores, fit TN(μ, σ) (MAP under `prior`, else MLE) and stop once
    N* = ⌈ln α / ln F(s_target)⌉ ≤ candidates scored, capped by `n_max`; candidates still running then
    are cancelled. Fixed: exactly `n_max` candidates. Candidate i runs with seed `seed + i·stride`.
    The result is the chosen candidate's trace (its steps reach `on_step` once chosen) with stats summed
    over the scored candidates (`samples` = their number, judge calls included) and every scored candidate's
    answer and score in `candidates`; `on_fit` gets the MLE fit of all scores (the controller's online prior
    learns from it).
    """
    bon = params.best_of_n
    method = STEP_METHODS[bon.method]
    sampler: OptScaleSampler[ReasoningResult] = OptScaleSampler(
        s_target=bon.s_target, alpha=bon.alpha, n_max=bon.n_max, peek=bon.peek, prior=prior)
    t0 = time.perf_counter()

    async def candidate(i: int) -> tuple[ReasoningResult, float]:
        seed = None if params.seed is None else params.seed + i * CANDIDATE_SEED_STRIDE
        result = await method(question, drafter, verifier, params.with_overrides({"method": bon.method, "seed": seed}))
        return result, await score_candidate(result, question, verifier, params)

    pending: set[asyncio.Task[tuple[ReasoningResult, float]]] = set()
    launched, judged = 0, 0
    try:
        while True:
            wanted = sampler.decision.n_target if bon.adaptive else bon.n_max
            while launched < wanted and len(pending) < (bon.parallel or bon.peek):
                pending.add(asyncio.ensure_future(candidate(launched)))
                launched += 1
            if not pending or (bon.adaptive and sampler.decision.stop):
                break
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                result, score = task.result()
                if bon.scorer != "step_mean" and result.text.strip():
                    judged += 1
                sampler.add(result, score)
    finally:
        for task in pending:
            task.cancel()
    scored = tuple(Candidate(r.answer, s) for r, s in zip(sampler.candidates, sampler.scores, strict=True))
    best = sampler.candidates[choose(scored, bon.select)]
    if on_fit is not None:
        on_fit(sampler.mle_fit())
    if on_step is not None:
        for record in best.steps:
            await on_step(record)
    stats = combine_stats([r.stats for r in sampler.candidates], time.perf_counter() - t0)
    stats.judge_calls += judged
    return replace(best, method="best_of_n", stats=stats, candidates=scored)
