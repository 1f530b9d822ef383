"""benchmarks.merge (a redo replaces its problems' records) and benchmarks.combine (disjoint chunks, or runs added
to the same problems, joined)."""

from __future__ import annotations

import pytest

from benchmarks.combine import combine_runs
from benchmarks.merge import merge_runs
from benchmarks.records import RecordWriter, read_meta, read_records, write_meta
from benchmarks.report import render_run_dir
from tests.unit.benchmarks.bench_fakes import record


def _run_dir(path, records, command):
    path.mkdir()
    writer = RecordWriter(path)
    for r in records:
        writer.write(r)
    writer.close()
    write_meta(path, {"name": path.name, "command": command})
    return path


def test_redo_replaces_only_its_problems_and_is_named_in_the_report(tmp_path):
    base = _run_dir(tmp_path / "base", [record(run, pid, latency=10.0) for pid in ("p0", "p1", "p2")
                                        for run in ("target", "draft")], "bench base")
    redo = _run_dir(tmp_path / "redo", [record(run, "p1", latency=3.0) for run in ("target", "draft")],
                    "bench redo")
    assert merge_runs(base, redo, tmp_path / "out") == ["p1"]
    merged = read_records(tmp_path / "out")
    assert [(r.run, r.problem_id) for r in merged] == [(r.run, r.problem_id) for r in read_records(base)]
    assert {r.problem_id: r.latency_s for r in merged if r.run == "target"} == {"p0": 10.0, "p1": 3.0, "p2": 10.0}
    assert read_meta(tmp_path / "out")["redone"]["command"] == "bench redo"
    assert "Redone: problems p1 re-timed by `bench redo`" in render_run_dir(tmp_path / "out", plots=False)


def test_redo_with_unknown_records_or_an_existing_output_is_refused(tmp_path):
    base = _run_dir(tmp_path / "base", [record("target", "p0", latency=1.0)], "a")
    redo = _run_dir(tmp_path / "redo", [record("target", "p9", latency=1.0)], "b")
    with pytest.raises(ValueError, match="no records of the base run's problems"):
        merge_runs(base, redo, tmp_path / "out")
    write_meta(base, {"command": "a", "runs": [{"name": "target"}],
                      "dataset": {"problem_ids": ["p0", "p1"]}, "status": "failed: KeyboardInterrupt"})
    other_run = _run_dir(tmp_path / "other", [record("lookahead", "p1", latency=1.0)], "c")
    with pytest.raises(ValueError, match=r"\('lookahead', 'p1'\)"):  # lookahead is not among the configured runs
        merge_runs(base, other_run, tmp_path / "out")
    with pytest.raises(ValueError, match="exists"):
        merge_runs(base, base, tmp_path / "redo")


def test_one_redo_fills_in_two_chunks(tmp_path):
    """Both chunks were cut before token-level; one redo sent it on the problems of both."""
    redo = _run_dir(tmp_path / "redo", [record("token-level", pid, latency=1.0) for pid in ("p0", "p1", "p2")],
                    "bench select=[0,1,2] only=[token-level]")
    for name, pids in (("a", ["p0", "p1"]), ("b", ["p2"])):
        base = _run_dir(tmp_path / name, [record("target", pid, latency=4.0) for pid in pids], "bench")
        write_meta(base, {"command": "bench", "runs": [{"name": "target"}, {"name": "token-level"}],
                          "dataset": {"problem_ids": pids}, "status": "failed: LaunchError"})
        assert merge_runs(base, redo, tmp_path / f"{name}-out") == pids
        merged = read_records(tmp_path / f"{name}-out")
        assert sorted((r.run, r.problem_id) for r in merged) == sorted(
            (run, pid) for run in ("target", "token-level") for pid in pids)
        assert read_meta(tmp_path / f"{name}-out")["status"] == "complete"


def _part(path, pids, command, *, seed=7, cpu="cpu-a", runs=("target", "draft")):
    _run_dir(path, [record(run, pid, latency=2.0) for pid in pids for run in runs], command)
    write_meta(path, {"name": "bench", "command": command, "runs": [{"name": run} for run in runs],
                      "dataset": {"name": "gsm_symbolic", "size": 4, "seed": seed, "problem_ids": pids},
                      "machine": {"cpu": cpu}, "status": "complete", "errors": 0})
    return path


