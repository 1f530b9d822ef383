"""The CI smoke benchmark end to end: tiny real models, the real Engine, the report and its plots."""

from __future__ import annotations

import json

from benchmarks.runner import run_from_cli


def test_smoke_benchmark_writes_records_report_and_plots(tiny_model_dirs, tmp_path, capsys):
    overrides = [f"app_overrides=[draft.path={tiny_model_dirs.draft},target.path={tiny_model_dirs.target},"
                 "draft.dtype=float32,target.dtype=float32]", f"output_dir={tmp_path}"]
    assert run_from_cli(["benchmarks/configs/smoke.yaml"], overrides) == 0
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    records = [json.loads(line) for line in (run_dir / "records.jsonl").read_text().splitlines()]
    assert {r["run"] for r in records} == {"target", "draft", "specreason-t5", "specreason-t9"}
    assert len(records) == 8 and all(r["error"] is None for r in records)
    assert json.loads((run_dir / "meta.json").read_text())["status"] == "complete"
    assert "specreason-t9" in (run_dir / "report.md").read_text()
    assert (run_dir / "accuracy_vs_latency.png").stat().st_size > 0
