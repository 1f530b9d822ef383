"""OptScale: N* against the closed form, the sequential sampler on easy and hard problems, the online prior."""

from __future__ import annotations

import math

import pytest

from cluster.policies.optscale import OnlinePrior, OptScaleSampler, optimal_n
from cluster.policies.truncnorm import TruncNormal
from tests.unit.policies.test_truncnorm import sample

S_TARGET, ALPHA, N_MAX, PEEK = 0.9, 0.05, 16, 3
EASY = (0.92, 0.05)   # most samples already reach s_target
HARD = (0.4, 0.1)     # s_target is ~5σ above the mean: never worth stopping early


@pytest.mark.parametrize("mu, sigma, alpha", [(0.7, 0.15, 0.05), (0.85, 0.1, 0.01), (0.5, 0.3, 0.1),
                                              (0.6, 0.2, 0.02)], ids=["a", "b", "c", "d"])
def test_optimal_n_matches_the_closed_form_and_the_smallest_sufficient_n(mu, sigma, alpha):
    """N* = ⌈ln α / ln F(s_target)⌉ = min{N : F(s_target)^N ≤ α} (the reference code's search)."""
    dist = TruncNormal(mu, sigma)
    f = dist.cdf(S_TARGET)
    closed = math.ceil(math.log(alpha) / math.log(f))
    smallest = next(n for n in range(1, 10_000) if f**n <= alpha)
    assert optimal_n(dist, S_TARGET, alpha, n_min=1, n_max=10_000) == closed == smallest


def test_optimal_n_is_clipped_to_peek_and_n_max():
    assert optimal_n(TruncNormal(0.99, 0.01), S_TARGET, ALPHA, n_min=PEEK, n_max=N_MAX) == PEEK
    assert optimal_n(TruncNormal(0.2, 0.05), S_TARGET, ALPHA, n_min=PEEK, n_max=N_MAX) == N_MAX
    half = TruncNormal(0.5, 1e-3)  # F(0.5) = 0.5 exactly: 0.5^5 ≤ 1/32 exactly, so N* = 5 (not 6)
    assert optimal_n(half, 0.5, 1 / 32, n_min=1, n_max=N_MAX) == 5


def run_sampler(scores: list[float], **kw) -> OptScaleSampler[int]:
    """Feed scores in order until the sampler says stop (or they run out)."""
    sampler: OptScaleSampler[int] = OptScaleSampler(s_target=S_TARGET, alpha=ALPHA, n_max=N_MAX, peek=PEEK, **kw)
    for i, score in enumerate(scores):
        if sampler.add(i, score).stop:
            break
    return sampler


def test_sampler_stops_at_the_peek_on_an_easy_problem():
    sampler = run_sampler(sample(*EASY, N_MAX, seed=1))
    assert sampler.decision.stop and sampler.decision.drawn == PEEK


def test_sampler_samples_to_n_max_on_a_hard_problem():
    sampler = run_sampler(sample(*HARD, N_MAX, seed=2))
    assert sampler.decision.stop and sampler.decision.drawn == N_MAX


def test_sampler_asks_for_the_peek_first_then_refits_after_every_score():
    sampler: OptScaleSampler[str] = OptScaleSampler(s_target=S_TARGET, alpha=ALPHA, n_max=N_MAX, peek=PEEK)
    first = sampler.add("a", 0.5)
    assert not first.stop and first.remaining == PEEK - 1 and first.fit is None
    sampler.add("b", 0.8)
    third = sampler.add("c", 0.6)
    assert third.fit is not None and third.n_target >= PEEK and third.remaining == third.n_target - 3
    assert sampler.candidates == ("a", "b", "c") and sampler.scores == (0.5, 0.8, 0.6)


def test_map_prior_lets_an_optimistic_prior_stop_sooner():
    """Peek scores 0.6, 0.9, 0.75: MLE (μ≈0.76, σ≈0.13) wants N_MAX; MAP with a prior at μ0=0.9, σ0=0.25
    moves the fit up and wider, so fewer samples reach s_target with probability 1 − α."""
    scores = [0.6, 0.9, 0.75]
    mle = run_sampler(scores)
    optimistic = run_sampler(scores, prior=OnlinePrior(0.9, 0.25).prior)
    assert mle.decision.n_target == N_MAX
    assert PEEK < optimistic.decision.n_target < N_MAX


def test_online_prior_averages_past_fits_and_checkpoints():
    prior = OnlinePrior(0.8, 0.2, weight=1.0)
    prior.observe(TruncNormal(0.6, 0.1))
    assert prior.prior.mu == pytest.approx(0.7) and prior.prior.sigma == pytest.approx(0.15)
    restored = OnlinePrior()
    restored.load_state_dict(prior.state_dict())
    assert restored.prior == prior.prior


def test_bad_settings_fail_fast():
    with pytest.raises(ValueError):
        OptScaleSampler(s_target=0.9, alpha=0.05, n_max=4, peek=5)
    with pytest.raises(ValueError):
        OptScaleSampler(s_target=0.9, alpha=1.0, n_max=4, peek=2)
    with pytest.raises(ValueError):
        OptScaleSampler(s_target=0.9, alpha=0.05, n_max=4, peek=2).add("x", 9.0)
