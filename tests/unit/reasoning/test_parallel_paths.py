"""SSR's parallel paths: the mean step score, early-stop rules and majority-vote aggregation."""

from __future__ import annotations

import pytest

from cluster.reasoning.parallel_paths import (
    TARGET_STEP_SCORE,
    Aggregate,
    EarlyStop,
    PathOutcome,
    aggregate,
    mean_step_score,
    should_stop,
)
from cluster.reasoning.strategies import StrategyPool
from cluster.reasoning.types import Author, ReasoningResult, StepOutcome, StepRecord, StopReason

A, B, C, FALLBACK = (*StrategyPool().strategies[:3], StrategyPool().fallback)


def path(answer: str | None, score: float, strategy=A) -> PathOutcome:
    return PathOutcome(strategy, answer, score)


def record(outcome: StepOutcome, score: float | None) -> StepRecord:
    author = Author.DRAFT if outcome in (StepOutcome.ACCEPTED, StepOutcome.DRAFT) else Author.TARGET
    return StepRecord(0, "step", author, outcome, score)


def test_mean_step_score_counts_target_steps_as_nine_and_skips_unjudged_drafts():
    """Accepted 7 and 8, rewritten (judged 2, target wrote it → 9), target-only (→ 9), unjudged draft (skipped)."""
    records = [record(StepOutcome.ACCEPTED, 7.0), record(StepOutcome.ACCEPTED, 8.0),
               record(StepOutcome.REWRITTEN, 2.0), record(StepOutcome.TARGET, None), record(StepOutcome.DRAFT, None)]
    assert mean_step_score(records) == pytest.approx((7 + 8 + TARGET_STEP_SCORE + TARGET_STEP_SCORE) / 4)
    assert mean_step_score([]) == 0.0 and mean_step_score([record(StepOutcome.DRAFT, None)]) == 0.0


def test_path_outcome_from_a_reasoning_result():
    steps = (record(StepOutcome.ACCEPTED, 6.0), record(StepOutcome.REWRITTEN, 1.0))
    result = ReasoningResult("specreason", "12", "…", steps, StopReason.ANSWER)
    assert PathOutcome.from_result(B, result) == PathOutcome(B, "12", 7.5)


@pytest.mark.parametrize("rule, finished, stop", [
    (EarlyStop.OFF, [path("7", 9), path("7", 9)], False),
    (EarlyStop.FIRST_ANSWER, [], False),
    (EarlyStop.FIRST_ANSWER, [path(None, 9)], False),
    (EarlyStop.FIRST_ANSWER, [path(None, 9), path("7", 3)], True),
    (EarlyStop.TWO_AGREE, [path("7", 9), path("8", 9)], False),
    (EarlyStop.TWO_AGREE, [path("7", 9), path("8", 9), path("7.0", 2)], True),
    (EarlyStop.TWO_AGREE, [path(None, 9), path(None, 9)], False),
    (EarlyStop.SCORE, [path("7", 7.9), path(None, 9)], False),
    (EarlyStop.SCORE, [path("7", 7.9), path("9", 8.0)], True),
], ids=["off", "first-none-finished", "first-no-answer", "first-answer", "agree-differ", "agree-normalised",
        "agree-no-answers", "score-below", "score-reached"])
def test_early_stop_rules(rule, finished, stop):
    assert should_stop(rule, finished, stop_score=8.0) is stop


def test_majority_vote_wins_over_a_higher_scoring_minority():
    paths = [path("7", 6), path("9", 9), path("$7$", 7)]
    result = aggregate(paths)
    assert result.answer == "$7$" and result.path == 2  # the best-scoring path of the winning answer
    assert result.votes == {"7": 2, "9": 1}


def test_ties_go_to_the_higher_mean_step_score():
    """Two answers with two votes each: 9's paths average 8, 7's average 6.5."""
    paths = [path("7", 6), path("9", 7), path("7", 7), path("9", 9)]
    result = aggregate(paths)
    assert result.answer == "9" and result.path == 3


def test_all_different_answers_pick_the_best_scoring_path():
    result = aggregate([path("1", 5, A), path("2", 8, B), path("3", 7, C)])
    assert result.answer == "2" and result.path == 1


def test_paths_without_answers_do_not_vote():
    result = aggregate([path(None, 9), path("4", 2, FALLBACK)])
    assert result.answer == "4" and result.path == 1
    none = aggregate([path(None, 3), path(None, 6)])
    assert none.answer is None and none.path == 1 and none.votes == {}
    assert aggregate([]) == Aggregate(None, None)
