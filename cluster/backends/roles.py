"""The Drafter and Verifier roles implemented on a ModelBackend (in-process, and inside replicas)."""

from __future__ import annotations

import time
from collections.abc import Sequence

from cluster.backends.base import ModelBackend, SamplingParams
from cluster.reasoning import prompts
from cluster.reasoning.interfaces import Drafter, Verifier
from cluster.reasoning.scoring import score_from_distribution
from cluster.reasoning.types import StepContext, StepOutput, StepParams, StepScore

JUDGE_TOP_K = 10  # SpecReason reads the top-10 logprobs of the judge's first token


def _sampling(params: StepParams) -> SamplingParams:
    return SamplingParams(params.max_tokens, params.temperature, params.top_p, (params.delimiter,), params.seed)


async def generate_steps(backend: ModelBackend, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
    """Write the next step after each context with `backend`, in one batched call."""
    rendered = [backend.render_chat(*prompts.continuation(c, params.delimiter)) for c in ctxs]
    t0 = time.perf_counter()
    outs = await backend.generate(rendered, [_sampling(params)] * len(rendered))
    dt = time.perf_counter() - t0
    return [StepOutput(o.text.strip(), o.num_tokens, o.finish_reason, dt) for o in outs]


class BackendDrafter(Drafter):
    """Draft steps from a local draft-model backend."""

    def __init__(self, backend: ModelBackend) -> None:
        self.backend = backend

    async def draft_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        return await generate_steps(self.backend, ctxs, params)


class BackendVerifier(Verifier):
    """Judge and target steps from a local target-model backend."""

    def __init__(self, backend: ModelBackend) -> None:
        self.backend = backend

    async def score_steps(self, items: Sequence[tuple[StepContext, str]], delimiter: str) -> list[StepScore]:
        rendered = [self.backend.render_chat(*prompts.judge(c, cand, delimiter)) for c, cand in items]
        t0 = time.perf_counter()
        dists = await self.backend.next_token_distribution(rendered, JUDGE_TOP_K)
        dt = time.perf_counter() - t0
        return [score_from_distribution(d.top, dt) for d in dists]

    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        return await generate_steps(self.backend, ctxs, params)
