"""The in-process engine: both models loaded in this process, one request at a time or concurrently."""

from __future__ import annotations

import logging
from typing import Any

from pydantic import ValidationError

from cluster.backends import ModelBackend, create_backend
from cluster.backends.roles import BackendDrafter, BackendVerifier
from cluster.config.loader import format_validation_error
from cluster.config.schema import AppArgs, ReasoningParams
from cluster.errors import InvalidRequestError
from cluster.reasoning.methods import get_method
from cluster.reasoning.run import StepCallback
from cluster.reasoning.types import ReasoningResult

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


class Engine:
    """Draft and target backends plus the method loop, without Ray.

    Args:
        args: the validated configuration.
        draft_backend / target_backend: injected backends (tests); loaded from `args` when None.
    """

    def __init__(self, args: AppArgs, *, draft_backend: ModelBackend | None = None,
                 target_backend: ModelBackend | None = None) -> None:
        self.args = args
        self.draft_backend = draft_backend or create_backend(args.draft)
        self.target_backend = target_backend or create_backend(args.target)
        self.drafter = BackendDrafter(self.draft_backend)
        self.verifier = BackendVerifier(self.target_backend)

    async def reason(self, question: str, overrides: dict[str, Any] | None = None,
                     on_step: StepCallback | None = None) -> ReasoningResult:
        """Answer one question with the configured method (or the one in `overrides`).

        Raises:
            InvalidRequestError: bad question or knobs, or a prompt longer than a model's context.
        """
        question = validate_question(question, self.args.server.max_prompt_chars)
        params = resolve_params(self.args.reasoning, overrides or {})
        method = get_method(params.method)
        return await method(question, self.drafter, self.verifier, params, on_step)

    async def close(self) -> None:
        await self.draft_backend.close()
        await self.target_backend.close()
