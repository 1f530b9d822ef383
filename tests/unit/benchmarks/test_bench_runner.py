"""The runner against a scripted engine and a scripted client: records, order, warm-up, meta, report, errors."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks import runner
from benchmarks.config import CONFIGS_DIR, load_bench_config
from benchmarks.datasets import load_problems
from benchmarks.records import read_meta, read_records
from cluster.config import load_config
from cluster.config.schema import AppArgs
from cluster.errors import ConfigError
from cluster.reasoning.types import Author, StepOutcome, StepRecord
from tests.unit.benchmarks.bench_fakes import FakeClient, FakeEngine

RUNS = ("runs=[{name: target, knobs: {method: target}}, {name: draft, knobs: {method: draft}}, "
        "{name: sr7, knobs: {method: specreason, threshold: 7}}]")


def _config(tmp_path: Path, *extra: str):
    return load_bench_config([CONFIGS_DIR / "engine20.yaml"],
                             ["dataset.size=2", f"output_dir={tmp_path}", "plots=false", RUNS, *extra])


@pytest.fixture
def answers() -> dict[str, str]:
    cfg = load_bench_config([CONFIGS_DIR / "engine20.yaml"], ["dataset.size=2"])
    return {p.question: p.answer for p in load_problems(cfg.dataset)}


@pytest.fixture(autouse=True)
def _fresh_instances():
    FakeEngine.instances.clear()


def test_inprocess_run_writes_one_record_per_problem_and_run(tmp_path, answers):
    """Grouped order: seq 0–1 target, 2–3 draft, 4–5 sr7; one engine, warmed once per method, closed."""
    out = runner.run_benchmark(_config(tmp_path), command="cmd",
                               engine_factory=lambda app: FakeEngine(app, answers))
    records = read_records(out.run_dir)
    assert (out.records, out.errors) == (6, 0)
    assert [(r.seq, r.run) for r in records] == [(0, "target"), (1, "target"), (2, "draft"), (3, "draft"),
                                                 (4, "sr7"), (5, "sr7")]
    assert {r.run: r.correct for r in records} == {"target": True, "draft": False, "sr7": True}
    assert records[4].stats is not None and records[4].stats.steps_accepted == 2
    assert [s.outcome.value for s in records[4].steps] == ["accepted", "rewritten", "accepted"]
    (engine,) = FakeEngine.instances
    assert engine.closed
    warmups = engine.calls[:3]
    assert [(q, k["method"], k["max_total_tokens"]) for q, k in warmups] == [
        (runner.WARMUP_QUESTION, m, 32) for m in ("target", "draft", "specreason")]
    assert len(engine.calls) == 3 + 6


def test_a_step_round_trips_through_its_json_record():
    step = StepRecord(2, "3 + 4 = 7", Author.TARGET, StepOutcome.REWRITTEN, score=1.5, draft_text="3 + 4 = 8",
                      num_tokens=6, arm="sr-t7", latency_s=1.25)
    assert StepRecord.from_dict(json.loads(json.dumps(step.to_dict()))) == step


def test_meta_records_what_a_reader_needs_to_reproduce(tmp_path, answers):
    out = runner.run_benchmark(_config(tmp_path), command="python -m benchmarks.runner x.yaml",
                               engine_factory=lambda app: FakeEngine(app, answers))
    meta = read_meta(out.run_dir)
    assert meta["status"] == "complete" and meta["command"] == "python -m benchmarks.runner x.yaml"
    assert meta["dataset"]["seed"] == 7 and len(meta["dataset"]["problem_ids"]) == 2
    assert meta["order"].startswith("grouped")
    assert {"cpu", "logical_cpus", "ram_gib"} <= set(meta["machine"])
    assert {"python", "torch", "transformers", "vllm"} <= set(meta["versions"])
    assert "commit" in meta["git"] and meta["started_at"] and meta["finished_at"]
    (engine,) = meta["engines"]
    (opened,) = engine["opened"]
    assert engine["target"]["path"] == "qwen2.5-coder-1.5b-instruct" and [w["method"] for w in opened["warmup"]] == [
        "target", "draft", "specreason"]
    assert opened["problems"] == meta["dataset"]["problem_ids"] and opened["load_s"] >= 0
    assert meta["runs"][2]["params"]["threshold"] == 7  # resolved knobs, defaults included
    assert "| sr7 |" in (out.run_dir / "report.md").read_text()


def test_interleaved_order_runs_every_run_on_a_problem_first(tmp_path, answers):
    out = runner.run_benchmark(_config(tmp_path, "order=interleaved", "warmup=false"), command="cmd",
                               engine_factory=lambda app: FakeEngine(app, answers))
    records = read_records(out.run_dir)
    assert [r.run for r in records] == ["target", "draft", "sr7"] * 2
    assert [r.problem_id for r in records][:3] == [records[0].problem_id] * 3
    assert len(FakeEngine.instances[0].calls) == 6  # no warm-up


def test_alternated_order_reverses_the_runs_on_every_other_problem(tmp_path, answers):
    out = runner.run_benchmark(_config(tmp_path, "order=alternated", "warmup=false"), command="cmd",
                               engine_factory=lambda app: FakeEngine(app, answers))
    records = read_records(out.run_dir)
    assert [r.run for r in records] == ["target", "draft", "sr7", "sr7", "draft", "target"]
    assert len({r.problem_id for r in records[:3]}) == 1 and records[3].problem_id != records[0].problem_id
    assert read_meta(out.run_dir)["order"].startswith("alternated")


def test_runs_with_their_own_app_overrides_get_their_own_engine(tmp_path, answers):
    runs = ("runs=[{name: target, knobs: {method: target}}, "
            "{name: target-sd, knobs: {method: target}, app_overrides: [target.max_model_len=2048]}]")
    out = runner.run_benchmark(_config(tmp_path, runs), command="cmd",
                               engine_factory=lambda app: FakeEngine(app, answers))
    assert [e.app.target.max_model_len for e in FakeEngine.instances] == [4096, 2048]
    assert all(e.closed for e in FakeEngine.instances)
    assert [e["runs"] for e in read_meta(out.run_dir)["engines"]] == [["target"], ["target-sd"]]


def test_paired_order_loads_every_engine_group_afresh_for_each_problem(tmp_path, answers):
    runs = ("runs=[{name: target, knobs: {method: target}}, {name: draft, knobs: {method: draft}}, "
            "{name: target-sd, knobs: {method: target}, app_overrides: [target.max_model_len=2048]}]")
    out = runner.run_benchmark(_config(tmp_path, runs, "order=paired"), command="cmd",
                               engine_factory=lambda app: FakeEngine(app, answers))
    records = read_records(out.run_dir)
    first, second = read_meta(out.run_dir)["dataset"]["problem_ids"]
    assert [(r.seq, r.run, r.problem_id) for r in records] == [
        (0, "target", first), (1, "draft", first), (2, "target-sd", first),
        (3, "target", second), (4, "draft", second), (5, "target-sd", second)]
    assert [e.app.target.max_model_len for e in FakeEngine.instances] == [4096, 2048, 4096, 2048]
    assert all(e.closed for e in FakeEngine.instances)
    assert [len(e.calls) for e in FakeEngine.instances] == [2 + 2, 1 + 1] * 2  # a warm-up per method per load
    engines = read_meta(out.run_dir)["engines"]
    assert [[o["problems"] for o in e["opened"]] for e in engines] == [[[first], [second]]] * 2


def test_failed_requests_are_recorded_and_counted(tmp_path, answers):
    bad = next(iter(answers))
    out = runner.run_benchmark(_config(tmp_path), command="cmd",
                               engine_factory=lambda app: FakeEngine(app, answers, frozenset({bad})))
    assert out.errors == 3
    failed = [r for r in read_records(out.run_dir) if not r.ok]
    assert {r.run for r in failed} == {"target", "draft", "sr7"}
    assert all(r.error.startswith("InvalidRequestError") and not r.correct and r.stats is None for r in failed)


def test_bad_knobs_fail_before_anything_runs(tmp_path):
    cfg = _config(tmp_path, "runs=[{name: target, knobs: {method: target, threshold: 12}}]")
    with pytest.raises(ConfigError, match="run target: knobs.threshold"):
        runner.run_benchmark(cfg, command="cmd", engine_factory=pytest.fail)
    assert list(tmp_path.iterdir()) == []


def test_served_mode_sends_requests_through_the_client(tmp_path, answers):
    clients: list[FakeClient] = []

    def factory(url: str, timeout: float) -> FakeClient:
        assert (url, timeout) == ("http://127.0.0.1:8000", 1800.0)
        clients.append(FakeClient(load_config(), answers))
        return clients[-1]

    cfg = _config(tmp_path, "mode=served", "url=http://127.0.0.1:8000", "concurrency=2")
    out = runner.run_benchmark(cfg, command="cmd", client_factory=factory)
    records = read_records(out.run_dir)
    assert (len(records), out.errors) == (6, 0)
    assert sorted(r.seq for r in records) == list(range(6))
    assert {r.arm for r in records} == {FakeClient.ARM}  # the server's arm choice is kept with each record
    assert 1 <= len(clients) <= 2 and all(c.closed for c in clients)
    (engine,) = read_meta(out.run_dir)["engines"]
    assert engine["served"] is True
    (opened,) = engine["opened"]
    assert opened["server_before"]["stats"]["defaults"]["threshold"] == 7.0  # what the server says is in force
    assert opened["server_before"]["health"] == {"error": "ConnectionError: no /healthz here"}


def test_launched_served_mode_serves_each_engine_group_until_its_runs_are_done(tmp_path, answers):
    """launch=true: one app per engine group with that group's config (per-run app_overrides included), each
    stopped after its clients closed and before the next group's app starts."""
    events: list[str] = []
    apps: dict[str, AppArgs] = {}

    @contextlib.contextmanager
    def launcher(app: AppArgs) -> Iterator[str]:
        url = f"http://launched-{len(apps)}:8000"
        apps[url] = app
        events.append(f"start {url}")
        yield url
        events.append(f"stop {url}")

    def factory(url: str, timeout: float) -> FakeClient:
        client = FakeClient(apps[url], answers)
        client.close = lambda: events.append(f"close client of {url}")  # type: ignore[method-assign]
        return client

    runs = ("runs=[{name: target, knobs: {method: target}}, "
            "{name: token-level, knobs: {method: target}, app_overrides: [target.speculative.model=d]}]")
    cfg = _config(tmp_path, "mode=served", "launch=true", runs)
    out = runner.run_benchmark(cfg, command="cmd", client_factory=factory, app_launcher=launcher)
    assert (out.records, out.errors) == (4, 0)
    first, second = "http://launched-0:8000", "http://launched-1:8000"
    assert events == [f"start {first}", f"close client of {first}", f"stop {first}",
                      f"start {second}", f"close client of {second}", f"stop {second}"]
    assert apps[first].target.speculative is None and apps[second].target.speculative is not None
    engines = read_meta(out.run_dir)["engines"]
    assert [(e["runs"], e["launched"]) for e in engines] == [(["target"], True), (["token-level"], True)]


