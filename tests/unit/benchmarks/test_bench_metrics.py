"""Benchmark metrics on hand-made records: CI, percentiles, α, c, ceiling, pairwise speedups, positions."""

from __future__ import annotations

import math

import pytest

from benchmarks.metrics import (
    StepTimes,
    acceptance_by_position,
    auc,
    bootstrap_ratio,
    ceiling,
    cost_ratio,
    pairwise_speedup,
    percentile,
    sequential_ceiling,
    step_times,
    summarize,
    throughput,
    wilson_interval,
)
from tests.unit.benchmarks.bench_fakes import ACCEPTED, DRAFT, REWRITTEN, TARGET, record

SPEC = {"method": "specreason", "threshold": 7}


@pytest.mark.parametrize(("k", "n", "lo", "hi"), [
    (10, 20, 0.2993, 0.7007),
    (0, 10, 0.0, 0.2775),
    (10, 10, 0.7225, 1.0),
    (1, 2, 0.0945, 0.9055),
], ids=["half", "none", "all", "one-of-two"])
def test_wilson_interval_matches_the_closed_form(k, n, lo, hi):
    got = wilson_interval(k, n)
    assert got is not None
    assert got == pytest.approx((lo, hi), abs=1e-4)


def test_wilson_interval_of_no_trials_is_none():
    assert wilson_interval(0, 0) is None


def test_percentile_interpolates_linearly():
    assert percentile([4.0, 1.0, 3.0, 2.0], 50) == pytest.approx(2.5)
    assert percentile([1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0], 90) == pytest.approx(9.1)
    assert percentile([3.0], 90) == 3.0
    assert percentile([], 50) is None


def test_alpha_is_pooled_over_drafted_steps_not_averaged_per_problem():
    """p1: 1 of 1 accepted; p2: 1 of 4 → pooled α = 2/5 = 0.4 (the per-problem mean would be 0.625)."""
    recs = [record("spec", "p1", latency=1, outcomes=[ACCEPTED], knobs=SPEC),
            record("spec", "p2", latency=1, outcomes=[ACCEPTED, REWRITTEN, REWRITTEN, REWRITTEN], knobs=SPEC)]
    (s,) = summarize(recs)
    assert (s.steps_accepted, s.steps_drafted) == (2, 5)
    assert s.alpha == pytest.approx(0.4)
    assert s.accepted_per_verification == pytest.approx(0.4)  # SpecReason: one judged step per verification


def test_step_times_pool_phase_time_over_calls():
    """Draft-only steps count as draft calls; judge and target times divide by their own counts."""
    recs = [record("spec", "p1", latency=1, outcomes=[ACCEPTED, REWRITTEN], draft_s=1.0, judge_s=0.5, target_s=4.0),
            record("draft", "p1", latency=1, outcomes=[DRAFT, DRAFT, DRAFT], draft_s=2.0)]
    assert step_times(recs[:1]) == StepTimes(1.0, 0.5, 4.0)
    assert step_times(recs[1:]) == StepTimes(2.0, None, None)


def test_cost_ratio_uses_the_runs_own_target_step_time():
    assert cost_ratio(StepTimes(1.0, 0.5, 3.0), fallback_target_s=10.0) == (pytest.approx(0.5), "run")


def test_cost_ratio_falls_back_to_the_baseline_target_step_when_every_draft_was_accepted():
    assert cost_ratio(StepTimes(1.0, 0.5, None), fallback_target_s=5.0) == (pytest.approx(0.3), "baseline")
    assert cost_ratio(StepTimes(1.0, 0.5, None)) == (None, None)
    assert cost_ratio(StepTimes(None, None, 4.0)) == (None, None)  # target-only: nothing drafted


def test_ceiling_formula():
    assert ceiling(0.5, 0.7) == pytest.approx(1 / 0.65)
    assert ceiling(0.1, 1.0) == pytest.approx(10.0)  # every draft accepted: 1/c
    assert ceiling(0.0, 1.0) == math.inf  # free drafts, all accepted: unbounded
    assert ceiling(1.0, 0.9) == pytest.approx(1.0)  # a draft as costly as the target never pays
    assert ceiling(None, 0.5) is None


