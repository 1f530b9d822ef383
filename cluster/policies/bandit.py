"""UCB, EXP3 and Thompson sampling over speculation arms (BanditSpec, ALGORITHMS.md §4): pure, seeded state machines.

Rewards are in [0, 1] (see `reward.ThroughputReward`), so BanditSpec's reward width L is 1 here and
EXP3's loss is 1 − r (the paper's (L+1−Y)/L with r = (Y−1)/L).
"""

from __future__ import annotations

import abc
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

from cluster.policies.arms import Arm, check_arms

Radius = Literal["paper", "heuristic"]
Variance = Literal["arm", "pooled"]


@dataclass(frozen=True, slots=True)
class ArmStats:
    """What the controller exports per arm: pulls and mean reward (None before the first pull)."""

    pulls: int
    mean_reward: float | None


class BanditPolicy(abc.ABC):
    """Chooses an arm per request (or per window) and learns from its reward.

    `select()` returns the arm to use; `update(arm, reward)` records the reward of a finished pull and
    returns whether the leading arm (the one the policy currently favours) changed.
    """

    kind: ClassVar[str]
    rng: random.Random | None = None  # a `SeededPolicy`'s; it is part of the checkpoint

    def __init__(self, arms: Sequence[Arm]) -> None:
        self.arms = check_arms(arms)
        self._index = {a.name: i for i, a in enumerate(self.arms)}
        self._pulls = [0] * len(self.arms)
        self._reward_sum = [0.0] * len(self.arms)
        self._t = 0  # rewards received so far

    @abc.abstractmethod
    def select(self) -> Arm:
        """The arm to pull next."""

    def leader(self) -> Arm:
        """The arm the policy currently favours (exploitation only): the highest mean, ties to the lower index."""
        return self.arms[max(range(len(self.arms)), key=self._mean)]

    def settings(self) -> dict[str, Any]:
        """The hyperparameters this policy uses (what /v1/stats shows; the arms and the RNG's state aside)."""
        return {}

    def _warmup_arm(self, rounds: int) -> Arm | None:
        """The least-pulled arm while some arm has fewer than `rounds` pulls, else None."""
        fewest = min(range(len(self.arms)), key=self._pulls.__getitem__)
        return self.arms[fewest] if self._pulls[fewest] < rounds else None

    def _observe(self, i: int, reward: float) -> None:
        """Algorithm-specific bookkeeping of a reward, before the shared counters move."""

    def _arm_state(self, i: int) -> dict[str, float]:
        """Algorithm-specific numbers of arm i for the checkpoint (beside pulls and reward sum)."""
        return {}

    def _load_arm_state(self, i: int, state: dict[str, Any]) -> None:
        """Restore `_arm_state(i)` output."""

    def update(self, arm: Arm | str, reward: float) -> bool:
        """Record `reward` ∈ [0, 1] for a pull of `arm`; True when the leading arm changed.

        Report only pulls this policy selected: a request that pinned its arm is not a bandit
        observation (EXP3's importance weights assume the arm was drawn from its probabilities).

        Raises:
            ValueError: unknown arm, reward outside [0, 1], or (EXP3) an arm the policy gives probability 0.
        """
        i = self.index(arm)
        if not 0.0 <= reward <= 1.0:
            raise ValueError(f"reward must be in [0, 1], got {reward}")
        before = self.leader()
        self._observe(i, reward)
        self._pulls[i] += 1
        self._reward_sum[i] += reward
        self._t += 1
        return self.leader() != before

    def rescale_rewards(self, factor: float) -> None:
        """Multiply every reward received so far by `factor` (the reward scale grew): the means become what
        they would be had every reward been normalised on the new scale."""
        self._reward_sum = [r * factor for r in self._reward_sum]

    def index(self, arm: Arm | str) -> int:
        """Position of `arm` (an Arm or its name). Raises ValueError for an unknown arm."""
        name = arm.name if isinstance(arm, Arm) else arm
        try:
            return self._index[name]
        except KeyError:
            raise ValueError(f"Unknown arm {name!r}; valid: {sorted(self._index)}") from None

    def _mean(self, i: int) -> float:
        return self._reward_sum[i] / self._pulls[i] if self._pulls[i] else 0.0

    def arm_stats(self) -> dict[str, ArmStats]:
        """Pulls and mean reward per arm name (the controller's metrics)."""
        return {a.name: ArmStats(self._pulls[i], self._mean(i) if self._pulls[i] else None)
                for i, a in enumerate(self.arms)}

    def state_dict(self) -> dict[str, Any]:
        """Plain-dict state (JSON-safe) for checkpoints; hyperparameters come from the config, not from here."""
        state: dict[str, Any] = {
            "kind": self.kind, "t": self._t,
            "arms": {a.name: {"pulls": self._pulls[i], "reward_sum": self._reward_sum[i], **self._arm_state(i)}
                     for i, a in enumerate(self.arms)}}
        if self.rng is not None:
            version, internal, gauss = self.rng.getstate()
            state["rng"] = [version, list(internal), gauss]
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()` output. Arms absent from `state` start fresh; arms no longer configured are dropped.

        Raises:
            ValueError: the state belongs to another algorithm.
        """
        if state.get("kind") != self.kind:
            raise ValueError(f"state is for {state.get('kind')!r}, this policy is {self.kind!r}")
        self._t = int(state["t"])
        for name, s in state["arms"].items():
            if name in self._index:
                i = self._index[name]
                self._pulls[i], self._reward_sum[i] = int(s["pulls"]), float(s["reward_sum"])
                self._load_arm_state(i, s)
        if self.rng is not None:
            version, internal, gauss = state["rng"]
            self.rng.setstate((version, tuple(internal), gauss))


class UCB(BanditPolicy):
    """UCBSpec: after `warmup_rounds` pulls of every arm, pull argmax_i μ̂_i + cr_i.

    radius="paper" (BanditSpec Lemma F.3, width L=1, confidence δ, round t, K arms):
        cr_i = ½·sqrt((1+n_i)/n_i² · (1 + 2·ln(K·t²·sqrt(1+n_i)/δ)))
    radius="heuristic" (the reference code's exploration weight c, with warm-up):
        cr_i = sqrt(c·ln t / n_i)
    The reference code divides by Σ_j n_j instead of n_i, which gives every arm the same bonus and so
    turns into greedy play after warm-up; we use n_i so the heuristic still explores. Its c=6 was for raw
    tokens/s; for rewards in [0, 1] the default c=2 is UCB1's. δ=0.05 is our default (the paper's value is
    not verified). Ties go to the lower index.
    """

    kind = "ucb"

    def __init__(self, arms: Sequence[Arm], *, radius: Radius = "paper", delta: float = 0.05,
                 exploration: float = 2.0, warmup_rounds: int = 1) -> None:
        super().__init__(arms)
        if radius not in ("paper", "heuristic"):
            raise ValueError(f"Unknown radius {radius!r}; valid: ['heuristic', 'paper']")
        if not 0 < delta < 1 or exploration <= 0 or warmup_rounds < 1:
            raise ValueError("need 0 < delta < 1, exploration > 0 and warmup_rounds ≥ 1")
        self.radius, self.delta, self.exploration, self.warmup_rounds = radius, delta, exploration, warmup_rounds

    def settings(self) -> dict[str, Any]:
        return {"radius": self.radius, "delta": self.delta, "exploration": self.exploration,
                "warmup_rounds": self.warmup_rounds}

    def confidence_radius(self, i: int, t: int) -> float:
        """cr_i at round t (see the class docstring); infinite for an arm never pulled."""
        n = self._pulls[i]
        if n == 0:
            return math.inf
        if self.radius == "heuristic":
            return math.sqrt(self.exploration * math.log(t) / n)
        log_term = math.log(len(self.arms) * t * t * math.sqrt(1 + n) / self.delta)
        return 0.5 * math.sqrt((1 + n) / n**2 * (1 + 2 * log_term))

    def select(self) -> Arm:
        if (arm := self._warmup_arm(self.warmup_rounds)) is not None:
            return arm
        t = self._t + 1
        return self.arms[max(range(len(self.arms)), key=lambda i: self._mean(i) + self.confidence_radius(i, t))]


class SeededPolicy(BanditPolicy):
    """A policy that draws at random: its RNG starts from `seed` (None: from the OS) and is checkpointed."""

    def __init__(self, arms: Sequence[Arm], *, seed: int | None = 0) -> None:
        super().__init__(arms)
        self.seed = seed
        self.rng = random.Random(seed)

    def settings(self) -> dict[str, Any]:
        return {"seed": self.seed}


class EXP3(SeededPolicy):
    """EXP3Spec with BanditSpec's anytime learning rate, on losses 1 − r.

        p_{t,i} ∝ exp(−η_t·Ẑ_i),  η_t = sqrt(ln K / (t·K)),  Ẑ_i += (1 − r)/p_{t,i} when arm i is pulled.

    `update` weights the loss by the arm's probability at update time, which is its probability at
    selection time when updates arrive in order; interleaved asynchronous updates make this approximate.
    The loss estimates keep the reward scale they were observed on (`rescale_rewards` moves the means only).
    """

    kind = "exp3"

    def __init__(self, arms: Sequence[Arm], *, seed: int | None = 0) -> None:
        super().__init__(arms, seed=seed)
        self._loss = [0.0] * len(self.arms)  # Ẑ_i: importance-weighted cumulative loss estimates

    def probabilities(self) -> list[float]:
        """p_{t,i} for the next round t = rewards so far + 1."""
        k = len(self.arms)
        eta = math.sqrt(math.log(k) / ((self._t + 1) * k))
        low = min(self._loss)  # shift by the minimum so exp never underflows to all zeros
        weights = [math.exp(-eta * (z - low)) for z in self._loss]
        total = sum(weights)
        return [w / total for w in weights]

    def select(self) -> Arm:
        return self.rng.choices(self.arms, weights=self.probabilities())[0]

    def leader(self) -> Arm:
        return self.arms[min(range(len(self.arms)), key=self._loss.__getitem__)]

    def _observe(self, i: int, reward: float) -> None:
        p = self.probabilities()[i]
        if p == 0.0:
            raise ValueError(f"arm {self.arms[i].name!r} has probability 0: EXP3 cannot learn from a pull it "
                             "would never make")
        self._loss[i] += (1.0 - reward) / p

    def _arm_state(self, i: int) -> dict[str, float]:
        return {"loss": self._loss[i]}

    def _load_arm_state(self, i: int, state: dict[str, Any]) -> None:
        self._loss[i] = float(state["loss"])


class Thompson(SeededPolicy):
    """Gaussian Thompson sampling: pull the arm whose draw from the posterior of its mean reward is highest.

    Each arm's rewards are taken as normal with unknown mean and variance; under the uninformative
    Normal-Gamma prior the posterior of the mean after n ≥ 2 rewards is Student-t with n − 1 degrees of
    freedom, centred on the sample mean with scale s/√n (s² the unbiased sample variance). Every arm is
    pulled twice first (the posterior needs two rewards). No exploration constant: an arm whose rewards
    barely vary is settled after a few pulls, which is what BanditSpec's fixed radius cannot do when the
    arms' gaps are small against the reward range (an arm whose rewards so far are all equal has scale 0
    and competes with its mean alone).

    `variance="pooled"` takes the arms' rewards as equally noisy: one variance s² pooled over all arms
    (Σ squared deviations from each arm's mean ÷ (N − K), N pulls of K arms), so each arm's posterior is
    Student-t with N − K degrees of freedom and scale s/√n_i. Its tails thin as soon as any arm is pulled,
    where an arm's own variance leaves a barely pulled arm's draw Cauchy-like (one degree of freedom). It needs
    one pull of every arm, not two: after that round the leader is pulled once more (N − K ≥ 1), then draws decide.
    """

    kind = "thompson"

    def __init__(self, arms: Sequence[Arm], *, seed: int | None = 0, variance: Variance = "arm") -> None:
        super().__init__(arms, seed=seed)
        if variance not in get_args(Variance):
            raise ValueError(f"Unknown Thompson variance {variance!r}; valid: {list(get_args(Variance))}")
        self.variance = variance
        self.warmup_rounds = 1 if variance == "pooled" else 2  # pulls of every arm before the posterior exists
        self._square_sum = [0.0] * len(self.arms)  # Σ r², for the sample variance

    def _observe(self, i: int, reward: float) -> None:
        self._square_sum[i] += reward * reward

    def rescale_rewards(self, factor: float) -> None:
        super().rescale_rewards(factor)
        self._square_sum = [q * factor * factor for q in self._square_sum]

    def settings(self) -> dict[str, Any]:
        return {"variance": self.variance, "warmup_rounds": self.warmup_rounds, **super().settings()}

    def _squared_deviations(self, i: int) -> float:
        """Σ (r − mean)² over arm i's rewards."""
        return max(self._square_sum[i] - self._reward_sum[i] ** 2 / self._pulls[i], 0.0)

    def degrees_of_freedom(self) -> list[int]:
        """Each arm's posterior's: n_i − 1 with the arm's own variance, N − K pooled (after the warm-up)."""
        if self.variance == "pooled":
            return [sum(self._pulls) - len(self.arms)] * len(self.arms)
        return [n - 1 for n in self._pulls]

    def posterior_scales(self) -> list[float]:
        """Each arm's s/√n, its Student-t posterior's scale (once the degrees of freedom are ≥ 1)."""
        return self._scales(self.degrees_of_freedom())

    def _scales(self, dofs: list[int]) -> list[float]:
        deviations = [self._squared_deviations(i) for i in range(len(self.arms))]
        if self.variance == "pooled":
            deviations = [sum(deviations)] * len(deviations)
        return [math.sqrt(d / dof / n) for d, dof, n in zip(deviations, dofs, self._pulls, strict=True)]

    def _student_t(self, dof: int) -> float:
        """A standard Student-t draw: a normal over the root of a χ²(dof) ÷ dof."""
        return self.rng.gauss(0.0, 1.0) / math.sqrt(self.rng.gammavariate(dof / 2, 2.0) / dof)

    def select(self) -> Arm:
        if (arm := self._warmup_arm(self.warmup_rounds)) is not None:
            return arm
        dofs = self.degrees_of_freedom()
        if min(dofs) == 0:  # pooled, one pull per arm: no spread measured yet
            return self.leader()
        scales = self._scales(dofs)
        draws = [self._mean(i) + scales[i] * self._student_t(dofs[i]) for i in range(len(self.arms))]  # in order
        return self.arms[max(range(len(draws)), key=draws.__getitem__)]

    def _arm_state(self, i: int) -> dict[str, float]:
        return {"square_sum": self._square_sum[i]}

    def _load_arm_state(self, i: int, state: dict[str, Any]) -> None:
        self._square_sum[i] = float(state["square_sum"])


def make_bandit(algorithm: str, arms: Sequence[Arm], *, seed: int | None = 0, radius: Radius = "paper",
                delta: float = 0.05, exploration: float = 2.0, warmup_rounds: int = 1,
                variance: Variance = "arm") -> BanditPolicy:
    """The policy called `algorithm` ("ucb", "exp3" or "thompson") over `arms`.

    Args:
        seed: EXP3's and Thompson sampling's RNG seed.
        radius, delta, exploration, warmup_rounds: UCB's (see `UCB`); the other policies ignore them.
        variance: Thompson sampling's (see `Thompson`); the other policies ignore it.

    Raises:
        ValueError: unknown algorithm (the message lists the valid ones), or UCB knobs out of range.
    """
    if algorithm == "ucb":
        return UCB(arms, radius=radius, delta=delta, exploration=exploration, warmup_rounds=warmup_rounds)
    if algorithm == "exp3":
        return EXP3(arms, seed=seed)
    if algorithm == "thompson":
        return Thompson(arms, seed=seed, variance=variance)
    raise ValueError(f"Unknown bandit algorithm {algorithm!r}; valid: ['exp3', 'thompson', 'ucb']")
