"""SSR: the target picks k strategies, k paths run SpecReason in lockstep with batched calls (ALGORITHMS.md §1)."""

from __future__ import annotations

import time
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from cluster.errors import BackendError
from cluster.reasoning.parallel_paths import EarlyStop, PathOutcome, aggregate, combine_stats, should_stop
from cluster.reasoning.run import ReasoningRun, StepCallback
from cluster.reasoning.strategies import MATH_POOL, Strategy, StrategyPool
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
T = TypeVar("T")

SELECTION_EXTRA_TOKENS = 16  # the selection reply is "B, E, F" (2k tokens) after a short lead-in


@dataclass(slots=True)
class _Path:
    """One path: its strategy, its run and (once it stopped) its result."""

    strategy: Strategy
    run: ReasoningRun
    sample: int
    result: ReasoningResult | None = None

    @property
    def context(self) -> StepContext:
        return replace(self.run.context, strategy_hint=self.strategy.hint, sample=self.sample)


class _Rounds:
    """Advances every active path by one SpecReason step per round, each phase one batched call."""

    def __init__(self, drafter: Drafter, verifier: Verifier, params: ReasoningParams) -> None:
        self.drafter, self.verifier, self.params = drafter, verifier, params
        self.phase_s = {"draft": 0.0, "judge": 0.0, "target": 0.0}

    async def _timed(self, phase: str, call: Awaitable[T]) -> T:
        t0 = time.perf_counter()
        try:
            return await call
        finally:
            self.phase_s[phase] += time.perf_counter() - t0

    def _step_params(self, paths: list[_Path]) -> StepParams:
        """One StepParams for a batch: the first path's, with the largest step cap any path still has room for."""
        each = [p.run.step_params() for p in paths]
        return replace(each[0], max_tokens=max(sp.max_tokens for sp in each))

    async def advance(self, active: list[_Path]) -> None:
        p = self.params
        target_only = [x for x in active if x.run.target_writes_next]
        drafting = [x for x in active if x not in target_only]
        kept: list[tuple[_Path, StepOutput, float]] = []
        if drafting:
            try:
                drafts = await self._timed("draft", self.drafter.draft_steps([x.context for x in drafting],
                                                                             self._step_params(drafting)))
            except BackendError as e:  # one drafter serves every path: all of them go on target-only
                for x in active:
                    x.run.degrade(e)
                target_only, drafting = active, []
            if drafting:
                scores = await self._timed("judge", self.verifier.score_steps(
                    [(x.context, d.text) for x, d in zip(drafting, drafts, strict=True)], p.step_delimiter))
                kept = [(x, d, s.value(p.score_method)) for x, d, s in zip(drafting, drafts, scores, strict=True)]
        rewrite = target_only + [x for x, _, value in kept if value < p.threshold]
        outs = await self._timed("target", self.verifier.target_steps([x.context for x in rewrite],
                                                                      self._step_params(rewrite))) if rewrite else []
        written = dict(zip(map(id, rewrite), outs, strict=True))
        for x in target_only:
            await self._finish_step(x, await x.run.add(written[id(x)], Author.TARGET, StepOutcome.TARGET))
        for x, draft, value in kept:
            x.run.stats.steps_drafted += 1
            x.run.stats.judge_calls += 1
            if value >= p.threshold:
                x.run.stats.steps_accepted += 1
                reason = await x.run.add(draft, Author.DRAFT, StepOutcome.ACCEPTED, score=value)
            else:
                x.run.stats.steps_rewritten += 1
                x.run.stats.draft_tokens += draft.num_tokens
                reason = await x.run.add(written[id(x)], Author.TARGET, StepOutcome.REWRITTEN, score=value,
                                         draft_text=draft.text)
            await self._finish_step(x, reason)

    @staticmethod
    async def _finish_step(path: _Path, reason: StopReason | None) -> None:
        if reason is not None:
            path.result = path.run.finish("ssr", reason)


async def select_strategies(question: str, verifier: Verifier, pool: StrategyPool, k: int) -> tuple[
        list[Strategy], StepOutput]:
    """SSR's Selective Parallel Module: one short greedy target call names the k strategies (padded with the
    pool's fallback when the reply names fewer)."""
    reply = await verifier.target_step(pool.selection_context(question, k),
                                       StepParams(2 * k + SELECTION_EXTRA_TOKENS, delimiter="\n"))
    return pool.parse_selection(reply.text, k), reply


async def run_ssr(question: str, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                  on_step: StepCallback | None = None) -> ReasoningResult:
    """Selective parallel paths (SSR).

    The target picks `ssr.k` strategies (`ssr.guided`; unguided: no selection, no hints, the k paths differ by
    their sample seeds only); k paths (one strategy hint each) run SpecReason in lockstep rounds
    whose drafts, judge scores and target steps are one batched call each. After each round the finished
    paths may stop the rest (`ssr.early_stop`). The answer is the majority over the finished paths' answers,
    ties broken by mean step score (see `parallel_paths.aggregate`); the result is the winning path's trace
    (sent to `on_step` once chosen) with stats summed over all paths plus the selection call, and
    `samples` = k, `paths_stopped_early` = the paths the early stop ended unfinished. A failed drafter degrades
    every path to target-only; target failures propagate.
    """
    t0 = time.perf_counter()
    pool = StrategyPool(params.ssr.pool or MATH_POOL)
    if params.ssr.guided:
        strategies, selection = await select_strategies(question, verifier, pool, params.ssr.k)
    else:
        strategies, selection = [pool.fallback] * params.ssr.k, None
    selection_s = time.perf_counter() - t0
    paths = [_Path(s, ReasoningRun(question, params), sample=i) for i, s in enumerate(strategies)]
    rounds = _Rounds(drafter, verifier, params)
    rule = EarlyStop(params.ssr.early_stop)
    while active := [x for x in paths if x.result is None]:
        await rounds.advance(active)
        done = [PathOutcome.from_result(x.strategy, x.result) for x in paths if x.result is not None]
        if len(done) < len(paths) and should_stop(rule, done, stop_score=params.ssr.stop_score):
            break
    finished = [x for x in paths if x.result is not None]
    winner = finished[aggregate([PathOutcome.from_result(x.strategy, x.result) for x in finished]).path or 0]
    assert winner.result is not None
    if on_step is not None:
        for record in winner.result.steps:
            await on_step(record)
    stats = combine_stats([x.run.stats for x in paths], time.perf_counter() - t0)
    stats.draft_time_s, stats.judge_time_s = rounds.phase_s["draft"], rounds.phase_s["judge"]
    stats.target_time_s = rounds.phase_s["target"] + selection_s
    stats.target_tokens += selection.num_tokens if selection is not None else 0
    stats.paths_stopped_early = len(paths) - len(finished)
    return replace(winner.result, stats=stats)
