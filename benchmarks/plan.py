"""Benchmark planning: which engine serves which runs, and the order requests are sent in."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import ValidationError

from benchmarks.config import BenchConfig, Mode, RunSpec
from benchmarks.datasets import Problem
from cluster.config.loader import format_validation_error, load_config
from cluster.config.schema import AppArgs
from cluster.errors import ConfigError

ORDER_NOTES = {
    "grouped": "grouped by run: all problems of one run, then the next run (config order)",
    "interleaved": "interleaved: every run on one problem, then the next problem",
    "alternated": "alternated: every run on one problem, then the next problem, the runs in reverse order on every "
                  "other problem (each run is second, finding the first's prompts in the prefix cache, on half)",
    "paired": "paired: every run on one problem, then the next problem, each engine group loaded afresh for each "
              "problem, so runs on different engines are also close in time",
}


@dataclass(frozen=True, slots=True)
class Job:
    """One planned request: a run on a problem, `seq` its place in the planned order."""

    seq: int
    run: RunSpec
    problem: Problem


@dataclass(frozen=True, slots=True)
class EngineGroup:
    """Runs that share one mode and app config, hence one engine (in-process) or one app (served)."""

    app: AppArgs
    app_overrides: tuple[str, ...]
    runs: tuple[RunSpec, ...]
    mode: Mode

    @property
    def served(self) -> bool:
        return self.mode == "served"


def plan_jobs(runs: Sequence[RunSpec], problems: Sequence[Problem], order: str, start: int = 0) -> list[Job]:
    """Requests in execution order: run-major ("grouped") or problem-major ("interleaved", "paired"; "alternated":
    the runs reversed on the 2nd, 4th, … problem)."""
    if order == "grouped":
        pairs = [(r, p) for r in runs for p in problems]
    else:
        flip = order == "alternated"
        pairs = [(r, p) for i, p in enumerate(problems) for r in (runs[::-1] if flip and i % 2 else runs)]
    return [Job(start + i, r, p) for i, (r, p) in enumerate(pairs)]


def sessions(groups: Sequence[EngineGroup], problems: Sequence[Problem],
             order: str) -> list[tuple[int, Sequence[Problem]]]:
    """(engine group index, its problems) for each opening of a group (its engine loaded, its app launched, or a
    running app's client opened): each group once for all problems, or ("paired") once per problem, in turn."""
    if order == "paired":
        return [(i, [p]) for p in problems for i in range(len(groups))]
    return [(i, problems) for i in range(len(groups))]


def engine_groups(cfg: BenchConfig) -> list[EngineGroup]:
    """Selected runs grouped by mode and app overrides (first-appearance order), knobs validated.

    Raises:
        ConfigError: an invalid app config or a run knob the app's ReasoningParams rejects.
    """
    by_key: dict[tuple[Mode, tuple[str, ...]], list[RunSpec]] = {}
    for run in cfg.selected_runs():
        by_key.setdefault((cfg.mode_of(run), tuple(run.app_overrides)), []).append(run)
    groups = []
    for (mode, overrides), runs in by_key.items():
        app = load_config(cfg.app_config, [*cfg.app_overrides, *overrides])
        for run in runs:
            try:
                app.reasoning.with_overrides(run.knobs)
            except ValidationError as e:
                raise ConfigError(f"run {run.name}: {format_validation_error(e, 'knobs.')}") from e
        groups.append(EngineGroup(app, overrides, tuple(runs), mode))
    return groups