def test_combine_joins_disjoint_chunks_and_names_every_part(tmp_path):
    a = _part(tmp_path / "a", ["p0", "p1"], "bench select=[0,1]")
    b = _part(tmp_path / "b", ["p2", "p3"], "bench select=[2,3]", cpu="cpu-b", runs=("draft", "target"))
    assert combine_runs([a, b], tmp_path / "out") == ["p0", "p1", "p2", "p3"]  # runs listed in another order
    assert len(read_records(tmp_path / "out")) == 8
    meta = read_meta(tmp_path / "out")
    assert [p["problems"] for p in meta["parts"]] == [["p0", "p1"], ["p2", "p3"]]
    assert [r["name"] for r in meta["runs"]] == ["target", "draft"]  # the first part's order
    assert meta["dataset"]["problem_ids"] == ["p0", "p1", "p2", "p3"] and meta["status"] == "complete"
    report = render_run_dir(tmp_path / "out", plots=False)
    assert "`bench select=[2,3]` on cpu-b" in report and "4 problems" in report
    assert report.startswith("### out: ")  # the joined folder's name, not the first part's
    assert f"- Command: `python -m benchmarks.combine {tmp_path / 'out'} {a} {b}`" in report


def test_combine_refuses_other_benchmarks_overlaps_and_an_existing_output(tmp_path):
    a = _part(tmp_path / "a", ["p0"], "x")
    with pytest.raises(ValueError, match="dataset.seed differ"):
        combine_runs([a, _part(tmp_path / "b", ["p1"], "y", seed=8)], tmp_path / "out")
    with pytest.raises(ValueError, match="runs differ"):
        combine_runs([a, _part(tmp_path / "d", ["p1"], "w", runs=("target",))], tmp_path / "out")
    with pytest.raises(ValueError, match="problem p0 is in both"):
        combine_runs([a, _part(tmp_path / "c", ["p0"], "z")], tmp_path / "out")
    with pytest.raises(ValueError, match="exists"):
        combine_runs([a, tmp_path / "c"], tmp_path / "b")


def test_combine_by_runs_joins_runs_added_to_the_same_problems(tmp_path):
    measured = _part(tmp_path / "a", ["p0", "p1"], "bench")
    added = _part(tmp_path / "b", ["p1", "p0"], "bench only=[first]", runs=("first",))
    for part, runs in ((measured, ["target", "draft"]), (added, ["first"])):
        write_meta(part, {**read_meta(part), "engines": [{"runs": runs}]})
    assert combine_runs([measured, added], tmp_path / "out", by_runs=True) == ["p0", "p1"]
    meta = read_meta(tmp_path / "out")
    assert [r["name"] for r in meta["runs"]] == ["target", "draft", "first"] and meta["records"] == 6
    assert [e["runs"] for e in meta["engines"]] == [["target", "draft"], ["first"]]  # each part's engine group
    assert meta["command"].startswith("python -m benchmarks.combine --runs ")
    report = render_run_dir(tmp_path / "out", plots=False)
    assert "| first |" in report and "2 problems" in report
    with pytest.raises(ValueError, match="run target is in both"):
        combine_runs([measured, _part(tmp_path / "c", ["p0", "p1"], "again")], tmp_path / "out2", by_runs=True)
    with pytest.raises(ValueError, match="measured other problems"):
        combine_runs([measured, _part(tmp_path / "d", ["p0"], "x", runs=("first",))], tmp_path / "out2",
                     by_runs=True)


def test_combine_only_joins_the_named_runs_of_every_part(tmp_path):
    both = _part(tmp_path / "a", ["p0", "p1"], "bench", runs=("first", "agree"))
    write_meta(both, {**read_meta(both), "engines": [{"runs": ["first", "agree"]}]})
    first = _part(tmp_path / "b", ["p2"], "bench only=[first]", runs=("first",))
    with pytest.raises(ValueError, match="runs differ"):
        combine_runs([both, first], tmp_path / "out")
    assert combine_runs([both, first], tmp_path / "out", only=["first"]) == ["p0", "p1", "p2"]
    meta = read_meta(tmp_path / "out")
    assert {r.run for r in read_records(tmp_path / "out")} == {"first"} and meta["records"] == 3
    assert [r["name"] for r in meta["runs"]] == ["first"] and meta["engines"] == [{"runs": ["first"]}]
    assert " --only first " in meta["command"]
    with pytest.raises(ValueError, match="has none of the runs agree"):
        combine_runs([both, first], tmp_path / "out2", only=["agree"])
    with pytest.raises(ValueError, match="no part has run agrees"):
        combine_runs([both, first], tmp_path / "out2", only=["first", "agrees"])


