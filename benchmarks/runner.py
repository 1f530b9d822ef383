"""The benchmark runner: every selected run on every problem, in-process or against a served app.

Usage: `python -m benchmarks.runner [bench.yaml …] [key=value …]` (or `specserve bench …`); writes
`<output_dir>/<name>-<UTC time>/{records.jsonl, meta.json, report.md, *.png}` and prints the report.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import shlex
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tqdm import tqdm

from benchmarks.config import BenchConfig, RunSpec, load_bench_config
from benchmarks.datasets import Problem, load_problems
from benchmarks.environment import app_info, git_info, machine_info, versions
from benchmarks.local_app import launched_app
from benchmarks.plan import ORDER_NOTES, EngineGroup, Job, engine_groups, plan_jobs, sessions
from benchmarks.reasoners import (
    AppLauncher,
    ClientFactory,
    EngineFactory,
    EngineReasoner,
    Reasoner,
    ServedReasoner,
)
from benchmarks.records import ProblemRecord, RecordWriter, write_meta
from cluster.config.schema import AppArgs
from cluster.errors import SpecServeError
from cluster.reasoning.steps import answers_match
from cluster.reasoning.types import Candidate, ReasoningStats, StepRecord

logger = logging.getLogger(__name__)

WARMUP_QUESTION = "Tom has 3 bags with 4 apples in each bag. How many apples does Tom have?"


class WarmupError(SpecServeError):
    """The untimed warm-up request failed: the engine or server is not able to run the benchmark."""


@dataclass(frozen=True, slots=True)
class BenchOutcome:
    """Where a finished benchmark wrote its results, and how many requests failed."""

    run_dir: Path
    records: int
    errors: int


def default_engine_factory(app: AppArgs) -> Any:
    from cluster.engine import Engine  # lazy: loads torch/transformers or vLLM

    return Engine(app)


def _to_record(job: Job, result: dict[str, Any], latency: float, started: float) -> ProblemRecord:
    answer = result.get("answer")
    return ProblemRecord(
        run=job.run.name, knobs=job.run.knobs, problem_id=job.problem.id, question=job.problem.question,
        expected=job.problem.answer, predicted=answer, correct=answers_match(answer, job.problem.answer),
        latency_s=latency, seq=job.seq, started_s=started, method=result.get("method"),
        arm=result.get("arm"), stop_reason=result.get("stop_reason"), text=result.get("text"),
        stats=ReasoningStats.from_dict(result["stats"]),
        steps=tuple(StepRecord.from_dict(s) for s in result.get("steps") or ()),
        candidates=tuple(Candidate.from_dict(c) for c in result.get("candidates") or ()),
    )


async def _request(reasoner: Reasoner, job: Job, t0: float) -> ProblemRecord:
    started = time.perf_counter()
    try:
        result = await reasoner.reason(job.problem.question, job.run.knobs)
        return _to_record(job, result, time.perf_counter() - started, started - t0)
    except Exception as e:  # the benchmark's boundary: a failed request is an outcome, recorded with its error
        logger.warning("run %s, problem %s failed: %s: %s", job.run.name, job.problem.id, type(e).__name__, e)
        return ProblemRecord(run=job.run.name, knobs=job.run.knobs, problem_id=job.problem.id,
                             question=job.problem.question, expected=job.problem.answer, predicted=None,
                             correct=False, latency_s=time.perf_counter() - started, seq=job.seq,
                             started_s=started - t0, error=f"{type(e).__name__}: {e}")


async def _run_jobs(reasoner: Reasoner, jobs: Sequence[Job], concurrency: int, t0: float,
                    sink: Callable[[ProblemRecord], None]) -> None:
    """Run `jobs` with at most `concurrency` in flight; they start in planned order (the semaphore is FIFO)."""
    gate = asyncio.Semaphore(concurrency)

    async def one(job: Job) -> None:
        async with gate:
            record = await _request(reasoner, job, t0)
        sink(record)

    await asyncio.gather(*(one(j) for j in jobs))


async def _warmup(reasoner: Reasoner, runs: Sequence[RunSpec], tokens: int,
                  default_method: str) -> list[dict[str, Any]]:
    """One short untimed request per distinct method, on a question outside the dataset.

    Raises:
        WarmupError: a warm-up request failed (a benchmark whose warm-up fails is not worth running).
    """
    done: list[dict[str, Any]] = []
    for run in runs:
        method = run.knobs.get("method", default_method)
        if any(w["method"] == method for w in done):
            continue
        t = time.perf_counter()
        try:
            await reasoner.reason(WARMUP_QUESTION, {**run.knobs, "max_total_tokens": tokens})
        except Exception as e:
            raise WarmupError(f"warm-up request of run {run.name} failed: {type(e).__name__}: {e}") from e
        done.append({"method": method, "run": run.name, "latency_s": time.perf_counter() - t})
    return done


class _Progress:
    """tqdm bar plus per-run running accuracy; also writes each record as it arrives."""

    def __init__(self, total: int, writer: RecordWriter) -> None:
        self.bar = tqdm(total=total, unit="req", dynamic_ncols=True, desc="bench")
        self.writer = writer
        self.correct: dict[str, list[int]] = {}
        self.errors = 0
        self.count = 0

    def __call__(self, record: ProblemRecord) -> None:
        self.writer.write(record)
        self.count += 1
        self.errors += not record.ok
        tally = self.correct.setdefault(record.run, [0, 0])
        tally[0] += record.correct
        tally[1] += 1
        self.bar.set_postfix_str(f"{record.run} {tally[0]}/{tally[1]} correct, {self.errors} errors")
        self.bar.update()


@dataclass(frozen=True, slots=True)
class _Factories:
    engine: EngineFactory
    client: ClientFactory | None
    app: AppLauncher


def _open_reasoner(cfg: BenchConfig, group: EngineGroup, factories: _Factories,
                   stack: contextlib.AsyncExitStack) -> Reasoner:
    """The group's reasoner, closed by `stack`; a launched app is stopped by `stack` after the reasoner closes."""
    if group.served:
        if cfg.launch:
            logger.info("launching the app for runs %s", [r.name for r in group.runs])
            url = stack.enter_context(factories.app(group.app))
        else:
            assert cfg.url is not None  # validated by BenchConfig
            url = cfg.url
        reasoner: Reasoner = ServedReasoner(url, cfg.request_timeout_s, cfg.concurrency, factories.client)
    else:
        logger.info("loading the engine for runs %s", [r.name for r in group.runs])
        reasoner = EngineReasoner(factories.engine(group.app))
    stack.push_async_callback(reasoner.close)
    return reasoner


