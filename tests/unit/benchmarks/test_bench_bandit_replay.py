from __future__ import annotations

import dataclasses
import random

import pytest

from benchmarks.bandit_replay import explore_once_bound, main, outcome_table, replay
from benchmarks.records import write_records
from cluster.config.schema import ArmSpec, BanditConfig, ControllerConfig
from tests.unit.benchmarks.bench_fakes import TARGET, record

ARMS = ["no-spec", "specreason-t5", "specreason-t7", "lookahead-g2"]


def _pinned(arm: str, pid: str, *, step_s: float, correct: bool = True):
    """A record of `arm` pinned on problem `pid`: 4 target steps of 10 tokens, `step_s` seconds each."""
    return record(f"run-{arm}", pid, latency=4 * step_s, correct=correct, outcomes=[TARGET] * 4,
                  knobs={"arm": arm}, draft_s=0.0, judge_s=0.0, target_s=step_s)


def _controller(algorithm: str = "ucb", radius: str = "heuristic") -> ControllerConfig:
    arms = [ArmSpec(name=a, knobs={"method": "target"}) for a in ("slow", "fast")]
    return ControllerConfig(bandit=BanditConfig(arms=arms, algorithm=algorithm, radius=radius))


def test_the_table_keeps_pinned_records_of_problems_every_arm_answered():
    records = [_pinned("slow", "p0", step_s=4.0), _pinned("fast", "p0", step_s=1.0),
               _pinned("slow", "p1", step_s=4.0),  # p1 lacks "fast": dropped
               record("bandit", "p0", latency=1.0, outcomes=[TARGET], knobs={})]  # not pinned: ignored
    table = outcome_table(records, ["slow", "fast"])
    assert list(table) == ["p0"]
    assert table["p0"]["fast"].tokens == 40 and table["p0"]["fast"].seconds == pytest.approx(4.0)
    with pytest.raises(ValueError, match="lookahead"):
        outcome_table(records, ["slow", "lookahead"])
    assert list(outcome_table(records, ["slow", "lookahead"], every_arm=False)["p0"]) == ["slow"]
    with pytest.raises(ValueError, match="lookahead"):
        outcome_table(records, ["lookahead"], every_arm=False)


def test_runs_named_after_an_arm_count_as_its_records():
    """Issue 4's matrix sets each method's knobs itself: its runs are matched to the arms by name."""
    def run(name: str, pid: str, seconds: float, knobs: dict):
        return record(name, pid, latency=seconds, outcomes=[TARGET], knobs=knobs, target_s=seconds)

    records = [run("slow", "p0", 4.0, {"method": "target"}), run("fast", "p0", 1.0, {"method": "specreason"}),
               run("draft", "p0", 0.5, {"method": "draft"}),  # no arm of that name: ignored
               run("fast", "p1", 2.0, {"arm": "slow"})]  # pinned: the pin, not the name, decides
    table = outcome_table(records, ["slow", "fast"])
    assert list(table) == ["p0"] and table["p0"]["fast"].seconds == pytest.approx(1.0)


def test_ucb_replay_finds_the_faster_arm_and_scores_against_the_best_in_hindsight():
    records = [_pinned(a, f"p{i}", step_s=s) for i in range(5) for a, s in (("slow", 4.0), ("fast", 1.0))]
    table = outcome_table(records, ["slow", "fast"])
    short = replay(_controller(), table, ["p0", "p1"])
    assert short.pulls == {"slow": 1, "fast": 1} and short.best_arm == "fast"
    assert short.ratio == pytest.approx((80 / 20) / 10.0)  # 80 tokens in 16 + 4 s vs the fast arm's 10 tokens/s
    long = replay(_controller(), table, random.Random(0).choices(list(table), k=400))
    assert long.pulls["fast"] > 0.9 * 400 and long.ratio > 0.9


def test_the_exploration_bound_pulls_every_arm_once_then_the_best():
    records = [_pinned(a, f"p{i}", step_s=s) for i in range(4) for a, s in (("slow", 4.0), ("fast", 1.0))]
    table = outcome_table(records, ["slow", "fast"])
    assert explore_once_bound(table, ["p0", "p1", "p2", "p3"]) == pytest.approx((160 / 28) / 10.0)


