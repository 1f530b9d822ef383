"""Drafter deployment: the draft-model replica; `@serve.batch` merges draft steps of concurrent requests.

A backend that merges concurrent calls itself (vLLM) gets each call at once instead (see
`deployments.batching.submit`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from typing import Any

from ray import serve

from cluster.backends import ModelBackend, create_backend
from cluster.backends.roles import generate_steps_each
from cluster.config.schema import ModelSpec
from cluster.reasoning.types import StepContext, StepOutput, StepParams
from deployments.batching import apply_batching, run_merged, submit
from deployments.metrics import CallMetrics
from deployments.watchdog import CallWatchdog

BackendFactory = Callable[[ModelSpec], ModelBackend]


@serve.deployment(name="Drafter")
class DrafterDeployment:
    """Writes draft steps with the draft model.

    Args:
        spec: the draft model.
        batching: initial BatchingParams as a dict (Serve's `user_config` replaces it).
        backend_factory: builds the backend from `spec` (default `create_backend`; tests inject fakes).
        stall_timeout_s: a backend call running longer fails the health check (see CallWatchdog).
    """

    def __init__(self, spec: ModelSpec, batching: dict[str, Any] | None = None,
                 backend_factory: BackendFactory | None = None, stall_timeout_s: float = 600.0) -> None:
        self._backend = (backend_factory or create_backend)(spec)
        self._watchdog = CallWatchdog(stall_timeout_s)
        self._metrics = CallMetrics("drafter")
        self.reconfigure(batching or {})

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply new batching settings (Serve calls this on a `user_config` change)."""
        apply_batching(user_config, self._draft_batch)

    async def draft_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        """The next step after each context (see `Drafter.draft_steps`)."""
        return await submit(self._backend, [(ctx, params) for ctx in ctxs], self._draft_batch, self._draft)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _draft_batch(self, calls: list[list[tuple[StepContext, StepParams]]]) -> list[Any]:
        return await self._draft(calls)

    async def _draft(self, calls: list[list[tuple[StepContext, StepParams]]]) -> list[Any]:
        t0 = time.perf_counter()
        with self._watchdog.track():
            split = await run_merged(calls, lambda flat: generate_steps_each(self._backend, flat))
        self._metrics.observe("draft", time.perf_counter() - t0, calls=len(calls), items=sum(map(len, calls)))
        return split

    def backend_stats(self) -> dict[str, Any]:
        """Cumulative counters of the backend (prompt/cached/generated tokens, forward calls)."""
        return asdict(self._backend.stats())

    async def check_health(self) -> None:
        """Serve's periodic health check: raise when the engine cannot serve or a call has stalled."""
        self._watchdog.check()
        await self._backend.check_health()