async def _execute(cfg: BenchConfig, groups: Sequence[EngineGroup], problems: Sequence[Problem],
                   progress: _Progress, meta: dict[str, Any], factories: _Factories) -> None:
    t0 = time.perf_counter()
    seq = 0
    for index, batch in sessions(groups, problems, cfg.order):
        group, t = groups[index], time.perf_counter()
        opened: dict[str, Any] = {"problems": [p.id for p in batch]}
        meta["engines"][index]["opened"].append(opened)
        async with contextlib.AsyncExitStack() as stack:
            reasoner = _open_reasoner(cfg, group, factories, stack)
            opened["load_s"] = time.perf_counter() - t
            opened["warmup"] = (await _warmup(reasoner, group.runs, cfg.warmup_tokens, group.app.reasoning.method)
                                if cfg.warmup else [])
            opened["server_before"] = await reasoner.describe()
            jobs = plan_jobs(group.runs, batch, cfg.order, seq)
            seq += len(jobs)
            await _run_jobs(reasoner, jobs, cfg.concurrency, t0, progress)
            opened["server_after"] = await reasoner.describe()


def _new_run_dir(cfg: BenchConfig, started: datetime) -> Path:
    base = Path(cfg.output_dir) / f"{cfg.name}-{started:%Y%m%d-%H%M%S}"
    path, n = base, 1
    while path.exists():
        n += 1
        path = base.with_name(f"{base.name}-{n}")
    path.mkdir(parents=True)
    return path


def _mode(groups: Sequence[EngineGroup]) -> str:
    """The benchmark's mode as run: "inprocess", "served", or "mixed" (runs of both, e.g. to pair them)."""
    modes = {g.mode for g in groups}
    return "mixed" if len(modes) > 1 else next(iter(modes), "inprocess")


