"""Merging the calls Serve's `@serve.batch` hands over into one backend call, and splitting the results back."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from cluster.backends import ModelBackend
from cluster.errors import InvalidRequestError

Item = TypeVar("Item")
Out = TypeVar("Out")


class BatchingParams(BaseModel):
    """A model deployment's `user_config`: how concurrent calls are batched."""

    model_config = ConfigDict(extra="forbid")

    max_batch_size: int = Field(8, gt=0, description="Most calls merged into one backend call.")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="How long a batch waits to fill.")


def apply_batching(user_config: dict[str, Any], *handlers: Any) -> BatchingParams:
    """Validate `user_config` and set it on `@serve.batch` handlers (no restart needed)."""
    params = BatchingParams.model_validate(user_config)
    for handler in handlers:
        handler.set_max_batch_size(params.max_batch_size)
        handler.set_batch_wait_timeout_s(params.batch_wait_timeout_s)
    return params


async def submit(backend: ModelBackend, call: list[Item],
                 batched: Callable[[list[Item]], Awaitable[Any]],
                 direct: Callable[[list[list[Item]]], Awaitable[list[Any]]]) -> Any:
    """Run one call of a model deployment: through its `@serve.batch` handler, or straight to the backend.

    A backend that merges concurrent calls itself (`merges_concurrent_calls`, vLLM) gets the call at once
    through `direct` (the handler's body): Serve's batcher runs one batch at a time, so every call that
    arrived while a batch ran would wait for it to end, and the engine would never see the steps of
    concurrent requests together. Other backends get calls merged by `batched`.

    Raises:
        Whatever the backend raised for this call.
    """
    if backend.merges_concurrent_calls:
        return unwrap((await direct([call]))[0])
    return unwrap(await batched(call))


def unwrap(result: Any) -> Any:
    """A batch handler's per-call result: raise it when it is an exception."""
    if isinstance(result, BaseException):
        raise result
    return result


async def run_merged(calls: list[list[Item]],
                     fn: Callable[[list[Item]], Awaitable[list[Out]]]) -> list[list[Out] | Exception]:
    """One backend call for all `calls`; the results split back per call.

    A call the backend rejects (InvalidRequestError, e.g. a prompt too long) must not fail the
    requests it shares a batch with, so on that error each call is retried alone.
    """
    flat = [item for c in calls for item in c]
    try:
        outs = await fn(flat)
    except InvalidRequestError as e:
        if len(calls) == 1:
            return [e]
        return [await _run_alone(fn, c) for c in calls]
    split: list[list[Out] | Exception] = []
    start = 0
    for c in calls:
        split.append(outs[start:start + len(c)])
        start += len(c)
    return split


async def _run_alone(fn: Callable[[list[Item]], Awaitable[list[Out]]], call: list[Item]) -> list[Out] | Exception:
    try:
        return await fn(call)
    except InvalidRequestError as e:
        return e
