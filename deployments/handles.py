"""Drafter, Verifier and Embedder implemented over DeploymentHandles: remote calls with deadlines and typed errors.

The methods in `cluster.reasoning.methods` run unchanged against these adapters. Every call has a
deadline; Ray failures become the engine's exceptions so that the method code decides what they
mean (a failed drafter degrades the request to target-only; a failed verifier fails it):

    replica raised InvalidRequestError (e.g. PromptTooLongError) → re-raised as is (a 4xx)
    replica raised BackendError                                → re-raised as is
    replica raised anything else                                → BackendError
    deadline passed                                             → BackendTimeoutError
    replica dead / unreachable / overloaded                     → BackendUnavailableError
    no running replica (HealthMonitor)                          → BackendUnavailableError at once, for the calls
                                                                  in flight and new ones, until one runs again
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from cluster.errors import BackendError, BackendTimeoutError, BackendUnavailableError, InvalidRequestError
from cluster.reasoning.interfaces import Drafter, Verifier
from cluster.reasoning.types import EquivalenceScore, StepContext, StepOutput, StepParams, StepScore, VerdictScore
from cluster.reasoning.verifiers import Embedder

logger = logging.getLogger(__name__)

_MAX_MESSAGE = 300  # remote error messages are cut: a client never sees a remote traceback


def _short(text: str) -> str:
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:_MAX_MESSAGE]


def _remote_error(role: str, cause: BaseException | None) -> Exception:
    if isinstance(cause, InvalidRequestError | BackendError):
        return cause
    if cause is None:
        return BackendError(f"{role} failed")
    return BackendError(f"{role} failed: {type(cause).__name__}: {_short(str(cause))}")


async def call(response: DeploymentResponse, role: str, timeout_s: float) -> Any:
    """Await a handle call with a deadline, translating Ray errors (see the module docstring)."""
    try:
        return await asyncio.wait_for(response, timeout_s)
    except asyncio.CancelledError:
        response.cancel()
        raise
    except RayTaskError as e:  # checked first: it also subclasses the remote exception's type
        raise _remote_error(role, e.cause) from None
    except TimeoutError:
        response.cancel()
        raise BackendTimeoutError(f"{role} did not answer within {timeout_s:g}s") from None
    except (InvalidRequestError, BackendError):
        raise
    except Exception as e:
        logger.warning("%s unavailable: %s", role, _short(repr(e)))
        raise BackendUnavailableError(f"{role} unavailable ({type(e).__name__})") from e


class Remote:
    """Calls to one deployment with a deadline, failing fast while the deployment has no running replica.

    Serve keeps a call to a replica that died waiting (until the deadline) and queues new ones until a new
    replica runs, so the ingress's HealthMonitor watches the deployment's replicas and `trip`s its Remote when
    none is running: the calls in flight then fail at once with BackendUnavailableError, and so do new ones,
    until a replica runs again (`reset`).

    Args:
        handle: the deployment's handle.
        role: its name in error messages ("drafter", "verifier", "embedder").
        deployment: the Serve deployment name ("Drafter", ...).
        timeout_s: deadline of each call.
    """

    def __init__(self, handle: DeploymentHandle, role: str, deployment: str, timeout_s: float) -> None:
        self._handle = handle
        self.role = role
        self.deployment = deployment
        self._timeout_s = timeout_s
        self._down: str | None = None  # why the deployment is down
        self._waiters: set[asyncio.Future[Any]] = set()

    async def __call__(self, method: str, *args: Any) -> Any:
        if self._down is not None:
            raise BackendUnavailableError(self._down)
        task = asyncio.ensure_future(call(getattr(self._handle, method).remote(*args), self.role, self._timeout_s))
        waiter: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        task.add_done_callback(lambda t: _settle(waiter, t))
        self._waiters.add(waiter)
        try:
            return await waiter
        finally:
            self._waiters.discard(waiter)
            task.cancel()  # no-op when done; cancels the remote call when tripped or cancelled

    async def check_health(self, timeout_s: float) -> None:
        """Raise BackendError when the deployment is marked down or its health check fails or is late."""
        if self._down is not None:
            raise BackendUnavailableError(self._down)
        await call(self._handle.check_health.remote(), self.role, timeout_s)

    def trip(self, reason: str) -> None:
        """Mark the deployment down: its calls in flight and new ones fail with BackendUnavailableError."""
        self._down = f"{self.role} unavailable: {reason}"
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_exception(BackendUnavailableError(self._down))

    def reset(self) -> None:
        self._down = None

    @property
    def down(self) -> bool:
        return self._down is not None


def _settle(waiter: asyncio.Future[Any], task: asyncio.Future[Any]) -> None:
    if waiter.done():
        return
    if task.cancelled():
        waiter.cancel()
    elif task.exception() is not None:
        waiter.set_exception(task.exception())
    else:
        waiter.set_result(task.result())


FailedDeployments = Callable[[], Awaitable[set[str]]]


class HealthMonitor:
    """Every `interval_s`, asks which deployments have no running replica through a fault (Serve's controller
    knows: it health-checks the replicas); `failures` answers in a row naming a deployment trip its Remote, one
    that does not resets it. (It never calls the replicas themselves: a busy replica queues calls, so a probe
    would time out on a healthy one.)

    Args:
        remotes: the deployments to watch.
        failed: returns the names of the deployments down through a fault; raising counts as no answer.
        interval_s: the period (`server.health_probe_interval_s`).
        failures: answers in a row that mark a deployment down.
    """

    def __init__(self, remotes: Sequence[Remote], failed: FailedDeployments, interval_s: float,
                 failures: int = 2) -> None:
        self._remotes = list(remotes)
        self._failed = failed
        self._interval_s = interval_s
        self._failures = failures
        self._missing = {r.deployment: 0 for r in self._remotes}
        self._task: asyncio.Task[None] | None = None

    def ensure_started(self) -> None:
        """Start watching (once, on the running loop)."""
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def _run(self) -> None:
        while True:
            await self.check()
            await asyncio.sleep(self._interval_s)

    async def check(self) -> None:
        """One look at the replicas; trip or reset each Remote."""
        try:
            failed = await self._failed()
        except Exception as e:  # the controller is busy or restarting: no verdict this time
            logger.warning("could not read the replica states: %s", _short(repr(e)))
            return
        for remote in self._remotes:
            if remote.deployment not in failed:
                if remote.down:
                    logger.warning("%s is back", remote.role)
                self._missing[remote.deployment] = 0
                remote.reset()
                continue
            self._missing[remote.deployment] += 1
            if self._missing[remote.deployment] >= self._failures and not remote.down:
                logger.warning("%s has no running replica: marked down", remote.role)
                remote.trip("no running replica (it died or is restarting); retry later")


class HandleDrafter(Drafter):
    """Draft steps from the Drafter deployment."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote

    async def draft_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        return await self._remote("draft_steps", list(ctxs), params)


class HandleVerifier(Verifier):
    """Judge and target steps from the Verifier deployment (batched across requests there)."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote

    async def score_steps(self, items: Sequence[tuple[StepContext, str]], delimiter: str) -> list[StepScore]:
        return await self._remote("score_steps", list(items), delimiter)

    async def equivalence_steps(self, items: Sequence[tuple[StepContext, str, str]],
                                delimiter: str) -> list[EquivalenceScore]:
        return await self._remote("equivalence_steps", list(items), delimiter)

    async def verdict_solutions(self, items: Sequence[tuple[str, str]]) -> list[VerdictScore]:
        return await self._remote("verdict_solutions", list(items))

    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        return await self._remote("target_steps", list(ctxs), params)

    async def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the target's tokenizer."""
        return await self._remote("count_tokens", text)


class HandleEmbedder(Embedder):
    """Sentence embeddings from the Embedder deployment (batched across requests there)."""

    def __init__(self, remote: Remote) -> None:
        self._remote = remote

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        return await self._remote("embed", list(texts))

    async def check_ready(self) -> None:
        """Raise InvalidRequestError (naming step_verifier) when the deployment has no model loaded."""
        await self._remote("check_ready")
