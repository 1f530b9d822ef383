"""SSR's parallel paths: per-path scores, early-stop rules and answer aggregation (ALGORITHMS.md §1)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from enum import StrEnum

from cluster.reasoning.steps import answer_groups, normalize_answer
from cluster.reasoning.strategies import Strategy
from cluster.reasoning.types import ReasoningResult, ReasoningStats, StepOutcome, StepRecord

TARGET_STEP_SCORE = 9.0  # a step the target wrote itself counts as a top judge score (SSR's SPM score)


class EarlyStop(StrEnum):
    """When the finished paths let every other path stop.

    OFF: run every path to its end.
    FIRST_ANSWER: one finished path has an answer (SSR-Fast-1).
    TWO_AGREE: two finished paths give the same (normalised) answer (SSR-Fast-2).
    SCORE: a finished path with an answer has mean step score ≥ stop_score.
    """

    OFF = "off"
    FIRST_ANSWER = "first_answer"
    TWO_AGREE = "two_agree"
    SCORE = "score"


def _step_score(record: StepRecord) -> float | None:
    if record.outcome is StepOutcome.ACCEPTED:
        return record.score
    if record.outcome in (StepOutcome.REWRITTEN, StepOutcome.TARGET):
        return TARGET_STEP_SCORE
    return None  # a draft step nobody judged


def mean_step_score(records: Sequence[StepRecord]) -> float:
    """SSR's path score: the mean over steps of the judge score if the draft was accepted and
    TARGET_STEP_SCORE if the target wrote the step; unjudged draft steps are left out (0 if none count)."""
    scores = [s for s in map(_step_score, records) if s is not None]
    return sum(scores) / len(scores) if scores else 0.0


@dataclass(frozen=True, slots=True)
class PathOutcome:
    """A finished path: its strategy, extracted answer (None if none) and mean step score (0–9)."""

    strategy: Strategy
    answer: str | None
    mean_score: float

    @classmethod
    def from_result(cls, strategy: Strategy, result: ReasoningResult) -> PathOutcome:
        return cls(strategy, result.answer, mean_step_score(result.steps))


def should_stop(rule: EarlyStop, finished: Sequence[PathOutcome], *, stop_score: float = 8.0) -> bool:
    """Whether the paths finished so far end the whole request under `rule` (see EarlyStop)."""
    keys = [normalize_answer(p.answer) for p in finished if p.answer is not None]
    if rule is EarlyStop.FIRST_ANSWER:
        return bool(keys)
    if rule is EarlyStop.TWO_AGREE:
        return len(set(keys)) < len(keys)
    if rule is EarlyStop.SCORE:
        return any(p.mean_score >= stop_score for p in finished if p.answer is not None)
    return False


@dataclass(frozen=True, slots=True)
class Aggregate:
    """The request's answer from its paths.

    Attributes:
        answer: the winning answer as its best-scoring path wrote it (None if no path answered).
        path: index of that path in the input (the best-scoring path when none answered; None if no paths).
        votes: paths per normalised answer.
    """

    answer: str | None
    path: int | None
    votes: dict[str, int] = field(default_factory=dict)


def aggregate(paths: Sequence[PathOutcome]) -> Aggregate:
    """Majority vote over normalised answers; ties go to the answer whose paths have the higher mean
    step score, then to the earlier path.

    Example:
        answers 7 (score 6), 7 (score 7), 9 (score 9) → "7" (2 votes beat 1);
        answers 7 (score 6), 9 (score 8) → "9" (1–1 tie, 8 > 6).
    """
    if not paths:
        return Aggregate(None, None)
    groups = answer_groups([p.answer for p in paths])
    if not groups:
        return Aggregate(None, max(range(len(paths)), key=lambda i: (paths[i].mean_score, -i)))

    def rank(members: list[int]) -> tuple[int, float, int]:
        return len(members), sum(paths[i].mean_score for i in members) / len(members), -members[0]

    winner = max(groups.values(), key=rank)
    best = max(winner, key=lambda i: (paths[i].mean_score, -i))
    return Aggregate(paths[best].answer, best, {key: len(m) for key, m in groups.items()})


def combine_stats(parts: Sequence[ReasoningStats], wall_time_s: float) -> ReasoningStats:
    """Stats of a multi-path request: counters and phase times summed over `parts` (work done, not wall
    time), the first degraded reason, `samples` = number of parts, and the request's own wall time."""
    out = ReasoningStats(wall_time_s=wall_time_s, samples=len(parts))
    for f in fields(ReasoningStats):
        if f.name in ("wall_time_s", "samples", "degraded_reason"):
            continue
        setattr(out, f.name, sum(getattr(p, f.name) for p in parts))
    out.degraded_reason = next((p.degraded_reason for p in parts if p.degraded_reason), None)
    return out
