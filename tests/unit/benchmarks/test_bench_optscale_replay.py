from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.optscale_replay import Pool, chosen_correct, main, pools, report, stop_on
from benchmarks.records import write_records
from cluster.policies.optscale import OnlinePrior
from cluster.reasoning.types import Candidate
from tests.unit.benchmarks.bench_fakes import record

EASY = [0.95, 0.96, 0.97, 0.95, 0.96, 0.97, 0.95, 0.96]  # every candidate near the top: stop at the peek
HARD = [0.30, 0.40, 0.35, 0.45, 0.30, 0.40, 0.50, 0.35]  # none near s_target: sample all 8


def _pool(scores: list[float], right: int | None = None) -> tuple[Candidate, ...]:
    """Candidates with `scores`; only candidate `right` answers 7 (the expected answer)."""
    return tuple(Candidate("7" if i == right else str(10 + i), s) for i, s in enumerate(scores))


def _fixed(pid: str, candidates: tuple[Candidate, ...], run: str = "best-of-n-fixed8"):
    return replace(record(run, pid, latency=1.0, knobs={"method": "best_of_n"}), candidates=candidates)


def test_optscale_stops_at_the_peek_on_easy_pools_and_samples_all_of_hard_ones():
    easy = stop_on(Pool("p0", "7", _pool(EASY, right=2)), s_target=0.9, alpha=0.05, peek=3, prior=None)
    hard = stop_on(Pool("p1", "7", _pool(HARD, right=6)), s_target=0.9, alpha=0.05, peek=3, prior=None)
    assert (easy.samples, easy.correct) == (3, True)
    assert (hard.samples, hard.correct) == (8, True)  # candidate 6 scores highest and comes last
    early = stop_on(Pool("p2", "7", _pool(EASY, right=4)), s_target=0.9, alpha=0.05, peek=3, prior=None)
    assert not early.correct  # the right candidate was never drawn


def test_the_online_prior_learns_from_each_pool():
    prior = OnlinePrior(0.8, 0.2)
    stop_on(Pool("p0", "7", _pool(HARD)), s_target=0.9, alpha=0.05, peek=3, prior=prior)
    assert prior.prior.mu < 0.8


def test_ties_go_to_the_earliest_candidate():
    assert chosen_correct(_pool([0.5, 0.9, 0.9], right=1), "7")
    assert not chosen_correct(_pool([0.5, 0.9, 0.9], right=2), "7")


def test_weighted_vote_replays_the_pick_a_live_request_makes(tmp_path, capsys):
    two_weak_sevens = (Candidate("7", 0.5), Candidate("9", 0.75), Candidate("7", 0.5))
    assert not chosen_correct(two_weak_sevens, "7") and chosen_correct(two_weak_sevens, "7", "weighted_vote")
    write_records(tmp_path, [_fixed("p0", two_weak_sevens)])
    assert main([str(tmp_path), "--prior", "none", "--s-target", "0.9", "--select", "weighted_vote"]) == 0
    out = capsys.readouterr().out
    assert "select: weighted_vote" in out and "| fixed N | 3.00 | 100% | 1/1 | — |" in out


def test_the_command_replays_the_recorded_pools(tmp_path, capsys):
    write_records(tmp_path, [_fixed("p0", _pool(EASY, right=2)), _fixed("p1", _pool(HARD, right=6)),
                             record("no-spec", "p0", latency=1.0)])
    assert main([str(tmp_path), "--prior", "none", "--s-target", "0.9", "--alpha", "0.05"]) == 0
    out = capsys.readouterr().out
    assert "2 problems, 16 candidates (2 right)" in out and "AUC right vs wrong 0.73" in out  # (13.5 + 7) / 28 pairs
    assert "| fixed N | 8.00 | 100% | 2/2 | — |" in out
    assert "| OptScale s_target 0.9, α 0.05 | 5.50 | 69% | 2/2 | missed |" in out
    with pytest.raises(ValueError, match="no-spec"):
        pools([record("no-spec", "p0", latency=1.0)], "no-spec")


def test_random_orders_average_over_where_the_best_candidate_lands():
    last_is_best = [Pool("p0", "7", _pool([*EASY[:7], 0.99], right=7))]  # scored last: OptScale stops before it
    as_scored = report(last_is_best, s_targets=[0.9], alphas=[0.05], peek=3, online_prior=False)
    assert "| OptScale s_target 0.9, α 0.05 | 3.00 | 38% | 0/1 | missed |" in as_scored
    shuffled = report(last_is_best, s_targets=[0.9], alphas=[0.05], peek=3, online_prior=False, orders=200)
    row = next(line for line in shuffled.splitlines() if line.startswith("| OptScale"))
    right = float(row.split(" | ")[3].split("/")[0])
    assert 0.25 < right < 0.5 and "200 random orders per pool" in shuffled  # P(among the first 3) = 3/8
    assert shuffled == report(last_is_best, s_targets=[0.9], alphas=[0.05], peek=3, online_prior=False, orders=200)
