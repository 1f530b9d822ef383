"""Lookahead on the tiny random transformers pair: real chat templates, batched and concurrent target calls.

The two random models practically never write the same step, so with the exact-match verifier every kept
step is the target's own, and the reasoning must equal the target-only run (greedy) in both forms.
"""

from __future__ import annotations

import pytest

from cluster.backends.hf import HFBackend
from cluster.backends.roles import BackendDrafter, BackendVerifier
from cluster.config.schema import ModelSpec, ReasoningParams
from cluster.reasoning.methods import get_method
from cluster.reasoning.types import StepContext
from cluster.reasoning.verifiers import LLMJudgeVerifier, StepPair, Verdict, same_step

QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"
KNOBS = {"max_step_tokens": 6, "max_total_tokens": 30, "max_steps": 5, "lookahead_depth": 2}


@pytest.fixture(scope="module")
def roles(tiny_model_dirs) -> tuple[BackendDrafter, BackendVerifier]:
    def load(path):
        return HFBackend(ModelSpec(path=str(path), dtype="float32", num_threads=1, max_model_len=512), path)

    return BackendDrafter(load(tiny_model_dirs.draft)), BackendVerifier(load(tiny_model_dirs.target))


@pytest.mark.parametrize("mode", ["sync", "async"])
async def test_rejected_drafts_leave_the_target_only_reasoning(roles, mode):
    drafter, verifier = roles
    target_only = await get_method("target")(QUESTION, drafter, verifier, ReasoningParams(method="target", **KNOBS))
    params = ReasoningParams(method="lookahead", lookahead_mode=mode, step_verifier="exact", **KNOBS)
    result = await get_method("lookahead")(QUESTION, drafter, verifier, params)
    assert same_step(result.text, target_only.text) and result.stop_reason is target_only.stop_reason
    assert result.stats.steps_drafted == result.stats.steps_accepted + result.stats.steps_rewritten > 0


async def test_llm_judge_reads_aligned_probabilities_from_the_target(roles):
    """One forward pass per differing pair on the real chat template; identical pairs skip the model."""
    _, verifier = roles
    ctx = StepContext(QUESTION, ("Step 1: 3 boxes with 14 pens each.",))
    verdicts = await LLMJudgeVerifier(verifier).verify(
        [StepPair(ctx, "3 * 14 = 42.", "14 * 3 = 42."), StepPair(ctx, "3 * 14 = 42.", "3*14 = 42.")])
    assert 0.0 <= verdicts[0].score <= 1.0 and verdicts[1] == Verdict(True)