def test_a_benchmark_runs_each_run_in_process_and_served_paired_problem_by_problem(tmp_path, answers):
    """Runs with their own `mode: served` beside in-process ones (order paired): per problem the engine is loaded
    and closed, then the app launched and stopped, so the two sides never share the machine."""
    events: list[str] = []

    @contextlib.contextmanager
    def launcher(app: AppArgs) -> Iterator[str]:
        events.append("start app")
        yield "http://launched:8000"
        events.append("stop app")

    def engine(app: AppArgs) -> FakeEngine:
        events.append("load engine")
        fake = FakeEngine(app, answers)

        async def close() -> None:
            events.append("close engine")

        fake.close = close  # type: ignore[method-assign]
        return fake

    def client(url: str, timeout: float) -> FakeClient:
        fake = FakeClient(load_config(), answers)
        fake.close = lambda: events.append("close client")  # type: ignore[method-assign]
        return fake

    runs = ("runs=[{name: target, knobs: {method: target}}, "
            "{name: target-served, mode: served, knobs: {method: target}}]")
    cfg = _config(tmp_path, runs, "launch=true", "order=paired")
    out = runner.run_benchmark(cfg, command="cmd", engine_factory=engine, client_factory=client,
                               app_launcher=launcher)
    assert events == ["load engine", "close engine", "start app", "close client", "stop app"] * 2
    first, second = read_meta(out.run_dir)["dataset"]["problem_ids"]
    assert [(r.run, r.problem_id) for r in read_records(out.run_dir)] == [
        ("target", first), ("target-served", first), ("target", second), ("target-served", second)]
    meta = read_meta(out.run_dir)
    assert meta["mode"] == "mixed" and [r["mode"] for r in meta["runs"]] == ["inprocess", "served"]
    assert [(e["served"], e["launched"]) for e in meta["engines"]] == [(False, False), (True, True)]
    assert "in-process and served by apps the runner launched" in (out.run_dir / "report.md").read_text()