def _meta(cfg: BenchConfig, groups: Sequence[EngineGroup], problems: Sequence[Problem], command: str,
          started: datetime) -> dict[str, Any]:
    return {
        "schema_version": 1, "name": cfg.name, "command": command, "argv": sys.argv,
        "started_at": started.isoformat(timespec="seconds"), "finished_at": None, "status": "running",
        "mode": _mode(groups), "url": cfg.url, "concurrency": cfg.concurrency, "order": ORDER_NOTES[cfg.order],
        "dataset": {**cfg.dataset.model_dump(mode="json"), "problem_ids": [p.id for p in problems]},
        "runs": [{"name": r.name, "knobs": r.knobs, "app_overrides": r.app_overrides,
                  "mode": g.mode,
                  "params": g.app.reasoning.with_overrides(r.knobs).model_dump(mode="json")}
                 for g in groups for r in g.runs],
        "baseline": cfg.baseline, "compare_to": cfg.compare_to,
        "engines": [{"runs": [r.name for r in g.runs], "app_overrides": list(g.app_overrides),
                     "served": g.served, "launched": g.served and cfg.launch, **app_info(g.app),
                     "opened": []} for g in groups],
        "machine": machine_info(), "versions": versions(), "git": git_info(),
        "config": cfg.model_dump(mode="json"),
    }


def run_benchmark(cfg: BenchConfig, *, command: str, engine_factory: EngineFactory | None = None,
                  client_factory: ClientFactory | None = None, app_launcher: AppLauncher | None = None) -> BenchOutcome:
    """Run the benchmark `cfg` describes and write its results folder (records, meta, report, plots).

    Args:
        cfg: the validated benchmark config.
        command: the command line that reproduces this run (recorded in meta.json and the report).
        engine_factory: builds the in-process engine from an app config (default: `cluster.engine.Engine`).
        client_factory: builds a served-mode client from (url, timeout) (default: `cluster.client`).
        app_launcher: serves an app config and yields its base URL, for `launch=true` (default: a local Ray in
            this process, `benchmarks.local_app.launched_app`).

    Raises:
        ConfigError: invalid app config or knobs, or a dataset that cannot be loaded.
    """
    from benchmarks.report import render_run_dir  # report imports matplotlib; keep it off the import path

    groups = engine_groups(cfg)
    problems = load_problems(cfg.dataset)
    started = datetime.now(UTC)
    run_dir = _new_run_dir(cfg, started)
    meta = _meta(cfg, groups, problems, command, started)
    write_meta(run_dir, meta)
    writer = RecordWriter(run_dir)
    progress = _Progress(len(problems) * sum(len(g.runs) for g in groups), writer)
    logger.info("benchmark %s: %d runs × %d problems → %s", cfg.name, len(cfg.selected_runs()), len(problems),
                run_dir)
    try:
        asyncio.run(_execute(cfg, groups, problems, progress, meta,
                             _Factories(engine_factory or default_engine_factory, client_factory,
                                        app_launcher or launched_app)))
        meta["status"] = "complete"
    except BaseException as e:
        meta["status"] = f"failed: {type(e).__name__}: {e}"
        raise
    finally:
        progress.bar.close()
        writer.close()
        meta.update(finished_at=datetime.now(UTC).isoformat(timespec="seconds"), records=progress.count,
                    errors=progress.errors)
        write_meta(run_dir, meta)
    render_run_dir(run_dir, plots=cfg.plots)
    return BenchOutcome(run_dir, progress.count, progress.errors)


def run_from_cli(files: list[str], overrides: list[str], *, prog: str = "python -m benchmarks.runner") -> int:
    """`specserve bench [bench.yaml …] [key=value …]`: run, write the results folder, print the report.

    Returns:
        0 when every request succeeded, 1 when some failed (they are in the records and the report).

    Raises:
        SpecServeError (ConfigError, …): the benchmark could not start.
    """
    cfg = load_bench_config(files, overrides)
    outcome = run_benchmark(cfg, command=shlex.join([*shlex.split(prog), *files, *overrides]))
    print((outcome.run_dir / "report.md").read_text(encoding="utf-8"))
    print(f"results: {outcome.run_dir}", file=sys.stderr)
    return 0 if outcome.errors == 0 else 1


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.runner", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("items", nargs="*", help="benchmark config files, then key=value overrides "
                                                 "(default: benchmarks/configs/engine20.yaml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    ns = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if ns.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    files = [i for i in ns.items if "=" not in i]
    overrides = [i for i in ns.items if "=" in i]
    try:
        return run_from_cli(files, overrides)
    except SpecServeError as e:
        print(f"benchmark: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
