"""Best-of-N with OptScale stopping against scripted roles: candidate i's draft answers \\boxed{i}."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cluster.config.schema import ReasoningParams
from cluster.policies.truncnorm import ScorePrior
from cluster.reasoning.methods import get_method
from cluster.reasoning.methods.best_of_n import choose
from cluster.reasoning.types import Candidate
from tests.fakes import FnDrafter, FnVerifier, step

EASY, HARD = 9.0, 0.0  # judge scores: every candidate reaches s_target / none does


def params(**bon: Any) -> ReasoningParams:
    return ReasoningParams(method="best_of_n", temperature=0.7, max_steps=2,
                           best_of_n={"method": "draft", "peek": 3, "n_max": 8, **bon})


def roles(score=lambda ctx, cand: EASY) -> tuple[FnDrafter, FnVerifier]:
    return FnDrafter(lambda ctx, k: step(f"\\boxed{{{k}}}")), FnVerifier(lambda ctx: step("t"), score=score)


def run(p: ReasoningParams, score=lambda ctx, cand: EASY, **kw: Any):
    drafter, verifier = roles(score)
    return asyncio.run(get_method("best_of_n")("Q?", drafter, verifier, p, **kw)), verifier


def test_easy_scores_stop_at_the_peek():
    result, verifier = run(params())
    assert result.method == "best_of_n" and result.stats.samples == 3
    assert result.stats.judge_calls == 3 and len(verifier.score_calls) == 3


def test_hard_scores_sample_to_n_max():
    result, _ = run(params(), score=lambda ctx, cand: HARD)
    assert result.stats.samples == 8


def test_fixed_n_always_samples_n_max():
    result, _ = run(params(adaptive=False))
    assert result.stats.samples == 8


def test_the_best_scoring_candidate_wins():
    result, _ = run(params(peek=4, n_max=4), score=lambda ctx, cand: 9.0 if "{2}" in cand else 3.0)
    assert result.answer == "2"
    assert sorted((c.answer, c.score) for c in result.candidates) == [("0", 1 / 3), ("1", 1 / 3), ("2", 1.0),
                                                                      ("3", 1 / 3)]
    assert result.to_dict()["candidates"][0].keys() == {"answer", "score"}


@pytest.mark.parametrize(("select", "answer"), [("best", "9"), ("weighted_vote", "5")])
def test_select_picks_the_top_score_or_the_heaviest_answer(select, answer):
    drafter = FnDrafter(lambda ctx, k: step("\\boxed{9}" if k == 1 else "\\boxed{5}"))  # only candidate 1 says 9
    verifier = FnVerifier(lambda ctx: step("t"), score=lambda ctx, cand: 9.0 if "{9}" in cand else 6.0)
    p = params(peek=3, n_max=3, select=select)
    result = asyncio.run(get_method("best_of_n")("Q?", drafter, verifier, p))
    assert result.answer == answer  # 9 scores 9/9 alone; 5 sums 2 × 6/9
    assert sorted(c.answer for c in result.candidates) == ["5", "5", "9"]


def test_choose_breaks_ties_and_skips_candidates_without_an_answer():
    pool = [Candidate(None, 0.9), Candidate("7", 0.4), Candidate("8", 0.4), Candidate("7.0", 0.3)]
    assert choose(pool, "best") == 0
    assert choose(pool, "weighted_vote") == 1  # 7 and 7.0 are one answer: 0.7 beats 8's 0.4
    assert choose([Candidate("8", 0.5), Candidate("7", 0.5)], "weighted_vote") == 0  # equal sums: seen first
    assert choose([Candidate(None, 0.2), Candidate(None, 0.6)], "weighted_vote") == 1  # no answers: best score


def test_step_mean_scorer_needs_no_judge_call():
    result, verifier = run(params(scorer="step_mean", method="specreason"), score=lambda ctx, cand: 8.0)
    assert result.stats.samples >= 3 and result.stats.judge_calls == result.stats.steps_drafted
    assert all(len(batch) == 1 and batch[0][1].startswith("\\boxed") for batch in verifier.score_calls)


def test_prior_and_fit_hooks():
    fits = []
    run(params(), prior=ScorePrior(0.9, 0.1), on_fit=fits.append)
    assert len(fits) == 1 and fits[0].mu > 0.9


def test_temperature_zero_is_rejected():
    with pytest.raises(ValueError, match="temperature"):
        ReasoningParams(method="best_of_n")


def test_verdict_scorer_asks_the_target_about_each_whole_solution():
    result, verifier = run(params(scorer="verdict", peek=4, n_max=4),
                           score=lambda ctx, cand: 9.0 if "{1}" in cand else 4.5)
    assert result.answer == "1" and result.stats.judge_calls == 4 and not verifier.score_calls
    assert sorted(q for batch in verifier.verdict_calls for q, _ in batch) == ["Q?"] * 4
    assert sorted(c.score for c in result.candidates) == [0.5, 0.5, 0.5, 1.0]