@pytest.mark.parametrize("algorithm", ["exp3", "thompson"])
def test_randomised_replays_are_seeded(algorithm):
    records = [_pinned(a, f"p{i}", step_s=s + 0.1 * i) for i in range(3) for a, s in (("slow", 2.0), ("fast", 1.0))]
    table = outcome_table(records, ["slow", "fast"])
    sequence = ["p0", "p1", "p2"] * 10
    first, again = (replay(_controller(algorithm), table, sequence) for _ in range(2))
    assert first.pulls == again.pulls and first.pulls["fast"] > first.pulls["slow"]


def test_the_command_replays_the_configured_arms(tmp_path, capsys):
    records = [_pinned(a, f"p{i}", step_s=1.0 if a == "specreason-t5" else 3.0, correct=a != "specreason-t5")
               for i in range(4) for a in ARMS]
    live = [record("bandit-step", f"p{i}", latency=8.0, outcomes=[TARGET] * 4, knobs={"bandit_granularity": "step"},
                   draft_s=0.0, judge_s=0.0, target_s=2.0) for i in range(2)]
    write_records(tmp_path, records + live + [record("bon", "p0", latency=1.0, knobs={"method": "best_of_n"})])
    assert main([str(tmp_path), "--horizon", "4", "30", "--repeats", "5", "--policy", "ucb:paper", "exp3",
                 "thompson"]) == 0
    out = capsys.readouterr().out
    assert "| specreason-t5 | 10.00 | 0/4 |" in out and "| no-spec | 3.33 | 4/4 |" in out
    assert out.count("| ucb:paper |") == 2 and out.count("| exp3 |") == 2 and out.count("| thompson |") == 2
    assert out.count("| bound:") == 2
    assert "| bandit-step | 2 | 5.00 | 0.50 (specreason-t5) | 2/2 |" in out and "| bon |" not in out


def test_live_only_compares_a_per_round_run_with_the_arms_measured_beside_it(tmp_path, capsys):
    """With one fixed arm measured, --live-only scores the live run against it and counts its steps by arm;
    without the flag the replay needs every configured arm."""
    fixed = [_pinned("specreason-t5", f"p{i}", step_s=1.0) for i in range(2)]
    live = []
    for i in range(2):
        r = record("bandit-step", f"p{i}", latency=8.0, outcomes=[TARGET] * 4, knobs={"bandit_granularity": "step"},
                   draft_s=0.0, judge_s=0.0, target_s=2.0)
        arms = ["no-spec", "specreason-t5", "specreason-t5", "specreason-t5"]
        steps = tuple(dataclasses.replace(s, arm=a) for s, a in zip(r.steps, arms, strict=True))
        live.append(dataclasses.replace(r, steps=steps))
    write_records(tmp_path, fixed + live)
    assert main([str(tmp_path), "--live-only"]) == 0
    out = capsys.readouterr().out
    assert "arms: specreason-t5." in out and "| ucb:paper |" not in out
    assert "| bandit-step | 2 | 5.00 | 0.50 (specreason-t5) | 2/2 | specreason-t5 6, no-spec 2 |" in out
    with pytest.raises(SystemExit):
        main([str(tmp_path)])
    assert "no-spec" in capsys.readouterr().err


def test_pool_reads_folders_as_repeats_of_one_benchmark(tmp_path, capsys):
    """Two folders that ran the same problem: pooled, both count (Σ over 2 + 8 seconds); unpooled, one
    folder's record replaces the other's."""
    for name, step_s in (("a", 0.5), ("b", 2.0)):
        (tmp_path / name).mkdir()
        write_records(tmp_path / name, [_pinned("specreason-t5", "p0", step_s=step_s)])
    folders = [str(tmp_path / "a"), str(tmp_path / "b")]
    assert main([*folders, "--live-only", "--pool"]) == 0
    assert "| specreason-t5 | 8.00 | 2/2 |" in capsys.readouterr().out  # 80 tokens in 10 s
    assert main([*folders, "--live-only"]) == 0
    assert "| specreason-t5 | 5.00 | 1/1 |" in capsys.readouterr().out
