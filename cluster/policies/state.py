"""The controller's policy state: the bandit, its reward scale and OptScale's online prior, with a file checkpoint."""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from cluster.config.schema import ControllerConfig
from cluster.policies.arms import Arm
from cluster.policies.bandit import ArmStats, BanditPolicy, make_bandit
from cluster.policies.optscale import OnlinePrior
from cluster.policies.reward import ThroughputReward, target_equivalent_tokens
from cluster.policies.truncnorm import ScorePrior, TruncNormal
from cluster.reasoning.types import ReasoningResult

logger = logging.getLogger(__name__)


def build_bandit(cfg: ControllerConfig) -> BanditPolicy | None:
    """The configured bandit (None without `cfg.bandit`)."""
    b = cfg.bandit
    if b is None:
        return None
    arms = [Arm(a.name, dict(a.knobs)) for a in b.arms]
    return make_bandit(b.algorithm, arms, seed=b.seed, radius=b.radius, delta=b.delta, exploration=b.exploration,
                       warmup_rounds=b.warmup_rounds, variance=b.variance)


class PolicyState:
    """Bandit + reward scale + online prior of one controller, and their checkpoint.

    `choose()` hands out an arm; `observe(arm, result)` turns a finished bandit pull into a reward and
    updates the bandit; `observe_fit(fit)` moves the OptScale prior. State is saved to
    `cfg.checkpoint_path` (atomically: temp file + rename) by `maybe_save()`, at most every
    `cfg.checkpoint_interval_s` while something changed, and restored by the constructor.
    """

    def __init__(self, cfg: ControllerConfig) -> None:
        self.cfg = cfg
        self.bandit = build_bandit(cfg)
        ref = cfg.bandit.reward_ref_tokens_per_s if cfg.bandit else None
        self.reward = ThroughputReward(ref)
        o = cfg.optscale
        self.prior = OnlinePrior(o.mu, o.sigma, std=o.std, weight=o.weight) if o.prior == "online" else None
        self._dirty = False
        self._saved_at = 0.0
        self.restored = self._restore()

    def choose(self) -> Arm | None:
        """The arm for the next request (None without a bandit)."""
        return None if self.bandit is None else self.bandit.select()

    def observe(self, arm: str, result: ReasoningResult) -> float | None:
        """Reward of a bandit-chosen request, recorded on `arm`; None when it cannot count (no bandit, no time).

        Raises:
            ValueError: `arm` is not configured.
        """
        return self.observe_throughput(arm, target_equivalent_tokens(result), result.stats.wall_time_s)

    def observe_throughput(self, arm: str, tokens: int, seconds: float) -> float | None:
        """Reward of a bandit pull that produced `tokens` target-equivalent tokens in `seconds`, recorded on
        `arm` (what `observe` does with a result); None when it cannot count (no bandit, no time).

        Raises:
            ValueError: `arm` is not configured, or tokens < 0.
        """
        if self.bandit is None or seconds <= 0:
            return None
        scale = self.reward.ref
        reward = self.reward.reward(tokens, seconds)
        if 0 < scale < self.reward.ref:  # an auto scale grew: earlier rewards were too high on the new one
            self.bandit.rescale_rewards(scale / self.reward.ref)
        if self.bandit.update(arm, reward):
            logger.info("bandit leader is now %s", self.bandit.leader().name)
        self._dirty = True
        return reward

    def score_prior(self) -> ScorePrior | None:
        """OptScale^t's prior for the next best_of_n request (None = MLE)."""
        return None if self.prior is None else self.prior.prior

    def observe_fit(self, fit: TruncNormal) -> None:
        """Fold one finished best_of_n request's MLE fit into the prior."""
        if self.prior is not None:
            self.prior.observe(fit)
            self._dirty = True

    def arm_stats(self) -> dict[str, ArmStats]:
        return {} if self.bandit is None else self.bandit.arm_stats()

    def to_dict(self) -> dict[str, Any]:
        """What /v1/stats shows: the bandit's settings, arms (pulls, mean reward), leader, reward scale, prior."""
        out: dict[str, Any] = {"bandit": None, "optscale_prior": None}
        if self.bandit is not None:
            out["bandit"] = {"algorithm": self.bandit.kind, "settings": self.bandit.settings(),
                             "leader": self.bandit.leader().name,
                             "reward_ref_tokens_per_s": self.reward.ref,
                             "arms": {n: {"pulls": s.pulls, "mean_reward": s.mean_reward}
                                      for n, s in self.bandit.arm_stats().items()}}
        if (prior := self.score_prior()) is not None:
            out["optscale_prior"] = {"mu": prior.mu, "sigma": prior.sigma, "std": prior.std}
        return out

    def state_dict(self) -> dict[str, Any]:
        return {"bandit": None if self.bandit is None else self.bandit.state_dict(),
                "reward": self.reward.state_dict(),
                "prior": None if self.prior is None else self.prior.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore `state_dict()`; parts the current config does not have (or has of another kind) are skipped."""
        if self.bandit is not None and state.get("bandit") and state["bandit"].get("kind") == self.bandit.kind:
            self.bandit.load_state_dict(state["bandit"])
            self.reward.load_state_dict(state["reward"])
        if self.prior is not None and state.get("prior"):
            self.prior.load_state_dict(state["prior"])

    def maybe_save(self, *, force: bool = False) -> bool:
        """Write the checkpoint if there is a path, something changed and the interval passed (or `force`)."""
        path = self.cfg.checkpoint_path
        now = time.monotonic()
        if path is None or not self._dirty or (not force and now - self._saved_at < self.cfg.checkpoint_interval_s):
            return False
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(target.name + ".tmp")
        tmp.write_text(json.dumps(self.state_dict()))
        os.replace(tmp, target)
        self._dirty, self._saved_at = False, now
        return True

    def _restore(self) -> bool:
        path = self.cfg.checkpoint_path
        if path is None or not Path(path).exists():
            return False
        try:
            self.load_state_dict(json.loads(Path(path).read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:  # a bad checkpoint costs the learning, not the start
            logger.warning("ignoring unreadable controller checkpoint %s: %s", path, e)
            return False
        logger.info("restored controller state from %s", path)
        return True
