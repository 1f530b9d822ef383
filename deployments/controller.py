"""Controller deployment: the method settings in force and the live statistics of finished requests.

Off the hot path: the ingress reads the defaults once per request and reports each finished
request (with the accept/reject outcome of every step) fire-and-forget. `user_config` holds
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

from cluster.config.loader import format_validation_error
from cluster.config.schema import ReasoningParams
from cluster.errors import ConfigError
from cluster.metrics import LoggingSink, SpecReasoningStats
from cluster.reasoning.types import ReasoningResult

logger = logging.getLogger(__name__)


@serve.deployment(name="Controller")
class ControllerDeployment:
    """Holds the request defaults (configured ReasoningParams + `user_config` overrides) and the stats.

    Args:
        reasoning: the configured defaults (`AppArgs.reasoning`).
        log_interval_s: how often the aggregate is logged (at most).
    """

    def __init__(self, reasoning: ReasoningParams, log_interval_s: float = 10.0) -> None:
        self._base = reasoning
        self._defaults = reasoning
        self._overrides: dict[str, Any] = {}
        self._stats = SpecReasoningStats()
        self._sink = LoggingSink(log_interval_s)
        self._replica = {"id": uuid.uuid4().hex[:12], "started_at": time.time(), "reconfigures": 0}

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply ReasoningParams overrides (keys of ReasoningParams) over the configured defaults.

        Raises:
            ConfigError: unknown key or invalid value (Serve then reports the update as failed).
        """
        overrides = dict(user_config or {})
        try:
            self._defaults = self._base.with_overrides(overrides)
        except ValidationError as e:
            raise ConfigError(f"invalid Controller user_config: {format_validation_error(e)}") from e
        self._overrides = overrides
        self._replica["reconfigures"] += 1
        logger.info("request defaults now %s", self._defaults.model_dump())

    def get_defaults(self) -> ReasoningParams:
        """The request defaults in force."""
        return self._defaults

    def report(self, result: ReasoningResult) -> None:
        """Record one finished request (its stats and the outcome of each step)."""
        self._stats.observe(result)
        self._sink.maybe_log(self._stats)

    def get_stats(self) -> dict[str, Any]:
        """Aggregate stats since the replica started, the defaults in force and replica identity."""
        return {**self._stats.to_dict(), "defaults": self._defaults.model_dump(),
                "user_config": dict(self._overrides), "replica": dict(self._replica)}
