"""The state of one reasoning run: the growing trace, its stats and the shared stopping rules."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from contextlib import contextmanager
from typing import TYPE_CHECKING

from cluster.reasoning.steps import extract_answer, has_answer, join_steps
from cluster.reasoning.types import (
    Author,
    FinishReason,
    ReasoningResult,
    ReasoningStats,
    StepContext,
    StepOutcome,
    StepOutput,
    StepParams,
    StepRecord,
    StopReason,
)

if TYPE_CHECKING:
    from collections.abc import Iterator

    from cluster.config.schema import ReasoningParams

logger = logging.getLogger(__name__)

StepCallback = Callable[[StepRecord], Awaitable[None]]
# Temperatures below this generate greedily (vLLM's _SAMPLING_EPS): logits divided by a subnormal
# temperature overflow to inf, and sampling from the NaN probabilities fails the request.
GREEDY_BELOW_TEMPERATURE = 1e-5


class ReasoningRun:
    """Accumulates steps and stats of one request and decides when it stops.

    Stopping rules (SpecReason's): a step that states an answer (\\boxed / "Answer:"), the model's end
    of sequence, the last two steps identical, the token budget used up, or the step cap reached.
    """

    def __init__(self, question: str, params: ReasoningParams, on_step: StepCallback | None = None) -> None:
        self.question = question
        self.params = params
        self.records: list[StepRecord] = []
        self.stats = ReasoningStats()
        self.arm: str | None = None  # the bandit arm of the round in progress (recorded on its steps)
        self._on_step = on_step
        self._tokens_used = 0
        self._t0 = time.perf_counter()

    @property
    def context(self) -> StepContext:
        return StepContext(self.question, tuple(r.text for r in self.records))

    @property
    def degraded(self) -> bool:
        """The drafter failed earlier in the run: the target writes the rest."""
        return self.stats.degraded_reason is not None

    @property
    def target_writes_next(self) -> bool:
        """The target writes the next step without a draft: one of the first `first_n_target_steps`, or degraded."""
        return len(self.records) < self.params.first_n_target_steps or self.degraded

    def degrade(self, error: Exception) -> None:
        """The drafter failed: the rest of the run is target-only (`stats.degraded_reason`, and every target step
        from now on counts in `stats.degraded_steps`)."""
        if not self.degraded:
            logger.warning("drafter failed (%s); continuing target-only", error)
            self.stats.degraded_reason = f"drafter failed: {error}"

    def step_params(self) -> StepParams:
        """Generation settings of the next step: the step cap, clipped to the remaining budget; greedy below
        GREEDY_BELOW_TEMPERATURE."""
        p = self.params
        remaining = max(1, p.max_total_tokens - self._tokens_used)
        seed = None if p.seed is None else p.seed + len(self.records)
        temperature = p.temperature if p.temperature >= GREEDY_BELOW_TEMPERATURE else 0.0
        return StepParams(min(p.max_step_tokens, remaining), temperature, p.top_p, seed, p.step_delimiter,
                          p.token_speculation)

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        """Add the wall time of the block to `stats.<phase>_time_s` (draft, judge or target)."""
        t0 = time.perf_counter()
        try:
            yield
        finally:
            attr = f"{phase}_time_s"
            setattr(self.stats, attr, getattr(self.stats, attr) + time.perf_counter() - t0)

    async def add(self, output: StepOutput, author: Author, outcome: StepOutcome, *,
                  score: float | None = None, draft_text: str | None = None) -> StopReason | None:
        """Append a step and report it; return why the run stops now, or None to go on."""
        record = StepRecord(len(self.records), output.text, author, outcome, score, draft_text, output.num_tokens,
                            self.arm, output.latency_s)
        self.records.append(record)
        self._tokens_used += output.num_tokens
        self.stats.spec_rounds += output.spec_rounds
        self.stats.spec_draft_tokens += output.spec_draft_tokens
        self.stats.spec_accepted_tokens += output.spec_accepted_tokens
        if author is Author.TARGET:
            self.stats.target_steps += 1
            self.stats.target_tokens += output.num_tokens
            if outcome is StepOutcome.TARGET and self.degraded:
                self.stats.degraded_steps += 1
        else:
            self.stats.draft_tokens += output.num_tokens
        if self._on_step is not None:
            await self._on_step(record)
        return self._stop_reason(output)

    def _stop_reason(self, output: StepOutput) -> StopReason | None:
        texts = [r.text for r in self.records]
        if has_answer(output.text):
            return StopReason.ANSWER
        if output.finish_reason is FinishReason.EOS:
            return StopReason.EOS
        if len(texts) >= 2 and texts[-1].strip() == texts[-2].strip():
            return StopReason.REPETITION
        if self._tokens_used >= self.params.max_total_tokens:
            return StopReason.BUDGET
        if len(texts) >= self.params.max_steps:
            return StopReason.MAX_STEPS
        return None

    def finish(self, method: str, reason: StopReason) -> ReasoningResult:
        """The result of the run."""
        self.stats.wall_time_s = time.perf_counter() - self._t0
        text = join_steps([r.text for r in self.records], self.params.step_delimiter)
        return ReasoningResult(method, extract_answer(text), text, tuple(self.records), reason, self.stats)
