"""benchmarks.step_cost: random-weight models from a config alone, step timings and the cost ratio c."""

from __future__ import annotations

import json

from benchmarks import step_cost


def test_step_cost_times_both_models_from_their_configs(tiny_model_dirs, tmp_path):
    out = tmp_path / "cost.json"
    step_cost.main([str(tiny_model_dirs.draft), str(tiny_model_dirs.target / "config.json"), "--device", "cpu",
                    "--dtype", "float32", "--batch", "1", "2", "--prompt-tokens", "8", "--step-tokens", "4",
                    "--reps", "1", "--out", str(out)])
    result = json.loads(out.read_text())
    assert (result["prompt_tokens"], result["step_tokens"]) == (8, 4)
    assert [(row["mode"], row["batch"]) for row in result["rows"]] == [("eager", 1), ("eager", 2)]
    for row in result["rows"]:
        assert "error" not in row, row
        for role in ("draft", "target"):  # timed separately: their order is not asserted (a busy CPU can flip it)
            assert row[role]["step_s"] > 0 and row[role]["prefill_s"] > 0
        assert row["c"] == row["draft"]["step_s"] / row["target"]["step_s"]


def test_a_failing_mode_is_recorded_and_the_rest_still_measured(tiny_model_dirs, tmp_path, monkeypatch):
    real = step_cost.step_cost

    def static_fails(model, *, mode, **kwargs):
        if mode == "static":
            raise RuntimeError("no compiler here")
        return real(model, mode=mode, **kwargs)

    monkeypatch.setattr(step_cost, "step_cost", static_fails)
    out = tmp_path / "cost.json"
    step_cost.main([str(tiny_model_dirs.draft), str(tiny_model_dirs.target), "--device", "cpu", "--dtype", "float32",
                    "--modes", "static", "eager", "--prompt-tokens", "8", "--step-tokens", "4", "--reps", "1",
                    "--out", str(out)])
    static, eager = json.loads(out.read_text())["rows"]
    assert static["error"] == "RuntimeError: no compiler here" and "c" not in static
    assert eager["c"] > 0 and "error" not in eager