def test_pairwise_speedup_pairs_problems_and_reports_both_means():
    """Latencies base (2, 8) vs run (1, 8): ratio of means 10/9, geometric mean √(2·1) = √2."""
    base = [record("target", "p1", latency=2.0), record("target", "p2", latency=8.0),
            record("target", "p3", latency=5.0, error="BackendError: boom")]
    run = [record("spec", "p1", latency=1.0), record("spec", "p2", latency=8.0), record("spec", "p3", latency=1.0),
           record("spec", "p4", latency=1.0)]
    sp = pairwise_speedup(run, base, "target")
    assert sp.pairs == 2  # p3 failed on the baseline, p4 has no baseline record
    assert sp.mean_ratio == pytest.approx(10 / 9)
    assert sp.geomean == pytest.approx(math.sqrt(2))


def test_pairwise_speedup_without_pairs_is_empty():
    sp = pairwise_speedup([record("spec", "p1", latency=1.0)], [record("target", "p2", latency=1.0)], "target")
    assert (sp.pairs, sp.mean_ratio, sp.geomean, sp.interval) == (0, None, None, None)


def test_bootstrap_interval_brackets_the_ratio_of_sums_and_is_reproducible():
    pairs = [(11.0, 10.0), (24.0, 20.0), (9.0, 10.0), (30.0, 20.0)]
    low, high = bootstrap_ratio(pairs)
    assert 0.9 <= low < 74 / 60 < high <= 1.5  # within the extreme per-pair ratios, around the ratio of sums
    assert bootstrap_ratio(pairs) == (low, high)
    assert bootstrap_ratio([(12.0, 10.0), (6.0, 5.0)]) == (pytest.approx(1.2), pytest.approx(1.2))
    assert bootstrap_ratio([]) is None and bootstrap_ratio([(1.0, 0.0)]) is None


def test_pairwise_speedup_interval_resamples_the_pairs():
    """Base (2, 8) vs run (1, 8): draws of both pairs give 10/9; all-p1 gives 2, all-p2 gives 1."""
    base = [record("target", "p1", latency=2.0), record("target", "p2", latency=8.0)]
    sp = pairwise_speedup([record("spec", "p1", latency=1.0), record("spec", "p2", latency=8.0)], base, "target")
    assert sp.interval == (pytest.approx(1.0), pytest.approx(2.0))


def test_acceptance_by_position_counts_judged_steps_only():
    recs = [record("spec", "p1", latency=1, outcomes=[TARGET, ACCEPTED, REWRITTEN]),
            record("spec", "p2", latency=1, outcomes=[TARGET, ACCEPTED, ACCEPTED, ACCEPTED])]
    got = [(p.position, p.judged, p.accepted) for p in acceptance_by_position(recs)]
    assert got == [(1, 2, 2), (2, 2, 1), (3, 1, 1)]


def test_summarize_computes_c_ceiling_speedup_and_achieved_fraction():
    """Target steps take 4 s; spec drafts 1 s + judge 1 s → c = 0.5, α = 2/3 → ceiling 1/(0.5 + 0.5/3) = 1.5.

    Latencies 8 s (target) vs 4 s (spec) → speedup 2.0 → achieved 2.0 / 1.5 = 133%.
    """
    recs = []
    for pid in ("p1", "p2"):
        recs.append(record("target", pid, latency=8.0, outcomes=[TARGET, TARGET], target_s=4.0,
                           knobs={"method": "target"}))
        recs.append(record("spec", pid, latency=4.0, outcomes=[ACCEPTED, ACCEPTED, REWRITTEN], draft_s=1.0,
                           judge_s=1.0, target_s=4.0, knobs=SPEC, correct=pid == "p1"))
    target, spec = summarize(recs, baseline="target", run_order=["target", "spec"])
    assert target.name == "target" and target.cost_ratio is None and target.achieved is None
    assert spec.cost_ratio == pytest.approx(0.5) and spec.cost_ratio_target_from == "run"
    assert spec.alpha == pytest.approx(2 / 3)
    assert spec.ceiling == pytest.approx(1.5)
    assert spec.speedups["target"].mean_ratio == pytest.approx(2.0)
    assert spec.achieved == pytest.approx(2.0 / 1.5)
    assert (spec.correct, spec.n, spec.accuracy) == (1, 2, 0.5)
    assert spec.target_tokens_mean == pytest.approx(10.0)


