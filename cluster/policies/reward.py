"""Bandit reward: accepted target-equivalent tokens per second of a request, normalised into [0, 1]."""

from __future__ import annotations

from typing import Any

from cluster.reasoning.types import ReasoningResult


def target_equivalent_tokens(result: ReasoningResult) -> int:
    """Tokens of the final reasoning: accepted draft steps plus target-written steps.

    Every token in the trace is one the target wrote or accepted, so it is worth a target token;
    rejected drafts are not in the trace and count for nothing.
    """
    return sum(s.num_tokens for s in result.steps)


class ThroughputReward:
    """r = min(1, (tokens / seconds) / ref), the reward the bandits need bounded in [0, 1].

    `ref` is the throughput worth reward 1. Fixed (`ref_tokens_per_s`): set it at or above the fastest
    arm's usual throughput so clipping is rare (clipping hides differences between arms above `ref`).
    Auto (`ref_tokens_per_s=None`): `ref` is the highest throughput seen so far, so no tuning is needed and
    nothing is clipped; when it grows, the controller's state rescales the rewards already given (otherwise
    the first pull would score 1 whatever its speed). The auto scale is state: checkpoint it with the policy.
    """

    def __init__(self, ref_tokens_per_s: float | None = None) -> None:
        if ref_tokens_per_s is not None and ref_tokens_per_s <= 0:
            raise ValueError(f"ref_tokens_per_s must be > 0, got {ref_tokens_per_s}")
        self.fixed = ref_tokens_per_s is not None
        self.ref = ref_tokens_per_s or 0.0

    def reward(self, tokens: int, seconds: float) -> float:
        """The normalised reward of `tokens` target-equivalent tokens in `seconds` (updates an auto scale).

        Raises:
            ValueError: seconds ≤ 0 or tokens < 0.
        """
        if seconds <= 0 or tokens < 0:
            raise ValueError(f"need tokens ≥ 0 and seconds > 0, got {tokens} tokens in {seconds} s")
        tps = tokens / seconds
        if not self.fixed:
            self.ref = max(self.ref, tps)
        return min(1.0, tps / self.ref) if self.ref > 0 else 0.0

    def state_dict(self) -> dict[str, Any]:
        return {"ref": self.ref}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if not self.fixed:
            self.ref = float(state["ref"])