def test_run_from_cli_prints_the_report_and_returns_nonzero_on_failures(tmp_path, answers, monkeypatch, capsys):
    bad = next(iter(answers))
    monkeypatch.setattr(runner, "default_engine_factory", lambda app: FakeEngine(app, answers, frozenset({bad})))
    code = runner.run_from_cli([str(CONFIGS_DIR / "engine20.yaml")],
                               ["dataset.size=2", f"output_dir={tmp_path}", "plots=false"], prog="specserve bench")
    out = capsys.readouterr()
    assert code == 1
    assert "| specreason-t7 |" in out.out and "results:" in out.err
    (run_dir,) = tmp_path.iterdir()
    meta = json.loads((run_dir / "meta.json").read_text())
    assert meta["command"].startswith("specserve bench ") and meta["command"].endswith("plots=false")


def test_main_reports_config_errors_with_exit_code_2(capsys):
    assert runner.main([str(CONFIGS_DIR / "engine20.yaml"), "baseline=nope"]) == 2
    assert "benchmark: error" in capsys.readouterr().err


def test_a_failed_warmup_stops_the_benchmark_and_marks_it_failed(tmp_path, answers):
    def factory(url: str, timeout: float) -> FakeClient:
        client = FakeClient(load_config(), answers)
        client.engine.fail_questions = frozenset({runner.WARMUP_QUESTION})
        return client

    cfg = _config(tmp_path, "mode=served", "url=http://127.0.0.1:8000")
    with pytest.raises(runner.WarmupError, match="warm-up request of run target failed: InvalidRequestError"):
        runner.run_benchmark(cfg, command="cmd", client_factory=factory)
    (run_dir,) = tmp_path.iterdir()
    assert read_meta(run_dir)["status"].startswith("failed: WarmupError")
