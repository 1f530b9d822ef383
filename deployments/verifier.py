"""Verifier deployment: the target-model replica; `@serve.batch` merges steps of concurrent requests.

Each public method enqueues one call; Serve's batcher hands a list of calls to the `_*_batch`
handlers, which flatten them into ONE backend call and split the results back per call. Batch size
and wait come from `user_config` ({"max_batch_size", "batch_wait_timeout_s"}) and change on
`reconfigure` without a restart.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from ray import serve

from cluster.backends import ModelBackend, create_backend
from cluster.backends.roles import generate_steps_each, score_steps_each
from cluster.config.schema import ModelSpec
from cluster.errors import InvalidRequestError
from cluster.reasoning.types import StepContext, StepOutput, StepParams, StepScore
from deployments.metrics import CallMetrics

BackendFactory = Callable[[ModelSpec], ModelBackend]
Item = TypeVar("Item")
Out = TypeVar("Out")
_BATCH_LOG = 4096  # recent batches kept for `batch_sizes`


class BatchingParams(BaseModel):
    """The verifier's `user_config`."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(8, gt=0, description="Most calls merged into one backend call.")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="How long a batch waits to fill.")


def _unwrap(result: Any) -> Any:
    if isinstance(result, BaseException):
        raise result
    return result


@serve.deployment(name="Verifier")
class VerifierDeployment:
    """Scores draft steps and writes target steps with the target model.

    Args:
        spec: the target model.
        batching: initial BatchingParams as a dict (Serve's `user_config` replaces it).
        backend_factory: builds the backend from `spec` (default `create_backend`).
    """

    def __init__(self, spec: ModelSpec, batching: dict[str, Any] | None = None,
                 backend_factory: BackendFactory | None = None) -> None:
        self._backend = (backend_factory or create_backend)(spec)
        self._metrics = CallMetrics("verifier")
        self._batches: deque[tuple[str, int, int]] = deque(maxlen=_BATCH_LOG)
        self.reconfigure(batching or {})

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply new batching settings (Serve calls this on a `user_config` change)."""
        params = BatchingParams.model_validate(user_config)
        for handler in (self._score_batch, self._target_batch):
            handler.set_max_batch_size(params.max_batch_size)
            handler.set_batch_wait_timeout_s(params.batch_wait_timeout_s)

    async def score_steps(self, items: Sequence[tuple[StepContext, str]], delimiter: str) -> list[StepScore]:
        """0–9 scores of candidate steps (see `Verifier.score_steps`)."""
        return _unwrap(await self._score_batch([(ctx, cand, delimiter) for ctx, cand in items]))

    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        """The target's next step after each context (see `Verifier.target_steps`)."""
        return _unwrap(await self._target_batch([(ctx, params) for ctx in ctxs]))

    async def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the target's tokenizer (async: runs on the replica's loop, not a thread pool)."""
        return self._backend.count_tokens(text)

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _score_batch(self, calls: list[list[tuple[StepContext, str, str]]]) -> list[Any]:
        return await self._run_merged("score", calls, lambda flat: score_steps_each(self._backend, flat))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _target_batch(self, calls: list[list[tuple[StepContext, StepParams]]]) -> list[Any]:
        return await self._run_merged("target", calls, lambda flat: generate_steps_each(self._backend, flat))

    async def _run_merged(self, op: str, calls: list[list[Item]],
                          fn: Callable[[list[Item]], Awaitable[list[Out]]]) -> list[list[Out] | Exception]:
        """One backend call for all `calls`; the results split back per call.

        A call the backend rejects (InvalidRequestError, e.g. a prompt too long) must not fail the
        requests it shares a batch with, so on that error each call is retried alone.
        """
        flat = [item for c in calls for item in c]
        t0 = time.perf_counter()
        try:
            outs = await fn(flat)
        except InvalidRequestError as e:
            if len(calls) == 1:
                return [e]
            return [await self._run_alone(fn, c) for c in calls]
        self._batches.append((op, len(calls), len(flat)))
        self._metrics.observe(op, time.perf_counter() - t0, calls=len(calls), items=len(flat))
        split, start = [], 0
        for c in calls:
            split.append(outs[start:start + len(c)])
            start += len(c)
        return split

    @staticmethod
    async def _run_alone(fn: Callable[[list[Item]], Awaitable[list[Out]]], call: list[Item]) -> list[Out] | Exception:
        try:
            return await fn(call)
        except InvalidRequestError as e:
            return e

    def batch_sizes(self, op: str | None = None) -> list[int]:
        """Calls merged per backend call, oldest first (recent batches; `op` = "score" or "target")."""
        return [calls for o, calls, _ in self._batches if op is None or o == op]

    def backend_stats(self) -> dict[str, Any]:
        return asdict(self._backend.stats())

    async def check_health(self) -> None:
        """Serve's periodic health check: raise when the engine cannot serve."""
        await self._backend.check_health()
