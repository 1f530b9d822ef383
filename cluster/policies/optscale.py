"""OptScale: Best-of-N where N is decided online from the fitted score distribution (ALGORITHMS.md §5).

Scores are in [0, 1]: a PRM probability, or a 0–9 judge score divided by 9.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from cluster.policies.truncnorm import ScorePrior, TruncNormal, fit_map, fit_mle

T = TypeVar("T")


def optimal_n(dist: TruncNormal, s_target: float, alpha: float, *, n_min: int, n_max: int) -> int:
    """N* = ⌈ln α / ln F(s_target)⌉ clipped to [n_min, n_max]: the fewest samples whose best reaches
    s_target with probability ≥ 1 − α, since P(max of N < s_target) = F(s_target)^N ≤ α.

    F(s_target) = 1 (the target is out of reach) gives n_max; F(s_target) = 0 gives n_min.

    Example:
        F(s_target) = 0.5, α = 0.05: ln 0.05 / ln 0.5 = 4.32, so N* = 5 (0.5⁴ = 0.0625 > α ≥ 0.5⁵).
    """
    f = dist.cdf(s_target)
    if f >= 1.0:
        return n_max
    if f <= 0.0:
        return n_min
    n = math.ceil(math.log(alpha) / math.log(f) - 1e-9)  # the tolerance keeps exact integers from rounding up
    return min(max(n, n_min), n_max)


class OnlinePrior:
    """OptScale^t's prior without a trained predictor: fitted online from past requests.

    μ0, σ0 = weighted means of the per-request MLE fits observed so far, with the initial (mu, sigma)
    counting as `weight` requests (the paper notebook's fixed prior is μ=0.8, σ=0.2); std stays fixed.
    """

    def __init__(self, mu: float = 0.8, sigma: float = 0.2, *, std: float = 0.1, weight: float = 1.0) -> None:
        if sigma <= 0 or std <= 0 or weight <= 0:
            raise ValueError("need sigma > 0, std > 0 and weight > 0")
        self.std = std
        self._mu_sum, self._sigma_sum, self._weight = mu * weight, sigma * weight, weight

    @property
    def prior(self) -> ScorePrior:
        return ScorePrior(self._mu_sum / self._weight, self._sigma_sum / self._weight, self.std)

    def observe(self, fit: TruncNormal) -> bool:
        """Add one finished request's MLE fit; True (the prior always moves)."""
        self._mu_sum += fit.mu
        self._sigma_sum += fit.sigma
        self._weight += 1.0
        return True

    def state_dict(self) -> dict[str, Any]:
        return {"mu_sum": self._mu_sum, "sigma_sum": self._sigma_sum, "weight": self._weight}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._mu_sum, self._sigma_sum = float(state["mu_sum"]), float(state["sigma_sum"])
        self._weight = float(state["weight"])


@dataclass(frozen=True, slots=True)
class StopDecision:
    """The sampler's verdict after the scores so far.

    Attributes:
        stop: True when no more samples are needed (drawn ≥ n_target).
        n_target: samples wanted in total: the peek k until k scores are in, then N* (clipped to [k, N_max]).
        drawn: scores received.
        fit: the score distribution N* was computed from (None before the peek is complete).
    """

    stop: bool
    n_target: int
    drawn: int
    fit: TruncNormal | None = None

    @property
    def remaining(self) -> int:
        """Samples still to launch (in parallel, subtract those already in flight)."""
        return max(0, self.n_target - self.drawn)


class OptScaleSampler(Generic[T]):
    """Sequential OptScale: draw k (peek) samples, then refit after every score and stop once N* ≤ drawn.

    Fits by MLE (OptScale^0), or by MAP with `prior` (OptScale^t). Never draws more than n_max. Which
    candidate to return is the caller's choice (Best-of-N: `cluster.reasoning.methods.best_of_n.choose`).

    Example:
        sampler = OptScaleSampler(s_target=0.9, alpha=0.05, n_max=16, peek=3)
        while not (decision := sampler.add(candidate, score)).stop: ...   # launch decision.remaining more
        candidates, scores = sampler.candidates, sampler.scores
    """

    def __init__(self, *, s_target: float, alpha: float, n_max: int, peek: int,
                 prior: ScorePrior | None = None) -> None:
        if not 0 < s_target <= 1 or not 0 < alpha < 1 or not 1 <= peek <= n_max:
            raise ValueError(f"need 0 < s_target ≤ 1, 0 < alpha < 1 and 1 ≤ peek ≤ n_max; got "
                             f"s_target={s_target}, alpha={alpha}, peek={peek}, n_max={n_max}")
        self.s_target, self.alpha, self.n_max, self.peek, self.prior = s_target, alpha, n_max, peek, prior
        self._candidates: list[T] = []
        self._scores: list[float] = []
        self._decision = StopDecision(stop=False, n_target=peek, drawn=0)

    @property
    def scores(self) -> tuple[float, ...]:
        return tuple(self._scores)

    @property
    def candidates(self) -> tuple[T, ...]:
        return tuple(self._candidates)

    @property
    def decision(self) -> StopDecision:
        return self._decision

    def add(self, candidate: T, score: float) -> StopDecision:
        """Record one scored candidate and decide whether to sample more.

        Raises:
            ValueError: score outside [0, 1].
        """
        if not 0.0 <= score <= 1.0:
            raise ValueError(f"score must be in [0, 1], got {score}")
        self._candidates.append(candidate)
        self._scores.append(score)
        drawn = len(self._scores)
        if drawn < self.peek:
            self._decision = StopDecision(stop=False, n_target=self.peek, drawn=drawn)
        else:
            fit = fit_mle(self._scores) if self.prior is None else fit_map(self._scores, self.prior)
            n_target = optimal_n(fit, self.s_target, self.alpha, n_min=self.peek, n_max=self.n_max)
            self._decision = StopDecision(stop=drawn >= n_target, n_target=n_target, drawn=drawn, fit=fit)
        return self._decision

    def mle_fit(self) -> TruncNormal:
        """The MLE fit of all scores so far: what `OnlinePrior.observe` takes once the request is done."""
        return fit_mle(self._scores)
