"""benchmarks.merge: a redo's records replace the base run's for the same (run, problem), nothing else."""

from __future__ import annotations

import pytest

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
    with pytest.raises(ValueError, match="lacks"):
        merge_runs(base, redo, tmp_path / "out")
    with pytest.raises(ValueError, match="exists"):
        merge_runs(base, base, tmp_path / "redo")
