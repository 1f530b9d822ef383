"""Semantic equivalence by sentence embeddings: accept a draft whose cosine to the target's step ≥ threshold."""

from __future__ import annotations

import abc
import math
from collections.abc import Sequence

from cluster.reasoning.verifiers.base import StepPair, StepVerifier, Verdict

DEFAULT_COSINE_THRESHOLD = 0.95  # Lookahead Reasoning's default for all-mpnet-base-v2 (ALGORITHMS.md §3.1)


class Embedder(abc.ABC):
    """A sentence-embedding model (in-process here; a served deployment can implement the same call)."""

    @abc.abstractmethod
    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        """One embedding vector per text, in order, batched.

        Raises:
            BackendError: the model failed.
        """


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity of two vectors (0 when either is zero)."""
    norm = math.sqrt(sum(x * x for x in a)) * math.sqrt(sum(y * y for y in b))
    return sum(x * y for x, y in zip(a, b, strict=True)) / norm if norm else 0.0


class EmbeddingVerifier(StepVerifier):
    """Accepts a draft when cos(embed(draft), embed(target)) ≥ `threshold` (one embedding batch per call)."""

    def __init__(self, embedder: Embedder, threshold: float = DEFAULT_COSINE_THRESHOLD) -> None:
        self.embedder = embedder
        self.threshold = threshold

    async def _judge(self, pairs: Sequence[StepPair]) -> list[Verdict]:
        vectors = await self.embedder.embed([t for p in pairs for t in (p.draft, p.target)])
        sims = [cosine(vectors[2 * i], vectors[2 * i + 1]) for i in range(len(pairs))]
        return [Verdict(s >= self.threshold, s) for s in sims]
