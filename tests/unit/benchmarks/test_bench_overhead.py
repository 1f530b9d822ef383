from __future__ import annotations

from dataclasses import replace

import pytest

from benchmarks.overhead import compare, main, order_balanced, overall_interval, served_first, split_modes
from benchmarks.records import write_meta, write_records
from tests.unit.benchmarks.bench_fakes import TARGET, record


def _side(latencies: dict[str, float], *, run: str = "target", target_s: float = 4.0, failed: str | None = None):
    return [record(run, pid, latency=lat, outcomes=[TARGET, TARGET], target_s=target_s,
                   error="ReadTimeout: slow" if pid == failed else None) for pid, lat in latencies.items()]


def test_pairs_problems_by_run_and_reports_ratio_geomean_and_range():
    served = _side({"p0": 11.0, "p1": 24.0, "p2": 5.0}, target_s=5.0)
    inproc = _side({"p0": 10.0, "p1": 20.0, "p3": 9.0})  # p2 and p3 have no partner
    (row,) = compare(served, inproc)
    assert (row.run, row.pairs, row.failed) == ("target", 2, 0)
    assert row.ratio_of_means == pytest.approx(35 / 30)
    assert row.geomean == pytest.approx((1.1 * 1.2) ** 0.5)
    assert row.ratios == [pytest.approx(1.1), pytest.approx(1.2)]
    # two target steps of 10 tokens each: 5 s (served) and 4 s (in-process) per step
    assert row.served_ms_per_target_token == pytest.approx(500)
    assert row.inprocess_ms_per_target_token == pytest.approx(400)
    assert (row.identical, row.served_correct, row.inprocess_correct) == (2, 2, 2)


def test_failed_requests_are_left_out_and_counted():
    (row,) = compare(_side({"p0": 11.0, "p1": 99.0}, failed="p1"), _side({"p0": 10.0, "p1": 20.0}))
    assert (row.pairs, row.failed) == (1, 1)
    assert row.ratio_of_means == pytest.approx(1.1)


def test_folders_of_different_benchmarks_are_refused(tmp_path, capsys):
    with pytest.raises(ValueError, match="share no"):
        compare(_side({"p0": 1.0}, run="draft"), _side({"p0": 1.0}))
    with pytest.raises(ValueError, match="both"):
        compare(_side({"p0": 1.0}, failed="p0"), _side({"p0": 1.0}))
    served, inproc = tmp_path / "served", tmp_path / "inproc"
    served.mkdir()
    inproc.mkdir()
    write_records(served, _side({"p0": 12.0}))
    write_records(inproc, _side({"p0": 10.0}))
    assert main([str(served), str(inproc)]) == 0
    out = capsys.readouterr().out
    assert "**1.200**" in out and "overhead **+20.0%**" in out


def test_repeated_inprocess_measurements_are_averaged_problem_by_problem():
    before, after = _side({"p0": 8.0, "p1": 20.0}), _side({"p0": 12.0, "p1": 20.0})
    after[1] = record("target", "p1", latency=20.0, correct=False, outcomes=[TARGET, TARGET])
    (row,) = compare(_side({"p0": 11.0, "p1": 22.0}), before + after)
    assert row.pairs == 2 and row.inprocess_mean_s == pytest.approx(15.0)
    assert row.geomean == pytest.approx((1.1 * 1.1) ** 0.5)
    assert (row.identical, row.inprocess_correct) == (1, 1)  # p1's second in-process answer differs (8, wrong)


def _timed(records, step_s: float):
    return [replace(r, steps=tuple(replace(s, latency_s=step_s) for s in r.steps)) for r in records]


def test_kept_steps_model_seconds_are_summed_per_request_and_averaged():
    """Two kept steps per request: served 2 × 4.5 s; in-process 2 × 4 s before and 2 × 5 s after."""
    served = _timed(_side({"p0": 11.0}), 4.5)
    (row,) = compare(served, _timed(_side({"p0": 10.0}), 4.0) + _timed(_side({"p0": 10.0}), 5.0))
    assert row.served_step_model_s == pytest.approx(9.0)
    assert row.inprocess_step_model_s == pytest.approx(9.0)
    (untimed,) = compare(served, _side({"p0": 10.0}))  # records from before step timing
    assert untimed.inprocess_step_model_s is None
    (mixed,) = compare(served, _side({"p0": 10.0}) + _timed(_side({"p0": 10.0}), 5.0))
    assert mixed.inprocess_step_model_s == pytest.approx(10.0)  # the untimed record is left out, not counted as 0


