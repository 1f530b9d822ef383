"""The Drafter and Verifier roles implemented on a ModelBackend (in-process, and inside replicas)."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TypeVar

from cluster.backends.base import ModelBackend, SamplingParams
from cluster.reasoning import prompts
from cluster.reasoning.interfaces import Drafter, Verifier
from cluster.reasoning.scoring import equivalence_from_distribution, score_from_distribution, verdict_from_distribution
from cluster.reasoning.types import (
    ChatMessage,
    EquivalenceScore,
    StepContext,
    StepOutput,
    StepParams,
    StepScore,
    VerdictScore,
)

JUDGE_TOP_K = 10  # SpecReason reads the top-10 logprobs of the judge's first token
Verdict = TypeVar("Verdict")  # what a judge reading returns: StepScore, EquivalenceScore, VerdictScore


SAMPLE_SEED_STRIDE = 1_000_003  # seed offset between independent samples of one state (StepContext.sample)


def _sampling(params: StepParams, sample: int) -> SamplingParams:
    seed = None if params.seed is None else params.seed + sample * SAMPLE_SEED_STRIDE
    return SamplingParams(params.max_tokens, params.temperature, params.top_p, (params.delimiter,), seed,
                          params.speculative)


async def generate_steps(backend: ModelBackend, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
    """Write the next step after each context with `backend`, in one batched call."""
    return await generate_steps_each(backend, [(c, params) for c in ctxs])


async def generate_steps_each(backend: ModelBackend,
                              items: Sequence[tuple[StepContext, StepParams]]) -> list[StepOutput]:
    """Like `generate_steps`, each context with its own params (one call for steps of several requests)."""
    rendered = [backend.render_chat(*prompts.continuation(c, p.delimiter)) for c, p in items]
    t0 = time.perf_counter()
    outs = await backend.generate(rendered, [_sampling(p, c.sample) for c, p in items])
    dt = time.perf_counter() - t0
    return [StepOutput(o.text.strip(), o.num_tokens, o.finish_reason, dt, o.spec_rounds, o.spec_draft_tokens,
                       o.spec_accepted_tokens) for o in outs]


async def _judge_each(backend: ModelBackend, chats: Sequence[tuple[list[ChatMessage], str]],
                      read: Callable[[Sequence[tuple[str, float]], float], Verdict]) -> list[Verdict]:
    """Ask `backend` each judge chat (messages, assistant prefill) in one batched next-token call and `read`
    each verdict from its top first tokens and the call's latency."""
    rendered = [backend.render_chat(*chat) for chat in chats]
    t0 = time.perf_counter()
    dists = await backend.next_token_distribution(rendered, JUDGE_TOP_K)
    dt = time.perf_counter() - t0
    return [read(d.top, dt) for d in dists]


async def score_steps_each(backend: ModelBackend, items: Sequence[tuple[StepContext, str, str]]) -> list[StepScore]:
    """Score (context, candidate, delimiter) triples 0–9 with `backend` as judge, in one batched call."""
    return await _judge_each(backend, [prompts.judge(c, cand, delim) for c, cand, delim in items],
                             score_from_distribution)


async def equivalence_steps_each(backend: ModelBackend,
                                 items: Sequence[tuple[StepContext, str, str, str]]) -> list[EquivalenceScore]:
    """Judge (context, step a, step b, delimiter) quadruples aligned / unaligned with `backend`, in one batched call."""
    return await _judge_each(backend, [prompts.equivalence(c, a, b, delim) for c, a, b, delim in items],
                             equivalence_from_distribution)


async def verdict_solutions_each(backend: ModelBackend, items: Sequence[tuple[str, str]]) -> list[VerdictScore]:
    """Judge (question, solution) pairs yes / no with `backend`, in one batched call."""
    return await _judge_each(backend, [prompts.verdict(q, solution) for q, solution in items],
                             verdict_from_distribution)


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
        return await score_steps_each(self.backend, [(c, cand, delimiter) for c, cand in items])

    async def equivalence_steps(self, items: Sequence[tuple[StepContext, str, str]],
                                delimiter: str) -> list[EquivalenceScore]:
        return await equivalence_steps_each(self.backend, [(c, a, b, delimiter) for c, a, b in items])

    async def verdict_solutions(self, items: Sequence[tuple[str, str]]) -> list[VerdictScore]:
        return await verdict_solutions_each(self.backend, items)

    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        return await generate_steps(self.backend, ctxs, params)
