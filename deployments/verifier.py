"""Verifier deployment: the target-model replica; `@serve.batch` merges steps of concurrent requests.

Each public method enqueues one call; Serve's batcher hands a list of calls to the `_*_batch`
handlers, which flatten them into ONE backend call and split the results back per call. Batch size
and wait come from `user_config` ({"max_batch_size", "batch_wait_timeout_s"}) and change on
`reconfigure` without a restart. A backend that merges concurrent calls itself (vLLM) gets each call
at once instead (see `deployments.batching.submit`).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any

from ray import serve

from cluster.backends import ModelBackend, create_backend
from cluster.backends.roles import equivalence_steps_each, generate_steps_each, score_steps_each, verdict_solutions_each
from cluster.config.schema import ModelSpec
from cluster.reasoning.types import EquivalenceScore, StepContext, StepOutput, StepParams, StepScore, VerdictScore
from deployments.batching import apply_batching, run_merged, submit
from deployments.metrics import CallMetrics
from deployments.watchdog import CallWatchdog

BackendFactory = Callable[[ModelSpec], ModelBackend]
_BATCH_LOG = 4096  # recent batches kept for `batch_sizes` / `batch_items`


@serve.deployment(name="Verifier")
class VerifierDeployment:
    """Scores draft steps, judges step equivalence and whole solutions, and writes target steps with the target
    model.

    Args:
        spec: the target model.
        batching: initial BatchingParams as a dict (Serve's `user_config` replaces it).
        backend_factory: builds the backend from `spec` (default `create_backend`).
        stall_timeout_s: a backend call running longer fails the health check (see CallWatchdog).
    """

    def __init__(self, spec: ModelSpec, batching: dict[str, Any] | None = None,
                 backend_factory: BackendFactory | None = None, stall_timeout_s: float = 600.0) -> None:
        self._backend = (backend_factory or create_backend)(spec)
        self._watchdog = CallWatchdog(stall_timeout_s)
        self._metrics = CallMetrics("verifier")
        self._batches: deque[tuple[str, int, int]] = deque(maxlen=_BATCH_LOG)
        self.reconfigure(batching or {})

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply new batching settings (Serve calls this on a `user_config` change)."""
        apply_batching(user_config, self._score_batch, self._equivalence_batch, self._verdict_batch,
                       self._target_batch)

    async def score_steps(self, items: Sequence[tuple[StepContext, str]], delimiter: str) -> list[StepScore]:
        """0–9 scores of candidate steps (see `Verifier.score_steps`)."""
        call = [(ctx, cand, delimiter) for ctx, cand in items]
        return await submit(self._backend, call, self._score_batch, self._score)

    async def equivalence_steps(self, items: Sequence[tuple[StepContext, str, str]],
                                delimiter: str) -> list[EquivalenceScore]:
        """P(aligned) of each step pair (see `Verifier.equivalence_steps`)."""
        call = [(ctx, a, b, delimiter) for ctx, a, b in items]
        return await submit(self._backend, call, self._equivalence_batch, self._equivalence)

    async def verdict_solutions(self, items: Sequence[tuple[str, str]]) -> list[VerdictScore]:
        """P(yes) that each (question, solution) ends with the correct answer (see `Verifier.verdict_solutions`)."""
        return await submit(self._backend, list(items), self._verdict_batch, self._verdict)

    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        """The target's next step after each context (see `Verifier.target_steps`)."""
        return await submit(self._backend, [(ctx, params) for ctx in ctxs], self._target_batch, self._target)

    async def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the target's tokenizer (async: runs on the replica's loop, not a thread pool)."""
        return self._backend.count_tokens(text)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _score_batch(self, calls: list[list[tuple[StepContext, str, str]]]) -> list[Any]:
        return await self._score(calls)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _equivalence_batch(self, calls: list[list[tuple[StepContext, str, str, str]]]) -> list[Any]:
        return await self._equivalence(calls)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _verdict_batch(self, calls: list[list[tuple[str, str]]]) -> list[Any]:
        return await self._verdict(calls)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _target_batch(self, calls: list[list[tuple[StepContext, StepParams]]]) -> list[Any]:
        return await self._target(calls)

    async def _score(self, calls: list[list[tuple[StepContext, str, str]]]) -> list[Any]:
        return await self._run_merged("score", calls, lambda flat: score_steps_each(self._backend, flat))

    async def _equivalence(self, calls: list[list[tuple[StepContext, str, str, str]]]) -> list[Any]:
        return await self._run_merged("equivalence", calls,
                                      lambda flat: equivalence_steps_each(self._backend, flat))

    async def _verdict(self, calls: list[list[tuple[str, str]]]) -> list[Any]:
        return await self._run_merged("verdict", calls, lambda flat: verdict_solutions_each(self._backend, flat))

    async def _target(self, calls: list[list[tuple[StepContext, StepParams]]]) -> list[Any]:
        return await self._run_merged("target", calls, lambda flat: generate_steps_each(self._backend, flat))

    async def _run_merged(self, op: str, calls: list[list[Any]],
                          fn: Callable[[list[Any]], Awaitable[list[Any]]]) -> list[Any]:
        t0 = time.perf_counter()
        with self._watchdog.track():
            split = await run_merged(calls, fn)
        items = sum(len(c) for c in calls)
        self._batches.append((op, len(calls), items))
        self._metrics.observe(op, time.perf_counter() - t0, calls=len(calls), items=items)
        return split

    def batch_sizes(self, op: str | None = None) -> list[int]:
        """Calls merged per backend call, oldest first (recent batches; `op` = "score", "equivalence", "verdict"
        or "target").

        Always 1 on a backend that merges concurrent calls itself (vLLM): each call goes to it alone.
        """
        return [calls for o, calls, _ in self._batches if op is None or o == op]

    def batch_items(self, op: str | None = None) -> list[int]:
        """Items (steps, pairs, solutions) per backend call, in the order of `batch_sizes`."""
        return [items for o, _, items in self._batches if op is None or o == op]

    def backend_stats(self) -> dict[str, Any]:
        return asdict(self._backend.stats())

    async def check_health(self) -> None:
        """Serve's periodic health check: raise when the engine cannot serve or a call has stalled."""
        self._watchdog.check()
        await self._backend.check_health()
