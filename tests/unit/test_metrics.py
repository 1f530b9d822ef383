"""Serving stats: token-level speculation counters (vLLM's names) and their derived rates."""

from __future__ import annotations

from cluster.metrics import COUNTERS, SpecReasoningStats, request_counts
from cluster.reasoning.types import ReasoningResult, ReasoningStats, StopReason

TOKEN_COUNTERS = ("token_spec_decode_num_drafts", "token_spec_decode_num_draft_tokens",
                  "token_spec_decode_num_accepted_tokens")


def result(rounds: int, drafted: int, accepted: int) -> ReasoningResult:
    stats = ReasoningStats(spec_rounds=rounds, spec_draft_tokens=drafted, spec_accepted_tokens=accepted)
    return ReasoningResult("target", "2", "\\boxed{2}", (), StopReason.ANSWER, stats)


def test_request_counts_carry_token_level_speculation():
    counts = request_counts(result(4, 12, 9))
    assert set(TOKEN_COUNTERS) <= set(COUNTERS)
    assert [counts[k] for k in TOKEN_COUNTERS] == [4, 12, 9]


def test_aggregate_token_acceptance_rate_and_mean_acceptance_length():
    totals = SpecReasoningStats()
    assert totals.token_acceptance_rate is None and totals.mean_acceptance_length is None
    totals.observe(result(4, 12, 9))
    totals.observe(result(2, 6, 0))
    data = totals.to_dict()
    assert data["token_acceptance_rate"] == 9 / 18  # accepted / drafted tokens
    assert data["mean_acceptance_length"] == 1 + 9 / 6  # 1 + accepted tokens / verification rounds
    assert data["token_spec_decode_num_draft_tokens"] == 18