def test_combine_only_with_runs_takes_each_run_from_the_part_that_has_it(tmp_path):
    """The target alone from one part, an early stop from another measured beside other runs: side by side."""
    measured = _part(tmp_path / "a", ["p0", "p1"], "bench", runs=("target", "ssr"))
    stops = _part(tmp_path / "b", ["p0", "p1"], "bench only=[first,agree]", runs=("first", "agree"))
    assert combine_runs([measured, stops], tmp_path / "out", by_runs=True, only=["target", "agree"]) == ["p0", "p1"]
    meta = read_meta(tmp_path / "out")
    assert [r["name"] for r in meta["runs"]] == ["target", "agree"] and meta["records"] == 4
    assert {(r.run, r.problem_id) for r in read_records(tmp_path / "out")} == {
        (run, pid) for run in ("target", "agree") for pid in ("p0", "p1")}


def test_a_join_of_joins_names_every_machine_and_the_problems_whose_runs_cross_machines(tmp_path):
    """Runs added to problems first measured in two chunks on two machines: the side-by-side join keeps the chunks'
    machines (not the first chunk's for all) and the report names the problems whose ratios cross machines."""
    chunks = [_part(tmp_path / name, pids, f"bench {name}", cpu=cpu, runs=("target",))
              for name, pids, cpu in (("a", ["p0", "p1"], "cpu-a"), ("b", ["p2"], "cpu-b"))]
    combine_runs(chunks, tmp_path / "target")
    added = _part(tmp_path / "c", ["p0", "p1", "p2"], "bench only=[first]", cpu="cpu-b", runs=("first",))
    combine_runs([tmp_path / "target", added], tmp_path / "out", by_runs=True)
    meta = read_meta(tmp_path / "out")
    assert meta["machine"] is None  # not the first part's: the parts' CPUs differ
    assert read_meta(tmp_path / "target")["machine"] is None
    parts = meta["parts"]
    assert [(p["command"], p["machine"]["cpu"], p["problems"]) for p in parts] == [
        ("bench a", "cpu-a", ["p0", "p1"]), ("bench b", "cpu-b", ["p2"]),
        ("bench only=[first]", "cpu-b", ["p0", "p1", "p2"])]
    report = render_run_dir(tmp_path / "out", plots=False)
    assert "- Machine: the parts ran on different machines (cpu-a; cpu-b)" in report
    assert "the runs of 2 problems ran on different machines, so their ratios (speedups) cross machines: p0, p1" \
        in report
    assert "different machines" not in render_run_dir(chunks[0], plots=False)
    one_cpu = [_part(tmp_path / name, [pid], f"bench {name}", runs=("target",))
               for name, pid in (("d", "p0"), ("e", "p1"))]
    combine_runs(one_cpu, tmp_path / "same")
    assert read_meta(tmp_path / "same")["machine"] == {"cpu": "cpu-a"}


def test_redo_completes_a_run_cut_short(tmp_path):
    """The base run was stopped before draft on p1; the redo sends just that request."""
    base = _run_dir(tmp_path / "base", [record("target", "p0", latency=4.0), record("draft", "p0", latency=2.0),
                                        record("target", "p1", latency=4.0)], "bench")
    write_meta(base, {"command": "bench", "runs": [{"name": "target"}, {"name": "draft"}],
                      "dataset": {"problem_ids": ["p0", "p1"]}, "status": "failed: KeyboardInterrupt",
                      "records": 3, "errors": 0})
    redo = _run_dir(tmp_path / "redo", [record("draft", "p1", latency=1.0)], "bench select=[1] only=[draft]")
    assert merge_runs(base, redo, tmp_path / "out") == ["p1"]
    merged = read_records(tmp_path / "out")
    assert [(r.run, r.problem_id, r.latency_s) for r in merged][-1] == ("draft", "p1", 1.0) and len(merged) == 4
    meta = read_meta(tmp_path / "out")
    assert (meta["status"], meta["records"], meta["redone"]["added"]) == ("complete", 4, ["draft on p1"])
    report = render_run_dir(tmp_path / "out", plots=False)
    assert "added what the base run had not sent: draft on p1 (it ended failed: KeyboardInterrupt)" in report
