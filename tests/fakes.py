"""Scripted Drafter / Verifier doubles: deterministic, implement the full ABCs, record their calls."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from cluster.backends.base import Generation, ModelBackend, SamplingParams, TokenDistribution
from cluster.errors import BackendError
from cluster.reasoning.interfaces import Drafter, Verifier
from cluster.reasoning.types import (
    ChatMessage,
    EquivalenceScore,
    FinishReason,
    StepContext,
    StepOutput,
    StepParams,
    StepScore,
    VerdictScore,
)
from cluster.reasoning.verifiers import Embedder


def step(text: str, tokens: int | None = None, finish: FinishReason = FinishReason.STOP) -> StepOutput:
    """A StepOutput whose token count defaults to its word count."""
    return StepOutput(text, tokens if tokens is not None else len(text.split()), finish)


class ScriptedDrafter(Drafter):
    """Returns scripted steps in order; `fail_at` raises BackendError on that call index."""

    def __init__(self, steps: Sequence[StepOutput], fail_at: int | None = None) -> None:
        self.steps = list(steps)
        self.fail_at = fail_at
        self.calls: list[StepContext] = []

    async def draft_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        outs = []
        for ctx in ctxs:
            if self.fail_at is not None and len(self.calls) == self.fail_at:
                raise BackendError("scripted drafter failure")
            outs.append(self.steps[len(self.calls) % len(self.steps)])
            self.calls.append(ctx)
        return outs


class ScriptedVerifier(Verifier):
    """Scores candidates from a script (by call order) and writes scripted target steps."""

    def __init__(self, scores: Sequence[float], steps: Sequence[StepOutput]) -> None:
        self.scores = list(scores)
        self.steps = list(steps)
        self.score_calls: list[tuple[StepContext, str]] = []
        self.target_calls: list[StepContext] = []

    async def score_steps(self, items: Sequence[tuple[StepContext, str]], delimiter: str) -> list[StepScore]:
        outs = []
        for item in items:
            s = self.scores[len(self.score_calls) % len(self.scores)]
            outs.append(StepScore(greedy=int(s), expected=float(s), digit_mass=1.0))
            self.score_calls.append(item)
        return outs

    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        outs = []
        for ctx in ctxs:
            outs.append(self.steps[len(self.target_calls) % len(self.steps)])
            self.target_calls.append(ctx)
        return outs


Events = list[tuple[str, tuple[str, ...]]]  # (event, context steps): "start" / "done" / "cancelled"


async def _timed_call(ctxs: Sequence[StepContext], delay: Callable[[StepContext], float], events: Events,
                      cancelled: list[StepContext]) -> None:
    """Sleep for the slowest context's delay, logging start / done / cancelled per context."""
    events.extend(("start", c.steps) for c in ctxs)
    try:
        await asyncio.sleep(max(delay(c) for c in ctxs))
    except asyncio.CancelledError:
        cancelled.extend(ctxs)
        events.extend(("cancelled", c.steps) for c in ctxs)
        raise
    events.extend(("done", c.steps) for c in ctxs)


class FnDrafter(Drafter):
    """Drafts by context: `write(ctx, k)` is the k-th alternative asked for after `ctx` (k counts earlier calls
    with the same steps); each call takes `delay(ctx)` seconds. Records batches, events and cancellations;
    `fail_on(ctx)` raises BackendError."""

    def __init__(self, write: Callable[[StepContext, int], StepOutput],
                 delay: Callable[[StepContext], float] = lambda ctx: 0.0,
                 fail_on: Callable[[StepContext], bool] = lambda ctx: False) -> None:
        self.write, self.delay, self.fail_on = write, delay, fail_on
        self.batches: list[list[StepContext]] = []
        self.params: list[StepParams] = []
        self.events: Events = []
        self.cancelled: list[StepContext] = []
        self._asked: dict[tuple[str, ...], int] = {}

    async def draft_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        self.batches.append(list(ctxs))
        self.params.append(params)
        await _timed_call(ctxs, self.delay, self.events, self.cancelled)
        if any(self.fail_on(c) for c in ctxs):
            raise BackendError("scripted drafter failure")
        outs = []
        for c in ctxs:
            k = self._asked.get(c.steps, 0)
            self._asked[c.steps] = k + 1
            outs.append(self.write(c, k))
        return outs


