"""Drafter deployment: the draft-model replica, a thin shim over an injected backend."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from ray import serve

from cluster.backends import ModelBackend, create_backend
from cluster.backends.roles import BackendDrafter
from cluster.config.schema import ModelSpec
from cluster.reasoning.types import StepContext, StepOutput, StepParams
from deployments.metrics import CallMetrics

BackendFactory = Callable[[ModelSpec], ModelBackend]


@serve.deployment(name="Drafter")
class DrafterDeployment:
    """Writes draft steps with the draft model.

    Args:
        spec: the draft model.
        backend_factory: builds the backend from `spec` (default `create_backend`; tests inject fakes).
    """

    def __init__(self, spec: ModelSpec, backend_factory: BackendFactory | None = None) -> None:
        self._backend = (backend_factory or create_backend)(spec)
        self._drafter = BackendDrafter(self._backend)
        self._metrics = CallMetrics("drafter")

    async def draft_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        """The next step after each context (see `Drafter.draft_steps`)."""
        t0 = time.perf_counter()
        out = await self._drafter.draft_steps(ctxs, params)
        self._metrics.observe("draft", time.perf_counter() - t0, items=len(ctxs))
        return out

    def backend_stats(self) -> dict[str, Any]:
        """Cumulative counters of the backend (prompt/cached/generated tokens, forward calls)."""
        return asdict(self._backend.stats())

    async def check_health(self) -> None:
        """Serve's periodic health check: raise when the engine cannot serve."""
        await self._backend.check_health()