def test_one_benchmark_that_ran_both_ways_pairs_each_served_run_with_its_in_process_twin(tmp_path, capsys):
    knobs = {"method": "target"}
    write_meta(tmp_path, {"runs": [
        {"name": "target", "knobs": knobs, "app_overrides": [], "mode": "inprocess"},
        {"name": "target-sd", "knobs": knobs, "app_overrides": ["target.speculative.model=d"], "mode": "inprocess"},
        {"name": "target-served", "knobs": knobs, "app_overrides": [], "mode": "served"}]})
    write_records(tmp_path, [*_side({"p0": 10.0, "p1": 20.0}), *_side({"p0": 5.0}, run="target-sd"),
                             *_side({"p0": 11.0, "p1": 21.0}, run="target-served")])
    served, inprocess = split_modes(tmp_path)
    assert {r.run for r in served} == {r.run for r in inprocess} == {"target"}  # target-sd has no served twin
    assert main([str(tmp_path)]) == 0
    assert "| target | 2 | 16.00 | 15.00 | **1.067** [1.050–1.100] |" in capsys.readouterr().out


def test_a_folder_without_served_twins_or_without_records_is_refused(tmp_path, capsys):
    write_meta(tmp_path, {"runs": [{"name": "target", "knobs": {}, "app_overrides": [], "mode": "inprocess"}]})
    write_records(tmp_path, _side({"p0": 10.0}))
    with pytest.raises(ValueError, match="no served run with an in-process twin"):
        split_modes(tmp_path)
    with pytest.raises(SystemExit):
        main([str(tmp_path / "typo")])
    assert "typo holds no records.jsonl: not a results folder" in capsys.readouterr().err


def test_overall_interval_resamples_problems_with_every_run_on_them():
    """Per run the ratios vary, but each problem's served and in-process seconds sum to the same: 1.0 exactly."""
    rows = [*compare(_side({"p0": 12.0, "p1": 5.0}), _side({"p0": 10.0, "p1": 10.0})),
            *compare(_side({"p0": 8.0, "p1": 15.0}, run="draft"), _side({"p0": 10.0, "p1": 10.0}, run="draft"))]
    assert rows[0].ratio_interval[0] < 1.0 < rows[0].ratio_interval[1]
    assert overall_interval(rows) == (pytest.approx(1.0), pytest.approx(1.0))


def test_the_overhead_is_split_by_the_side_sent_first_on_each_problem(tmp_path, capsys):
    """p0: in-process (seq 0) before served (seq 1), +10%; p1: served (seq 2) before in-process (seq 3), +50%."""
    knobs = {"method": "target"}
    write_meta(tmp_path, {"runs": [{"name": "target", "knobs": knobs, "app_overrides": [], "mode": "inprocess"},
                                   {"name": "target-served", "knobs": knobs, "app_overrides": [], "mode": "served"}]})
    write_records(tmp_path, [record("target", "p0", latency=10.0, seq=0),
                             record("target-served", "p0", latency=11.0, seq=1),
                             record("target-served", "p1", latency=30.0, seq=2),
                             record("target", "p1", latency=20.0, seq=3)])
    assert served_first(*split_modes(tmp_path)) == {"p0": False, "p1": True}
    assert main([str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert ("By the side sent first on a problem: served first on 1 problem +50.0% (95% CI +50.0% to +50.0%); "
            "in-process first on 1 problem +10.0% (95% CI +10.0% to +10.0%); balanced for the order (√ of the two "
            "ratios) **+28.5%** (95% CI +28.5% to +28.5%).") in out  # √(1.5 × 1.1) = 1.2845


def test_order_balancing_cancels_a_slowdown_of_the_side_sent_second():
    """True overhead 1.05; whichever side goes second runs 1.2× slower."""
    served_first = [(1.05 * t, 1.2 * t) for t in (10.0, 20.0, 30.0)]
    inprocess_first = [(1.2 * 1.05 * t, t) for t in (15.0, 25.0)]
    balanced, (low, high) = order_balanced(served_first, inprocess_first)
    assert balanced == pytest.approx(1.05)
    assert low == pytest.approx(1.05) and high == pytest.approx(1.05)  # no spread within either group
