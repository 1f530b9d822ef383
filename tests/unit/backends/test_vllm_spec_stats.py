"""The vLLM backend's exact spec-decode counts, without an engine: the stat logger, call windows, shares."""

from __future__ import annotations

from types import SimpleNamespace

from cluster.backends.base import Generation, SpecDecodeStats
from cluster.backends.vllm_spec_stats import CallWindow, SpecDecodeCounter, share_out
from cluster.reasoning.types import FinishReason


def iteration(num_drafts: int, draft_tokens: int, accepted_per_pos: list[int]) -> SimpleNamespace:
    """SchedulerStats of one engine iteration, as vLLM hands them to a stat logger."""
    spec = SimpleNamespace(num_drafts=num_drafts, num_draft_tokens=draft_tokens,
                           num_accepted_tokens_per_pos=accepted_per_pos)
    return SimpleNamespace(spec_decoding_stats=spec)


def test_counter_adds_every_iteration_into_the_histogram():
    counter = SpecDecodeCounter()
    assert counter(vllm_config=None, engine_index=0) is counter  # its own per-engine factory
    # 4 rounds of k=3: one accepted 3, one accepted 1, two accepted 0
    counter.record(iteration(4, 12, [2, 1, 1]), None)
    counter.record(SimpleNamespace(spec_decoding_stats=None), None)  # an iteration without speculation
    counter.record(None, None)
    s = counter.stats
    assert (s.num_drafts, s.draft_tokens, s.accepted_tokens) == (4, 12, 4)
    assert s.accepted_histogram == [2, 1, 0, 1]
    assert s.mean_acceptance_length == 2.0 and s.acceptance_rate == 4 / 12


def test_since_is_the_difference_of_two_snapshots():
    stats = SpecDecodeStats()
    stats.observe_round(3, 1)
    before = stats.copy()
    stats.observe_round(3, 3)
    stats.observe_round(3, 0)
    delta = stats.since(before)
    assert (delta.num_drafts, delta.draft_tokens, delta.accepted_tokens) == (2, 6, 3)
    assert delta.accepted_histogram == [1, 0, 0, 1]


def test_call_window_is_alone_only_without_overlap():
    w = CallWindow()
    a = w.open()
    assert w.close(a) is True
    a = w.open()
    b = w.open()  # starts while a runs
    assert w.close(b) is False and w.close(a) is False
    a = w.open()
    b = w.open()
    assert w.close(a) is False  # b started during a
    assert w.close(b) is False  # a was in flight when b started
    assert w.close(w.open()) is True


def test_share_out_splits_by_generated_tokens_and_keeps_totals():
    gens = [Generation(text="x", num_tokens=n, finish_reason=FinishReason.STOP) for n in (30, 10, 0)]
    counts = SpecDecodeStats(num_drafts=7, draft_tokens=21, accepted_tokens=11)
    shared = share_out(gens, counts)
    assert [g.spec_rounds for g in shared] == [5, 2, 0]
    assert sum(g.spec_draft_tokens for g in shared) == 21 and sum(g.spec_accepted_tokens for g in shared) == 11
    assert [g.num_tokens for g in shared] == [30, 10, 0]
    (one,) = share_out(gens[:1], counts)
    assert (one.spec_rounds, one.spec_draft_tokens, one.spec_accepted_tokens) == (7, 21, 11)
