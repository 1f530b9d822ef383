from __future__ import annotations

import json
import os
import threading
from dataclasses import replace

import pytest

from benchmarks import processes
from benchmarks.processes import Sample, context_switches, cores, groups, main, snapshot
from benchmarks.records import write_meta, write_records
from tests.unit.benchmarks.bench_fakes import record

T0 = 1_800_000_000.0  # 2027-01-15T08:00:00Z
PROCS = {10: ("raylet", 1, "/venv/lib/python3.11/site-packages/ray/core/src/ray/raylet/raylet --flags"),
         11: ("ray::ServeRepli", 10, "ray::ServeReplica:specserve:Verifier.handle_request_with_rejection"),
         12: ("VLLM::EngineCor", 11, "VLLM::EngineCore"), 13: ("VLLM::Worker", 12, "VLLM::Worker"),
         20: ("python", 1, "python -m benchmarks.runner cfg.yaml"), 21: ("VLLM::EngineCor", 20, "VLLM::EngineCore"),
         30: ("ray::ServeContr", 10, "ray::ServeController"), 40: ("bash", 1, "bash"), 41: ("sleep", 40, "sleep 1")}


def test_snapshot_reads_this_process_with_its_parent():
    name, ppid, cpu = snapshot()[os.getpid()]
    assert ppid == os.getppid() and cpu >= 0 and name


def test_a_process_counts_for_its_nearest_replica_runner_or_ray_ancestor():
    assert groups(PROCS) == {10: "Ray", 11: "Verifier", 12: "Verifier", 13: "Verifier", 20: "runner", 21: "runner",
                      30: "Ray", 40: "other", 41: "other"}


def test_cores_are_averaged_over_the_samples_wholly_inside_the_window():
    samples = [Sample(T0 + 2, 2.0, {13: 1.0}), Sample(T0 + 4, 2.0, {13: 3.8, 30: 0.2}),
               Sample(T0 + 6, 2.0, {13: 3.0, 41: 1.0, 99: 0.5}), Sample(T0 + 8, 2.0, {13: 2.0})]
    by_pid = groups(PROCS)  # pid 99 was never recorded: "other"
    # [T0 + 2, T0 + 6.5] holds the intervals ending at T0 + 4 and T0 + 6, not those ending at T0 + 2 or T0 + 8
    assert cores(samples, by_pid, T0 + 2, T0 + 6.5) == {"Verifier": pytest.approx(1.7), "other": pytest.approx(0.375),
                                                        "Ray": pytest.approx(0.05)}
    assert cores(samples, by_pid, T0 + 2.5, T0 + 5) is None


def test_attribute_tables_each_request_from_a_log_and_run_folders(tmp_path, capsys):
    log = tmp_path / "cpu.jsonl"
    lines = [{"t": T0 + t, "dt": 2.0, "cpu": {"13": 1.9, "30": 0.1, "12": 0.05},
              "new": {str(p): PROCS[p] for p in (10, 12, 13, 30)} if t == 2 else {}} for t in range(2, 40, 2)]
    # a Ray worker first seen before it took its replica's name, then renamed: the later record counts
    lines[0]["new"]["11"] = ("python", 10, "python /venv/lib/python3.11/site-packages/ray/_private/workers/w.py")
    lines[1]["new"]["11"] = PROCS[11]
    log.write_text("".join(json.dumps(x) + "\n" for x in lines))
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    write_meta(run_dir, {"started_at": "2027-01-15T08:00:00+00:00"})
    write_records(run_dir, [replace(record("target", "p0", latency=20.0), started_s=5.0),
                            replace(record("draft", "p0", latency=2.0), started_s=30.0)])
    assert main(["attribute", str(log), str(run_dir)]) == 0
    out = capsys.readouterr().out
    assert "| target | p0 | 20.0 | Verifier 0.975, Ray 0.050 |" in out
    assert "| draft | p0 | 2.0 | no sample inside |" in out
    assert out.rstrip().endswith("| target | 1 | Verifier 0.975, Ray 0.050 |")  # all folders, by run


def test_sample_appends_a_line_per_interval_until_interrupted(tmp_path, monkeypatch):
    calls = []

    def sleep(_: float) -> None:
        calls.append(1)
        if len(calls) > 1:
            raise KeyboardInterrupt

    monkeypatch.setattr(processes.time, "sleep", sleep)
    log = tmp_path / "cpu.jsonl"
    assert main(["sample", str(log), "--interval-s", "0.01"]) == 0
    (line,) = log.read_text().splitlines()
    data = json.loads(line)
    assert data["dt"] >= 0 and set(data) == {"t", "dt", "cpu", "new"}
    name, ppid, _ = data["new"][str(os.getpid())]  # every process is recorded the first time it is seen
    assert ppid == os.getppid() and name


def test_attribute_without_a_log_is_an_error(tmp_path):
    with pytest.raises(SystemExit):
        main(["attribute", str(tmp_path / "missing.jsonl"), str(tmp_path)])


def test_wakeups_counts_this_threads_context_switches(capsys):
    process, thread, switches = context_switches()[os.getpid(), threading.get_native_id()]
    assert process == thread and switches > 0
    assert main(["wakeups", "--seconds", "0.05", "--top", "3"]) == 0  # the sleep itself switches this thread out
    out = capsys.readouterr().out.splitlines()
    assert out[0].endswith("context switches/s in all") and len(out) == 4 + 3
