"""The in-process engine: both models loaded in this process, one request at a time or concurrently."""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
from typing import Any

from pydantic import ValidationError

from cluster.backends import ModelBackend, create_backend
from cluster.backends.embedding import HFEmbedder, create_embedder
from cluster.backends.roles import BackendDrafter, BackendVerifier
from cluster.config.loader import format_validation_error
from cluster.config.schema import (
    ENGINE_WIDE_SPECULATION,
    AppArgs,
    EmbeddingVerifierConfig,
    ModelSpec,
    ReasoningParams,
    RequestLimits,
)
from cluster.errors import InvalidRequestError, ModelNotFoundError
from cluster.reasoning.methods import MethodFn, get_method
from cluster.reasoning.run import StepCallback
from cluster.reasoning.types import ReasoningResult
from cluster.reasoning.verifiers import Embedder

logger = logging.getLogger(__name__)


def resolve_params(defaults: ReasoningParams, overrides: dict[str, Any]) -> ReasoningParams:
    """Request knobs over the configured defaults.

    Raises:
        InvalidRequestError: unknown knob or out-of-range value, naming the field.
    """
    try:
        return defaults.with_overrides(overrides)
    except ValidationError as e:
        first = e.errors()[0]
        field = ".".join(str(p) for p in first["loc"]) or None
        raise InvalidRequestError(format_validation_error(e), field=field) from e


def validate_question(question: str, max_chars: int) -> str:
    """The question, stripped; empty or over-long questions are rejected before any model runs."""
    if not isinstance(question, str) or not question.strip():
        raise InvalidRequestError("question is empty", field="question")
    if len(question) > max_chars:
        raise InvalidRequestError(f"question has {len(question)} characters; the limit is {max_chars}",
                                  field="question")
    return question.strip()


def check_limits(params: ReasoningParams, limits: RequestLimits) -> None:
    """Reject knobs over the server's caps (budgets and parallel candidates) before any model runs.

    Raises:
        InvalidRequestError: naming the first knob over its cap.
    """
    caps = [("max_total_tokens", params.max_total_tokens, limits.total_tokens, "total_tokens"),
            ("max_steps", params.max_steps, limits.steps, "steps")]
    if params.method == "best_of_n":
        caps.append(("best_of_n.n_max", params.best_of_n.n_max, limits.candidates, "candidates"))
    if params.method == "ssr":
        caps.append(("ssr.k", params.ssr.k, limits.candidates, "candidates"))
    for field, value, cap, key in caps:
        if value > cap:
            raise InvalidRequestError(f"{field} is {value}; this server allows at most {cap} "
                                      f"(server.limits.{key})", field=field)


def check_token_speculation(params: ReasoningParams, target: ModelSpec) -> None:
    """Reject `token_speculation: false` (the request's, or the defaults in force) on a target whose engine
    speculates on every request (vLLM): serving it with speculation would silently ignore the knob.

    Raises:
        InvalidRequestError: naming token_speculation.
    """
    if not params.token_speculation and target.speculation_scope == "engine":
        raise InvalidRequestError(f"token_speculation: {ENGINE_WIDE_SPECULATION}", field="token_speculation")


def check_params(params: ReasoningParams, limits: RequestLimits, target: ModelSpec) -> None:
    """Reject params the server cannot honour, before any model runs: the checks every request entry point
    (the in-process engine, the served ingress) makes on its resolved params.

    Raises:
        InvalidRequestError: a knob over its cap (`check_limits`), or token_speculation false on a target
            that speculates on every request (`check_token_speculation`).
    """
    check_limits(params, limits)
    check_token_speculation(params, target)


def load_embedder(cfg: EmbeddingVerifierConfig) -> HFEmbedder:
    """Load the embedding step verifier's model.

    Raises:
        InvalidRequestError: naming step_verifier: the model is not installed or not found.
    """
    try:
        return create_embedder(cfg.path, cfg.max_length)
    except ModelNotFoundError as e:
        raise InvalidRequestError(f"step_verifier 'embedding' is unavailable: {e}", field="step_verifier") from e


def uses_embedder(method: MethodFn, params: ReasoningParams) -> bool:
    """Whether running `method` with `params` judges steps by embeddings (it then takes an `embedder`)."""
    return params.step_verifier == "embedding" and "embedder" in inspect.signature(method).parameters


class Engine:
    """Draft and target backends plus the method loop, without Ray.

    Args:
        args: the validated configuration.
        draft_backend / target_backend: injected backends (tests); loaded from `args` when None.
        embedder: injected embedding model (tests); else `args.verifiers.embedding`, loaded by the first request
            that asks for step_verifier "embedding" (none configured: such a request is invalid).
    """

    def __init__(self, args: AppArgs, *, draft_backend: ModelBackend | None = None,
                 target_backend: ModelBackend | None = None, embedder: Embedder | None = None) -> None:
        self.args = args
        self.draft_backend = draft_backend or create_backend(args.draft)
        self.target_backend = target_backend or create_backend(args.target)
        self.drafter = BackendDrafter(self.draft_backend)
        self.verifier = BackendVerifier(self.target_backend)
        self.embedder = embedder
        self._embedder_lock = asyncio.Lock()

    async def reason(self, question: str, overrides: dict[str, Any] | None = None,
                     on_step: StepCallback | None = None) -> ReasoningResult:
        """Answer one question with the configured method (or the one in `overrides`).

        Raises:
            InvalidRequestError: bad question or knobs, or a prompt longer than a model's context.
        """
        question = validate_question(question, self.args.server.limits.prompt_chars)
        params = resolve_params(self.args.reasoning, overrides or {})
        check_params(params, self.args.server.limits, self.args.target)
        method = get_method(params.method)
        if uses_embedder(method, params):
            method = functools.partial(method, embedder=await self._load_embedder())
        return await method(question, self.drafter, self.verifier, params, on_step)

    async def _load_embedder(self) -> Embedder | None:
        """The embedding model, loaded once on first use (off the event loop); None when none is configured."""
        cfg = self.args.verifiers.embedding
        async with self._embedder_lock:
            if self.embedder is None and cfg is not None:
                self.embedder = await asyncio.to_thread(load_embedder, cfg)
        return self.embedder

    async def close(self) -> None:
        await self.draft_backend.close()
        await self.target_backend.close()
        if isinstance(self.embedder, HFEmbedder):
            await self.embedder.close()
