"""Backend factories that inject faults into replicas (pickled by reference: replicas import this module).

FAIL_MARKER / SLOW_MARKER / WEDGE_MARKER in a question make the wrapped target fail, stall SLOW_S or hang
(a wedged engine), so one app serves healthy and faulty requests side by side.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from cluster.backends import ModelBackend, create_backend
from cluster.backends.base import Generation, SamplingParams, TokenDistribution
from cluster.config.schema import ModelSpec
from cluster.errors import BackendError
from cluster.reasoning.types import ChatMessage

FAIL_MARKER = "VERIFIER-FAIL"
SLOW_MARKER = "VERIFIER-SLOW"
WEDGE_MARKER = "VERIFIER-WEDGE"
SLOW_S = 5.0
WEDGE_S = 3600.0


class FailingBackend(ModelBackend):
    """A model that fails every call (a broken drafter; its health check passes, so the replica starts)."""

    @property
    def max_model_len(self) -> int:
        return 4096

    def render_chat(self, messages: Sequence[ChatMessage], assistant_prefix: str | None = None) -> str:
        return "\n".join(m.content for m in messages) + (assistant_prefix or "")

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Generation]:
        raise BackendError("injected drafter failure")

    async def next_token_distribution(self, prompts: Sequence[str], top_k: int = 10) -> list[TokenDistribution]:
        raise BackendError("injected drafter failure")


class FaultyTarget(ModelBackend):
    """The real backend, except for prompts carrying FAIL_MARKER (raise), SLOW_MARKER (stall SLOW_S) or
    WEDGE_MARKER (hang)."""

    def __init__(self, inner: ModelBackend) -> None:
        self._inner = inner
        self.merges_concurrent_calls = inner.merges_concurrent_calls

    @property
    def max_model_len(self) -> int:
        return self._inner.max_model_len

    def render_chat(self, messages: Sequence[ChatMessage], assistant_prefix: str | None = None) -> str:
        return self._inner.render_chat(messages, assistant_prefix)

    def count_tokens(self, text: str) -> int:
        return self._inner.count_tokens(text)

    async def _fault(self, prompts: Sequence[str]) -> None:
        if any(FAIL_MARKER in p for p in prompts):
            raise BackendError("injected verifier failure")
        if any(SLOW_MARKER in p for p in prompts):
            await asyncio.sleep(SLOW_S)
        if any(WEDGE_MARKER in p for p in prompts):
            await asyncio.sleep(WEDGE_S)

    async def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Generation]:
        await self._fault(prompts)
        return await self._inner.generate(prompts, params)

    async def next_token_distribution(self, prompts: Sequence[str], top_k: int = 10) -> list[TokenDistribution]:
        await self._fault(prompts)
        return await self._inner.next_token_distribution(prompts, top_k)


def failing_backend(spec: ModelSpec) -> ModelBackend:
    return FailingBackend()


def faulty_target(spec: ModelSpec) -> ModelBackend:
    return FaultyTarget(create_backend(spec))
