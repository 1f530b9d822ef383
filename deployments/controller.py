"""Controller deployment: the method settings in force, the live statistics and the learning policies.

Off the hot path: the ingress reads the defaults (and, when a bandit is configured, an arm) once per
request and reports each finished request fire-and-forget. The policy state (bandit, reward scale,
OptScale prior; `cluster.policies.state`) is shared by every ingress replica, checkpointed to
`controller.checkpoint_path` and restored when the replica restarts. `user_config` holds
ReasoningParams overrides over the configured defaults; changing it calls `reconfigure` on the
running replica, without a restart.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from pydantic import ValidationError
from ray import serve
from ray.util.metrics import Gauge

from cluster.config.loader import format_validation_error
from cluster.config.schema import ControllerConfig, ModelSpec, ReasoningParams
from cluster.engine import check_token_speculation
from cluster.errors import ConfigError, InvalidRequestError
from cluster.metrics import LoggingSink, SpecReasoningStats
from cluster.policies.state import PolicyState
from cluster.policies.truncnorm import ScorePrior, TruncNormal
from cluster.reasoning.types import ReasoningResult

logger = logging.getLogger(__name__)


class BanditMetrics:
    """specserve_bandit_arm_pulls and specserve_bandit_arm_mean_reward: Gauges tagged by arm."""

    def __init__(self) -> None:
        self._pulls = Gauge("specserve_bandit_arm_pulls", description="Bandit pulls of the arm (since the state "
                            "began, checkpoints included).", tag_keys=("arm",))
        self._reward = Gauge("specserve_bandit_arm_mean_reward", description="Mean reward in [0, 1] of the arm's "
                             "pulls.", tag_keys=("arm",))

    def export(self, policy: PolicyState) -> None:
        for name, s in policy.arm_stats().items():
            self._pulls.set(s.pulls, tags={"arm": name})
            if s.mean_reward is not None:
                self._reward.set(s.mean_reward, tags={"arm": name})


@serve.deployment(name="Controller")
class ControllerDeployment:
    """Holds the request defaults (configured ReasoningParams + `user_config` overrides) and the stats.

    Args:
        reasoning: the configured defaults (`AppArgs.reasoning`).
        log_interval_s: how often the aggregate is logged (at most).
        controller: bandit, OptScale prior and checkpoint settings (`AppArgs.controller`).
        target: the target's spec (`AppArgs.target`): defaults it cannot honour are refused.
    """

    def __init__(self, reasoning: ReasoningParams, log_interval_s: float = 10.0,
                 controller: ControllerConfig | None = None, *, target: ModelSpec) -> None:
        self._base = reasoning
        self._target = target
        self._defaults = reasoning
        self._overrides: dict[str, Any] = {}
        self._stats = SpecReasoningStats()
        self._sink = LoggingSink(log_interval_s)
        self._replica = {"id": uuid.uuid4().hex[:12], "started_at": time.time(), "reconfigures": 0}
        self._policy = PolicyState(controller or ControllerConfig())
        self._policy_metrics = BanditMetrics()
        self._policy_metrics.export(self._policy)

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply ReasoningParams overrides (keys of ReasoningParams) over the configured defaults.

        Raises:
            ConfigError: unknown key, invalid value, or one the target cannot honour (token_speculation false
                on a vLLM engine that speculates); Serve then reports the update as failed.
        """
        overrides = dict(user_config or {})
        try:
            defaults = self._base.with_overrides(overrides)
            check_token_speculation(defaults, self._target)
        except ValidationError as e:
            raise ConfigError(f"invalid Controller user_config: {format_validation_error(e)}") from e
        except InvalidRequestError as e:
            raise ConfigError(f"invalid Controller user_config: {e}") from e
        self._defaults = defaults
        self._overrides = overrides
        self._replica["reconfigures"] += 1
        logger.info("request defaults now %s", self._defaults.model_dump())

    def get_defaults(self) -> ReasoningParams:
        """The request defaults in force."""
        return self._defaults

    def choose_arm(self) -> dict[str, Any] | None:
        """The bandit's arm for the next request as {"name", "knobs"} (None without a bandit)."""
        arm = self._policy.choose()
        return None if arm is None else arm.to_dict()

    def observe_round(self, arm: str, tokens: int, seconds: float) -> None:
        """One round of a request the bandit serves per round: `arm` kept `tokens` target-equivalent tokens in
        `seconds` (a reward is recorded)."""
        self._policy.observe_throughput(arm, tokens, seconds)
        self._policy_metrics.export(self._policy)
        self._policy.maybe_save()

    def get_score_prior(self) -> ScorePrior | None:
        """OptScale's prior for the next best_of_n request (None = MLE)."""
        return self._policy.score_prior()

    def report(self, result: ReasoningResult, bandit_arm: str | None = None, fit: TruncNormal | None = None) -> None:
        """Record one finished request (its stats and the outcome of each step).

        Args:
            bandit_arm: the arm the bandit chose for it (a reward is recorded); None for pinned or no arm.
            fit: a best_of_n request's MLE score fit (the online prior learns from it).
        """
        self._stats.observe(result)
        self._sink.maybe_log(self._stats)
        if bandit_arm is not None:
            self._policy.observe(bandit_arm, result)
            self._policy_metrics.export(self._policy)
        if fit is not None:
            self._policy.observe_fit(fit)
        self._policy.maybe_save()

    def get_stats(self) -> dict[str, Any]:
        """Aggregate stats since the replica started, the defaults in force and replica identity."""
        return {**self._stats.to_dict(), "defaults": self._defaults.model_dump(),
                "user_config": dict(self._overrides), "replica": dict(self._replica),
                "policy": {**self._policy.to_dict(), "restored": self._policy.restored}}

    def __del__(self) -> None:
        self._policy.maybe_save(force=True)  # a graceful shutdown keeps updates newer than the interval