def test_summarize_takes_the_baselines_target_step_for_an_all_accepted_run():
    recs = [record("target", "p1", latency=6.0, outcomes=[TARGET, TARGET, TARGET], target_s=2.0),
            record("spec", "p1", latency=2.0, outcomes=[ACCEPTED, ACCEPTED], draft_s=0.5, judge_s=0.5, knobs=SPEC)]
    _, spec = summarize(recs, baseline="target")
    assert spec.cost_ratio == pytest.approx(0.5) and spec.cost_ratio_target_from == "baseline"
    assert spec.ceiling == pytest.approx(2.0)  # α = 1 → 1/c


def test_failed_requests_count_as_wrong_and_leave_latency_alone():
    recs = [record("target", "p1", latency=3.0), record("target", "p2", latency=100.0, error="Timeout: slow")]
    (s,) = summarize(recs)
    assert (s.n, s.errors, s.correct) == (2, 1, 1)
    assert s.accuracy == pytest.approx(0.5)
    assert s.latency_mean == pytest.approx(3.0)


def test_summarize_skips_missing_reference_runs():
    (s,) = summarize([record("spec", "p1", latency=1.0)], baseline="target", compare_to=["token-sd"])
    assert s.speedups == {}
    assert s.achieved is None


def test_sequential_ceiling_formula():
    assert sequential_ceiling(0.5, 0.7) == pytest.approx(1 / 0.8)
    assert sequential_ceiling(0.5, 0.0) == pytest.approx(1 / 1.5)  # every draft rejected: slower than target
    assert sequential_ceiling(None, 0.5) is None


def test_throughput_spans_first_start_to_last_finish():
    """Two requests start at 0 and 1 s and take 4 s each: 2 requests over 5 s = 0.4 req/s."""
    import dataclasses

    a = record("r", "p0", latency=4.0)
    b = dataclasses.replace(record("r", "p1", latency=4.0), started_s=1.0)
    failed = dataclasses.replace(record("r", "p2", latency=100.0, error="boom"), started_s=50.0)
    assert throughput([a, b, failed]) == pytest.approx(0.4)
    assert throughput([failed]) is None


def with_token_spec(rec, rounds: int, drafted: int, accepted: int):
    """`rec` whose stats carry token-level speculation counters."""
    import dataclasses

    stats = dataclasses.replace(rec.stats, spec_rounds=rounds, spec_draft_tokens=drafted,
                                spec_accepted_tokens=accepted)
    return dataclasses.replace(rec, stats=stats)


def test_token_level_acceptance_is_pooled_over_problems():
    """Two problems: 4 rounds / 12 drafted / 6 accepted and 6 / 18 / 3 → rate 9/30, length 1 + 9/10."""
    recs = [with_token_spec(record("sd", "p1", latency=1.0), 4, 12, 6),
            with_token_spec(record("sd", "p2", latency=1.0), 6, 18, 3),
            record("target", "p1", latency=1.0)]
    sd, target = summarize(recs)
    assert (sd.token_spec.rounds, sd.token_spec.drafted, sd.token_spec.accepted) == (10, 30, 9)
    assert sd.token_spec.acceptance_rate == pytest.approx(0.3)
    assert sd.token_spec.mean_acceptance_length == pytest.approx(1.9)
    assert target.token_spec is None


def test_auc_counts_ties_as_half():
    assert auc([9.0, 8.0], [1.0, 2.0]) == 1.0
    assert auc([5.0], [5.0]) == 0.5
    assert auc([1.0], [2.0, 0.5]) == 0.5
    assert auc([], [1.0]) is None
