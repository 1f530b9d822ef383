"""The truncated-normal score model: CDF, MLE recovery of known parameters, MAP pull towards the prior."""

from __future__ import annotations

import math
import random

import pytest

from cluster.policies.truncnorm import SIGMA_BOUNDS, ScorePrior, TruncNormal, fit_map, fit_mle


def sample(mu: float, sigma: float, n: int, seed: int = 0) -> list[float]:
    """n draws from TN(μ, σ) on [0, 1] by rejection."""
    rng, out = random.Random(seed), []
    while len(out) < n:
        x = rng.gauss(mu, sigma)
        if 0.0 <= x <= 1.0:
            out.append(x)
    return out


def test_cdf_matches_the_untruncated_normal_far_from_the_bounds():
    """With μ=0.5, σ=0.05 the truncation removes nothing measurable: F(0.55) = Φ(1)."""
    assert TruncNormal(0.5, 0.05).cdf(0.55) == pytest.approx(0.5 * (1 + math.erf(1 / math.sqrt(2))), abs=1e-9)


def test_cdf_is_renormalised_over_the_interval():
    """TN(1, 1): Z = Φ(0) − Φ(−1); F(0.5) = (Φ(−0.5) − Φ(−1)) / Z."""
    phi = lambda z: 0.5 * (1 + math.erf(z / math.sqrt(2)))  # noqa: E731
    expected = (phi(-0.5) - phi(-1)) / (phi(0) - phi(-1))
    dist = TruncNormal(1.0, 1.0)
    assert dist.cdf(0.5) == pytest.approx(expected)
    assert dist.cdf(0.0) == 0.0 and dist.cdf(1.0) == 1.0


@pytest.mark.parametrize("mu, sigma, tol", [(0.7, 0.15, 0.03), (0.3, 0.1, 0.03), (0.9, 0.2, 0.05), (1.1, 0.3, 0.12)],
                         ids=["interior", "low", "near-1", "mean-above-1"])
def test_mle_recovers_known_parameters(mu, sigma, tol):
    """400 draws; the tolerance widens as truncation hides more of the bell (μ above 1 shows only its left side)."""
    fit = fit_mle(sample(mu, sigma, 400))
    assert fit.mu == pytest.approx(mu, abs=tol) and fit.sigma == pytest.approx(sigma, abs=tol)


def test_identical_scores_hit_the_sigma_floor():
    fit = fit_mle([0.9, 0.9, 0.9])
    assert fit.mu == pytest.approx(0.9, abs=1e-4) and fit.sigma == pytest.approx(SIGMA_BOUNDS[0])


def test_identical_scores_collapse_sigma_even_under_a_prior():
    """Ties make the likelihood unbounded as σ → 0; the N(σ0, 0.1²) prior cannot outweigh it, the floor stops it."""
    assert fit_map([0.6, 0.6], ScorePrior(0.8, 0.2)).sigma == pytest.approx(SIGMA_BOUNDS[0])


def test_map_with_few_scores_is_pulled_towards_the_prior():
    """Scores 0.55, 0.65: MLE gives μ=0.6, σ=0.05; MAP with prior (0.8, 0.2) moves both towards the prior."""
    scores = [0.55, 0.65]
    mle, fit = fit_mle(scores), fit_map(scores, ScorePrior(0.8, 0.2))
    assert mle.mu == pytest.approx(0.6, abs=1e-4) and mle.sigma == pytest.approx(0.05, abs=1e-4)
    assert 0.6 < fit.mu < 0.8 and 0.05 < fit.sigma < 0.2


def test_fit_rejects_bad_scores():
    with pytest.raises(ValueError):
        fit_mle([])
    with pytest.raises(ValueError):
        fit_mle([0.5, 7.0])
