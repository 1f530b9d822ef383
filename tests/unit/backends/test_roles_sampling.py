"""The role adapters on a real (tiny random) transformers model: independent samples of one state get their own
seeds inside one batched call, so parallel paths (SSR, unguided or with a repeated strategy) diverge."""

from __future__ import annotations

from dataclasses import replace

from cluster.backends.hf import HFBackend
from cluster.backends.roles import BackendDrafter
from cluster.config.schema import ModelSpec
from cluster.reasoning.types import StepContext, StepParams

QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"


async def test_samples_of_one_state_diverge_and_each_sample_is_reproducible(tiny_model_dirs):
    path = tiny_model_dirs.draft
    drafter = BackendDrafter(HFBackend(ModelSpec(path=str(path), dtype="float32", num_threads=1,
                                                 max_model_len=512), path))
    ctx = StepContext(QUESTION)
    params = StepParams(12, temperature=1.0, seed=0)
    first, second, first_again = await drafter.draft_steps([ctx, replace(ctx, sample=1), ctx], params)
    assert first.text == first_again.text
    assert first.text != second.text
