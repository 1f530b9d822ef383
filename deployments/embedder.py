"""Embedder deployment: the sentence-embedding model of the embedding step verifier, with its own resources;
`@serve.batch` merges the embedding calls of concurrent requests into one encoder pass."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any

from ray import serve

from cluster.config.schema import EmbeddingVerifierConfig
from cluster.engine import load_embedder
from cluster.errors import InvalidRequestError
from cluster.reasoning.verifiers import Embedder
from deployments.batching import apply_batching, run_merged, unwrap
from deployments.metrics import CallMetrics

logger = logging.getLogger(__name__)

EmbedderFactory = Callable[[EmbeddingVerifierConfig], Embedder]


@serve.deployment(name="Embedder")
class EmbedderDeployment:
    """Embeds steps for `step_verifier: embedding`.

    A model that is not installed (or not found) does not fail the replica: every call then raises the
    InvalidRequestError naming step_verifier, so a request asking for it gets a 400 and the app serves on.

    Args:
        cfg: the embedding model and its deployment settings.
        batching: initial BatchingParams as a dict (Serve's `user_config` replaces it).
        embedder_factory: loads the model from `cfg` (default `cluster.engine.load_embedder`; tests inject fakes).
    """

    def __init__(self, cfg: EmbeddingVerifierConfig, batching: dict[str, Any] | None = None,
                 embedder_factory: EmbedderFactory | None = None) -> None:
        self._embedder: Embedder | None = None
        self._missing: str | None = None  # why there is no model
        try:
            self._embedder = (embedder_factory or load_embedder)(cfg)
        except InvalidRequestError as e:
            logger.warning("no embedding model: %s", e)
            self._missing = str(e)
        self._metrics = CallMetrics("embedder")
        self.reconfigure(batching or {})

    def reconfigure(self, user_config: dict[str, Any]) -> None:
        """Apply new batching settings (Serve calls this on a `user_config` change)."""
        apply_batching(user_config, self._embed_batch)

    async def check_ready(self) -> None:
        """Raise InvalidRequestError (naming step_verifier) when no model is loaded."""
        if self._missing is not None:
            raise InvalidRequestError(self._missing, field="step_verifier")

    async def check_health(self) -> None:
        """Serve's periodic health check (and the ingress's probe after a failure): the replica answers."""

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        """One embedding per text (see `Embedder.embed`)."""
        await self.check_ready()
        return unwrap(await self._embed_batch(list(texts)))

    @serve.batch(max_batch_size=8, batch_wait_timeout_s=0.005)
    async def _embed_batch(self, calls: list[list[str]]) -> list[Any]:
        assert self._embedder is not None  # embed() checked
        t0 = time.perf_counter()
        split = await run_merged(calls, self._embedder.embed)
        self._metrics.observe("embed", time.perf_counter() - t0, calls=len(calls), items=sum(map(len, calls)))
        return split
