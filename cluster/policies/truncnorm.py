"""OptScale's score model: a normal truncated to [0, 1], its CDF, and MLE / MAP fits (ALGORITHMS.md §5)."""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

_SQRT2 = math.sqrt(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
MU_BOUNDS = (-1.0, 2.0)  # μ may leave [0, 1]: scores piled up at 1 fit a mean above 1
SIGMA_BOUNDS = (1e-3, 2.0)  # the floor keeps identical scores from collapsing σ to 0


def _normal_mass(lo: float, hi: float) -> float:
    """Φ(hi) − Φ(lo) for lo ≤ hi, computed on the side of 0 where the tails do not cancel."""
    if lo > 0:
        return 0.5 * (math.erfc(lo / _SQRT2) - math.erfc(hi / _SQRT2))
    return 0.5 * (math.erfc(-hi / _SQRT2) - math.erfc(-lo / _SQRT2))


@dataclass(frozen=True, slots=True)
class TruncNormal:
    """TN(μ, σ) on [0, 1]: density φ((x−μ)/σ) / (σ·Z) with Z = Φ((1−μ)/σ) − Φ(−μ/σ)."""

    mu: float
    sigma: float

    def cdf(self, x: float) -> float:
        """F(x) = (Φ((x−μ)/σ) − Φ(−μ/σ)) / Z, clipped to [0, 1] outside the support."""
        if x <= 0.0:
            return 0.0
        if x >= 1.0:
            return 1.0
        a, b = -self.mu / self.sigma, (1.0 - self.mu) / self.sigma
        z = _normal_mass(a, b)
        if z <= 0.0:  # all mass at the end of [0, 1] nearest μ
            return 0.0 if self.mu >= 1.0 else 1.0
        return min(1.0, _normal_mass(a, (x - self.mu) / self.sigma) / z)

    def log_likelihood(self, scores: Sequence[float]) -> float:
        """ℓ(μ, σ) = Σ_i −½·((s_i−μ)/σ)² − n·(ln σ + ½·ln 2π + ln Z); −inf when Z underflows."""
        z = _normal_mass(-self.mu / self.sigma, (1.0 - self.mu) / self.sigma)
        if z <= 0.0:
            return -math.inf
        quad = sum(((s - self.mu) / self.sigma) ** 2 for s in scores)
        return -0.5 * quad - len(scores) * (math.log(self.sigma) + _HALF_LOG_2PI + math.log(z))


@dataclass(frozen=True, slots=True)
class ScorePrior:
    """OptScale^t's prior: μ ~ N(mu, std²), σ ~ N(sigma, std²) (the paper uses std = 0.1)."""

    mu: float
    sigma: float
    std: float = 0.1

    def log_density(self, dist: TruncNormal) -> float:
        """ln p(μ) + ln p(σ) up to a constant."""
        return -0.5 * (((dist.mu - self.mu) / self.std) ** 2 + ((dist.sigma - self.sigma) / self.std) ** 2)


def fit_mle(scores: Sequence[float]) -> TruncNormal:
    """argmax_{μ,σ} ℓ(μ, σ) over MU_BOUNDS × SIGMA_BOUNDS (OptScale^0).

    Identical scores make ℓ unbounded as σ → 0, so they fit σ = SIGMA_BOUNDS[0] (also under a MAP prior):
    then F(s_target) is ≈0 or ≈1 and N* is the peek or N_max.
    """
    return _fit(scores, lambda d: d.log_likelihood(scores))


def fit_map(scores: Sequence[float], prior: ScorePrior) -> TruncNormal:
    """argmax_{μ,σ} ℓ(μ, σ) + ln p(μ) + ln p(σ) over MU_BOUNDS × SIGMA_BOUNDS (OptScale^t)."""
    return _fit(scores, lambda d: d.log_likelihood(scores) + prior.log_density(d))


def _clip(v: float, bounds: tuple[float, float]) -> float:
    return min(max(v, bounds[0]), bounds[1])


def _fit(scores: Sequence[float], objective: Callable[[TruncNormal], float]) -> TruncNormal:
    """Maximise `objective` over (μ, ln σ) by Nelder–Mead from the sample mean and standard deviation.

    Raises:
        ValueError: no scores, or a score outside [0, 1].
    """
    if not scores:
        raise ValueError("cannot fit a score distribution to no scores")
    if any(not 0.0 <= s <= 1.0 for s in scores):
        raise ValueError(f"scores must be in [0, 1], got {list(scores)}")
    log_bounds = (math.log(SIGMA_BOUNDS[0]), math.log(SIGMA_BOUNDS[1]))

    def dist(x: Sequence[float]) -> TruncNormal:
        return TruncNormal(_clip(x[0], MU_BOUNDS), math.exp(_clip(x[1], log_bounds)))

    mean = sum(scores) / len(scores)
    std = math.sqrt(sum((s - mean) ** 2 for s in scores) / len(scores))
    start = [mean, math.log(_clip(std, (0.05, SIGMA_BOUNDS[1])))]
    return dist(_nelder_mead(lambda x: -objective(dist(x)), start, steps=(0.1, 0.5)))


def _towards(centroid: list[float], worst: list[float], coef: float) -> list[float]:
    """centroid + coef·(centroid − worst): reflection (1), expansion (2), contractions (±½)."""
    return [c + coef * (c - w) for c, w in zip(centroid, worst, strict=True)]


def _nelder_mead(f: Callable[[list[float]], float], x0: list[float], steps: Sequence[float],
                 tol: float = 1e-10, max_iter: int = 500) -> list[float]:
    """Minimise f from x0 with the Nelder–Mead simplex (reflect 1, expand 2, contract ½, shrink ½)."""
    simplex = [list(x0)] + [[v + (steps[j] if j == i else 0.0) for j, v in enumerate(x0)] for i in range(len(x0))]
    values = [f(p) for p in simplex]
    for _ in range(max_iter):
        order = sorted(range(len(simplex)), key=values.__getitem__)
        simplex, values = [simplex[i] for i in order], [values[i] for i in order]
        if values[-1] - values[0] <= tol:
            break
        centroid = [sum(c) / (len(simplex) - 1) for c in zip(*simplex[:-1], strict=True)]
        worst = simplex[-1]
        reflected = _towards(centroid, worst, 1.0)
        f_r = f(reflected)
        if f_r < values[0]:
            expanded = _towards(centroid, worst, 2.0)
            f_e = f(expanded)
            simplex[-1], values[-1] = (expanded, f_e) if f_e < f_r else (reflected, f_r)
        elif f_r < values[-2]:
            simplex[-1], values[-1] = reflected, f_r
        else:
            contracted = _towards(centroid, worst, -0.5 if f_r >= values[-1] else 0.5)
            f_c = f(contracted)
            if f_c < min(f_r, values[-1]):
                simplex[-1], values[-1] = contracted, f_c
            else:
                best = simplex[0]
                simplex = [best] + [[b + 0.5 * (x - b) for b, x in zip(best, p, strict=True)] for p in simplex[1:]]
                values = [values[0]] + [f(p) for p in simplex[1:]]
    return simplex[min(range(len(simplex)), key=values.__getitem__)]
