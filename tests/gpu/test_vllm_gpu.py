"""VLLMBackend on CUDA with the tiny random pair: CUDA graphs, prefix caching, draft-model speculative
decoding (greedy output must equal the target-only run) and tensor parallelism where GPUs allow.

Skipped without a GPU or without vllm. float32 keeps near-tied logits of the random models from
flipping between the target-only and the speculative (multi-token verification) kernels.
"""

from __future__ import annotations

import importlib.util

import pytest
import pytest_asyncio

from cluster.backends.base import ChatMessage, SamplingParams
from cluster.config.schema import ModelSpec
from cluster.reasoning.types import FinishReason


def _cuda_gpus() -> int:
    if importlib.util.find_spec("torch") is None:
        return 0
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


GPUS = _cuda_gpus()

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.vllm,
    pytest.mark.skipif(GPUS == 0, reason="needs a CUDA GPU"),
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed"),
    pytest.mark.asyncio(loop_scope="session"),
]

MAX_MODEL_LEN = 1024
QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"
STEPS = "Step 1: 3 boxes with 14 pens each.\n\nStep 2: 3 * 14 = 42.\n\n"
GPU_SHARE = 0.15  # each engine's share of GPU memory: two engines of this module live at once


def gpu_spec(model_dir, **engine_kwargs) -> ModelSpec:
    return ModelSpec(path=str(model_dir), backend="vllm", dtype="float32", max_model_len=MAX_MODEL_LEN,
                     engine_kwargs={"gpu_memory_utilization": GPU_SHARE, "enforce_eager": False, **engine_kwargs})


def prompts(backend) -> list[str]:
    return [backend.render_chat([ChatMessage("user", QUESTION)], assistant_prefix=s)
            for s in (STEPS, "Step 1:", STEPS * 3)]


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def target(tiny_model_dirs):
    from cluster.backends.vllm import VLLMBackend

    backend = VLLMBackend(gpu_spec(tiny_model_dirs.target), tiny_model_dirs.target)
    yield backend
    await backend.close()


async def test_cuda_graphs_and_prefix_cache(target):
    """A repeated prompt is served from the prefix cache (16-token blocks on GPU); outputs are unchanged."""
    await target.check_health()
    texts = prompts(target)
    params = [SamplingParams(max_tokens=32)] * len(texts)
    first = await target.generate(texts, params)
    again = await target.generate(texts, params)
    assert [g.text for g in again] == [g.text for g in first]
    assert all(g.finish_reason in (FinishReason.LENGTH, FinishReason.EOS) for g in first)
    assert all(g.cached_tokens >= 16 for g in again)
    (dist,) = await target.next_token_distribution(texts[:1], top_k=5)
    assert len(dist.top) == 5 and dist.cached_tokens >= 16


async def test_draft_model_speculation_matches_greedy_target(target, tiny_model_dirs):
    from cluster.backends.vllm import VLLMBackend

    spec = gpu_spec(tiny_model_dirs.target,
                    speculative_config={"model": str(tiny_model_dirs.draft), "num_speculative_tokens": 3})
    speculative = VLLMBackend(spec, tiny_model_dirs.target)
    try:
        texts = prompts(target)
        params = [SamplingParams(max_tokens=48)] * len(texts)
        got, want = await speculative.generate(texts, params), await target.generate(texts, params)
        assert [g.text for g in got] == [w.text for w in want]
        assert [g.num_tokens for g in got] == [w.num_tokens for w in want]
        stats = speculative.spec_decode_stats()
        assert stats is not None and stats.num_drafts > 0 and stats.draft_tokens >= stats.num_drafts
    finally:
        await speculative.close()


@pytest.mark.skipif(GPUS < 2, reason="tensor parallelism needs 2 GPUs")
async def test_tensor_parallel_matches_single_gpu(target, tiny_model_dirs):
    from cluster.backends.vllm import VLLMBackend

    sharded = VLLMBackend(gpu_spec(tiny_model_dirs.target, tensor_parallel_size=2), tiny_model_dirs.target)
    try:
        texts = prompts(target)
        params = [SamplingParams(max_tokens=24)] * len(texts)
        got, want = await sharded.generate(texts, params), await target.generate(texts, params)
        assert [g.text for g in got] == [w.text for w in want]
    finally:
        await sharded.close()
