"""Drafter, Verifier and Embedder implemented over DeploymentHandles: remote calls with deadlines and typed errors.

The methods in `cluster.reasoning.methods` run unchanged against these adapters. Every call has a
deadline; Ray failures become the engine's exceptions so that the method code decides what they
mean (a failed drafter degrades the request to target-only; a failed verifier fails it):

    replica raised InvalidRequestError (e.g. PromptTooLongError) → re-raised as is (a 4xx)
    replica raised BackendError                                → re-raised as is
    replica raised anything else                                → BackendError
    deadline passed                                             → BackendTimeoutError
    replica dead / unreachable / overloaded                     → BackendUnavailableError
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from typing import Any

from ray.exceptions import RayTaskError
from ray.serve.handle import DeploymentHandle, DeploymentResponse

from cluster.errors import BackendError, BackendTimeoutError, BackendUnavailableError, InvalidRequestError
from cluster.reasoning.interfaces import Drafter, Verifier
from cluster.reasoning.types import EquivalenceScore, StepContext, StepOutput, StepParams, StepScore
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


class HandleDrafter(Drafter):
    """Draft steps from the Drafter deployment."""

    def __init__(self, handle: DeploymentHandle, timeout_s: float) -> None:
        self._handle = handle
        self._timeout_s = timeout_s

    async def draft_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        return await call(self._handle.draft_steps.remote(list(ctxs), params), "drafter", self._timeout_s)


class HandleVerifier(Verifier):
    """Judge and target steps from the Verifier deployment (batched across requests there)."""

    def __init__(self, handle: DeploymentHandle, timeout_s: float) -> None:
        self._handle = handle
        self._timeout_s = timeout_s

    async def score_steps(self, items: Sequence[tuple[StepContext, str]], delimiter: str) -> list[StepScore]:
        return await call(self._handle.score_steps.remote(list(items), delimiter), "verifier", self._timeout_s)

    async def equivalence_steps(self, items: Sequence[tuple[StepContext, str, str]],
                                delimiter: str) -> list[EquivalenceScore]:
        return await call(self._handle.equivalence_steps.remote(list(items), delimiter), "verifier", self._timeout_s)

    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        return await call(self._handle.target_steps.remote(list(ctxs), params), "verifier", self._timeout_s)

    async def count_tokens(self, text: str) -> int:
        """Tokens of `text` in the target's tokenizer."""
        return await call(self._handle.count_tokens.remote(text), "verifier", self._timeout_s)


class HandleEmbedder(Embedder):
    """Sentence embeddings from the Embedder deployment (batched across requests there)."""

    def __init__(self, handle: DeploymentHandle, timeout_s: float) -> None:
        self._handle = handle
        self._timeout_s = timeout_s

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        return await call(self._handle.embed.remote(list(texts)), "embedder", self._timeout_s)

    async def check_ready(self) -> None:
        """Raise InvalidRequestError (naming step_verifier) when the deployment has no model loaded."""
        await call(self._handle.check_ready.remote(), "embedder", self._timeout_s)
