"""Benchmark config: the shipped files load, overrides apply, inconsistent configs name the problem."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.config import CONFIGS_DIR, load_bench_config
from cluster.errors import ConfigError

TWO_RUNS = "runs=[{name: target, knobs: {method: target}}, {name: sr, knobs: {method: specreason}}]"


def test_engine20_is_issue_2s_matrix():
    cfg = load_bench_config([CONFIGS_DIR / "engine20.yaml"])
    assert (cfg.dataset.name, cfg.dataset.size, cfg.dataset.seed) == ("gsm_symbolic", 20, 7)
    assert [(r.name, r.knobs.get("method"), r.knobs.get("threshold")) for r in cfg.runs] == [
        ("target", "target", None), ("draft", "draft", None), ("specreason-t7", "specreason", 7)]
    assert cfg.baseline == "target" and cfg.mode == "inprocess"


def test_engine20_vllm_extends_engine20_with_the_vllm_backend():
    base = load_bench_config([CONFIGS_DIR / "engine20.yaml"])
    cfg = load_bench_config([CONFIGS_DIR / "engine20-vllm.yaml"])
    assert cfg.app_overrides == ["draft.backend=vllm", "target.backend=vllm"]
    assert cfg.name == "engine20-vllm"
    assert (cfg.runs, cfg.dataset) == (base.runs, base.dataset)


def test_engine50_is_issue_4s_matrix_with_token_level_speculation_on_its_own_engine():
    from benchmarks.plan import engine_groups

    cfg = load_bench_config([CONFIGS_DIR / "engine50.yaml"])
    assert (cfg.dataset.name, cfg.dataset.size, cfg.dataset.seed) == ("gsm_symbolic", 50, 7)
    assert [r.name for r in cfg.runs] == ["target", "draft", "token-level", "specreason-t5", "specreason-t7",
                                          "specreason-t9"]
    assert cfg.baseline == "target" and cfg.compare_to == ["token-level"]
    groups = engine_groups(cfg)
    assert [[r.name for r in g.runs] for g in groups] == [
        ["target", "draft", "specreason-t5", "specreason-t7", "specreason-t9"], ["token-level"]]
    assert groups[0].app.target.speculative is None
    speculative = groups[1].app.target.speculative
    assert (speculative.model, speculative.num_speculative_tokens) == ("qwen2.5-coder-0.5b-instruct", 3)


def test_engine50_served_is_the_same_matrix_served_by_apps_the_runner_launches():
    base = load_bench_config([CONFIGS_DIR / "engine50.yaml"])
    cfg = load_bench_config([CONFIGS_DIR / "engine50-served.yaml"])
    assert (cfg.mode, cfg.launch, cfg.url, cfg.name) == ("served", True, None, "engine50-served")
    assert (cfg.runs, cfg.dataset, cfg.baseline, cfg.compare_to) == (base.runs, base.dataset, base.baseline,
                                                                     base.compare_to)


def test_token_paired_loads_target_and_token_level_engines_in_turn_per_problem():
    from benchmarks.datasets import load_problems
    from benchmarks.plan import engine_groups, sessions

    cfg = load_bench_config([CONFIGS_DIR / "token-paired.yaml"], ["dataset.select=[3,4]"])
    groups = engine_groups(cfg)
    assert [[r.name for r in g.runs] for g in groups] == [["target"], ["token-level"]]
    plan = [(i, [p.id for p in batch]) for i, batch in sessions(groups, load_problems(cfg.dataset), cfg.order)]
    assert plan == [(0, ["gsm_symbolic-s7-3"]), (1, ["gsm_symbolic-s7-3"]),
                    (0, ["gsm_symbolic-s7-4"]), (1, ["gsm_symbolic-s7-4"])]


def test_overhead_paired_runs_engine20_in_process_then_served_on_each_problem():
    from benchmarks.plan import engine_groups

    base = load_bench_config([CONFIGS_DIR / "engine20.yaml"])
    cfg = load_bench_config([CONFIGS_DIR / "overhead-paired.yaml"])
    groups = engine_groups(cfg)
    assert [(g.served, [r.name for r in g.runs]) for g in groups] == [
        (False, ["target", "draft", "specreason-t7"]),
        (True, ["target-served", "draft-served", "specreason-t7-served"])]
    assert all([r.knobs for r in g.runs] == [r.knobs for r in base.runs] for g in groups)
    assert (cfg.launch, cfg.order, cfg.dataset) == (True, "paired", base.dataset)


@pytest.mark.parametrize("name", sorted(p.name for p in CONFIGS_DIR.glob("*.yaml")))
def test_every_shipped_config_loads_and_its_knobs_fit_its_app(name, monkeypatch):
    from benchmarks.plan import engine_groups

    monkeypatch.setenv("SPECSERVE_SMOKE_DRAFT", "/d")
    monkeypatch.setenv("SPECSERVE_SMOKE_TARGET", "/t")
    assert engine_groups(load_bench_config([CONFIGS_DIR / name]))  # raises ConfigError on a bad knob


def test_lookahead50_puts_token_level_runs_on_their_own_engine():
    from benchmarks.plan import engine_groups

    groups = engine_groups(load_bench_config([CONFIGS_DIR / "lookahead50.yaml"]))
    assert [[r.name for r in g.runs] for g in groups] == [
        ["target", "lookahead-sync-g4", "lookahead-async-g2", "lookahead-async-g4", "lookahead-async-g6",
         "lookahead-async-g4-embed"], ["token-level", "lookahead-async-g4.token", "specreason-t7.token"]]
    assert all(g.app.target.backend == "vllm" and g.app.verifiers.embedding is not None for g in groups)


def test_smoke_takes_model_paths_from_the_command_line_or_the_environment(monkeypatch):
    cfg = load_bench_config([CONFIGS_DIR / "smoke.yaml"], ["app_overrides=[draft.path=/d,target.path=/t]"])
    assert cfg.app_overrides == ["draft.path=/d", "target.path=/t"]
    assert cfg.dataset.size == 2
    monkeypatch.setenv("SPECSERVE_SMOKE_DRAFT", "/env/d")
    monkeypatch.setenv("SPECSERVE_SMOKE_TARGET", "/env/t")
    assert load_bench_config([CONFIGS_DIR / "smoke.yaml"]).app_overrides == ["draft.path=/env/d",
                                                                            "target.path=/env/t"]


def test_default_file_is_engine20():
    assert load_bench_config().name == "engine20"


@pytest.mark.parametrize(("overrides", "message"), [
    (["runs=[{name: a}, {name: a}]", "baseline=null"], "unique"),
    (["baseline=nope"], "baseline names unknown runs"),
    (["compare_to=[nope]"], "compare_to names unknown runs"),
    (["mode=served"], "needs either url"),
    (["mode=served", "url=http://127.0.0.1:8000", "launch=true"], "not both"),
    (["url=http://127.0.0.1:8000"], "mode is inprocess"),
    (["launch=true"], "mode is inprocess"),
    (["mode=served", "url=http://127.0.0.1:8000",
      "runs=[{name: target, app_overrides: [target.backend=vllm]}]"], "per-run app_overrides"),
    (["runs=[{name: target}, {name: target-served, mode: served}]"], "needs either url"),
    (["runs=[{name: target}, {name: target-served, mode: serve}]"], "runs.1.mode"),
    (["concurrency=0"], "concurrency"),
    (["dataset.name=gsm8k"], "dataset.name"),
    (["bogus=1"], "bogus"),
    (["runs=[{name: 'has space'}]", "baseline=null"], "runs.0.name"),
], ids=["duplicate-runs", "unknown-baseline", "unknown-compare", "served-no-url", "url-and-launch",
        "url-not-served", "launch-not-served", "served-per-run-app", "served-run-no-url", "bad-run-mode",
        "zero-concurrency", "unknown-dataset",
        "unknown-key", "bad-run-name"])
def test_invalid_configs_name_the_problem(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_bench_config([CONFIGS_DIR / "engine20.yaml"], overrides)


def test_only_filters_runs_in_config_order():
    cfg = load_bench_config([CONFIGS_DIR / "engine20.yaml"], ["only=[specreason-t7,target]"])
    assert [r.name for r in cfg.selected_runs()] == ["target", "specreason-t7"]


def test_missing_file_and_extends_cycle_are_config_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="not found"):
        load_bench_config([tmp_path / "none.yaml"])
    (tmp_path / "a.yaml").write_text("extends: b.yaml\n")
    (tmp_path / "b.yaml").write_text("extends: a.yaml\n")
    with pytest.raises(ConfigError, match="cycle"):
        load_bench_config([tmp_path / "a.yaml"], [TWO_RUNS])
