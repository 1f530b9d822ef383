"""The throughput reward: target-equivalent tokens per second, normalised into [0, 1]."""

from __future__ import annotations

import pytest

from cluster.policies.reward import ThroughputReward, target_equivalent_tokens
from cluster.reasoning.types import Author, ReasoningResult, StepOutcome, StepRecord, StopReason


def test_fixed_scale_divides_and_clips():
    reward = ThroughputReward(ref_tokens_per_s=100.0)
    assert reward.reward(50, 1.0) == pytest.approx(0.5)
    assert reward.reward(500, 1.0) == 1.0 and reward.reward(0, 2.0) == 0.0


def test_auto_scale_is_the_running_maximum_and_checkpoints():
    reward = ThroughputReward()
    assert reward.reward(40, 1.0) == 1.0          # the first observation sets the scale
    assert reward.reward(80, 1.0) == 1.0          # a new maximum
    assert reward.reward(20, 1.0) == pytest.approx(0.25)
    restored = ThroughputReward()
    restored.load_state_dict(reward.state_dict())
    assert restored.reward(40, 1.0) == pytest.approx(0.5)


def test_bad_observations_fail_fast():
    with pytest.raises(ValueError):
        ThroughputReward().reward(10, 0.0)
    with pytest.raises(ValueError):
        ThroughputReward(ref_tokens_per_s=0.0)


def test_target_equivalent_tokens_count_the_final_trace_only():
    """An accepted draft step (5 tokens) and a target rewrite (7 tokens); the rejected draft is not counted."""
    steps = (StepRecord(0, "a", Author.DRAFT, StepOutcome.ACCEPTED, 8.0, None, 5),
             StepRecord(1, "b", Author.TARGET, StepOutcome.REWRITTEN, 2.0, "rejected draft", 7))
    result = ReasoningResult("specreason", "7", "a\n\nb", steps, StopReason.ANSWER)
    assert target_equivalent_tokens(result) == 12