class FnVerifier(Verifier):
    """A target whose step depends on the context (`write(ctx)`, taking `delay(ctx)` seconds), with an equivalence
    judge `aligned(a, b)` -> P(aligned), a 0–9 judge `score(ctx, candidate)` and a solution verdict P(yes) =
    score(question, solution) / 9. Records every call."""

    def __init__(self, write: Callable[[StepContext], StepOutput],
                 delay: Callable[[StepContext], float] = lambda ctx: 0.0,
                 aligned: Callable[[str, str], float] = lambda a, b: float(a == b),
                 score: Callable[[StepContext, str], float] = lambda ctx, cand: 9.0) -> None:
        self.write, self.delay, self.aligned, self.score = write, delay, aligned, score
        self.batches: list[list[StepContext]] = []
        self.events: Events = []
        self.cancelled: list[StepContext] = []
        self.equivalence_calls: list[list[tuple[StepContext, str, str]]] = []
        self.score_calls: list[list[tuple[StepContext, str]]] = []
        self.verdict_calls: list[list[tuple[str, str]]] = []

    async def target_steps(self, ctxs: Sequence[StepContext], params: StepParams) -> list[StepOutput]:
        self.batches.append(list(ctxs))
        await _timed_call(ctxs, self.delay, self.events, self.cancelled)
        return [self.write(c) for c in ctxs]

    async def score_steps(self, items: Sequence[tuple[StepContext, str]], delimiter: str) -> list[StepScore]:
        self.score_calls.append(list(items))
        values = [self.score(c, cand) for c, cand in items]
        return [StepScore(greedy=int(v), expected=v, digit_mass=1.0) for v in values]

    async def equivalence_steps(self, items: Sequence[tuple[StepContext, str, str]],
                                delimiter: str) -> list[EquivalenceScore]:
        self.equivalence_calls.append(list(items))
        return [EquivalenceScore(self.aligned(a, b), 1.0) for _, a, b in items]

    async def verdict_solutions(self, items: Sequence[tuple[str, str]]) -> list[VerdictScore]:
        self.verdict_calls.append(list(items))
        return [VerdictScore(self.score(StepContext(q), solution) / 9.0, 1.0) for q, solution in items]


class ScriptedBackend(ModelBackend):
    """Renders chats as plain text and answers next-token queries with a scripted distribution (no generation)."""

    def __init__(self, top: Sequence[tuple[str, float]]) -> None:
        self.top = tuple(top)
        self.prompts: list[str] = []

    @property
    def max_model_len(self) -> int:
        return 4096

    def render_chat(self, messages: Sequence[ChatMessage], assistant_prefix: str | None = None) -> str:
        turns = [f"<{m.role}>{m.content}" for m in messages]
        return "\n".join(turns + ([] if assistant_prefix is None else [f"<assistant>{assistant_prefix}"]))

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    async def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Generation]:
        raise BackendError("ScriptedBackend does not generate")

    async def next_token_distribution(self, prompts: Sequence[str], top_k: int = 10) -> list[TokenDistribution]:
        self.prompts.extend(prompts)
        return [TokenDistribution(self.top[:top_k]) for _ in prompts]


class BagOfWordsEmbedder(Embedder):
    """Embeds a text as its word counts over `vocab` (unknown words ignored); records each call's texts."""

    def __init__(self, vocab: Sequence[str]) -> None:
        self.vocab = list(vocab)
        self.calls: list[list[str]] = []

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        self.calls.append(list(texts))
        return [tuple(float(t.lower().split().count(w)) for w in self.vocab) for t in texts]
