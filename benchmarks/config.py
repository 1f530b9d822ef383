"""Benchmark configuration: the pydantic schema and its OmegaConf loader (files + `key=value` overrides)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from omegaconf import DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from cluster.config.loader import format_validation_error
from cluster.errors import ConfigError

CONFIGS_DIR = Path(__file__).resolve().parent / "configs"
DEFAULT_BENCH_CONFIG = CONFIGS_DIR / "engine20.yaml"
DatasetName = Literal["gsm_symbolic", "basic_arithmetic", "champ"]
_NAME_PATTERN = r"^[A-Za-z0-9_.-]+$"
Mode = Literal["inprocess", "served"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetConfig(_Strict):
    """Which problems every run answers."""

    name: DatasetName = Field("gsm_symbolic", description="gsm_symbolic (reasoning-gym, GSM8K-derived), "
                                                          "basic_arithmetic (reasoning-gym, long chains of "
                                                          "operations) or champ (CHAMP competition problems "
                                                          "with a numeric answer; needs champ-dataset).")
    size: int = Field(20, gt=0, description="Number of problems.")
    seed: int = Field(7, description="Seed of the generator (reasoning-gym) or of the sample (champ).")
    options: dict[str, Any] = Field(default_factory=dict, description="Extra reasoning-gym generator settings "
                                                                      "(e.g. min_terms for basic_arithmetic).")
    select: list[int] | None = Field(None, description="Run only these problem indices (0-based, < size) of the "
                                                       "`size` problems, e.g. to redo problems whose timing was "
                                                       "disturbed; ids stay those of the full set.")

    @model_validator(mode="after")
    def _select_in_range(self) -> DatasetConfig:
        if self.select is not None and not all(0 <= i < self.size for i in self.select):
            raise ValueError(f"dataset.select: indices must be in [0, {self.size}), got {self.select}")
        return self


class RunSpec(_Strict):
    """One named cell of the methods × settings matrix."""

    name: str = Field(pattern=_NAME_PATTERN, description="Unique run name (used in tables, plots and records).")
    knobs: dict[str, Any] = Field(default_factory=dict, description="Request knobs (ReasoningParams fields), "
                                                                    "e.g. {method: specreason, threshold: 7}.")
    app_overrides: list[str] = Field(default_factory=list, description="In-process or launched served mode only: "
                                     "extra `key=value` overrides of the app config for this run (e.g. token-level "
                                     "speculation); runs with different overrides get their own engine (or app).")
    mode: Mode | None = Field(None, description="This run's mode, when it differs from the benchmark's `mode`: "
                              "e.g. the same run in-process and served in one benchmark, to pair them problem by "
                              "problem (the orchestration overhead; see `python -m benchmarks.overhead`).")


class BenchConfig(_Strict):
    """A whole benchmark: dataset, app, mode and the runs to compare."""

    name: str = Field("bench", pattern=_NAME_PATTERN, description="Benchmark name; its results folder starts "
                                                                  "with it.")
    dataset: DatasetConfig = Field(default_factory=DatasetConfig, description="The problems.")
    app_config: list[str] = Field(default_factory=list, description="specserve config files (relative to the "
                                  "working directory); empty = the embedded default. Served mode with a url: the "
                                  "config the server is assumed to run, used to validate knobs and recorded in "
                                  "meta.json.")
    app_overrides: list[str] = Field(default_factory=list, description="`key=value` overrides of the app config "
                                     "(e.g. draft.path=/models/tiny-draft).")
    mode: Mode = Field("inprocess", description="inprocess: one Engine in this process; served: requests over "
                                               "HTTP to an app (at url, or one the runner launches). A run may "
                                               "set its own.")
    url: str | None = Field(None, description="Base URL of a running app (served runs, unless launch is set).")
    launch: bool = Field(False, description="Served runs: the runner starts the app itself on a local Ray (as "
                                            "`specserve up` does), one app per engine group with that group's app "
                                            "config, sends the group's requests over HTTP, then stops it.")
    concurrency: int = Field(1, gt=0, description="Requests in flight at once.")
    request_timeout_s: float = Field(1800.0, gt=0, description="Served mode: client timeout of one request.")
    order: Literal["grouped", "interleaved", "alternated", "paired"] = Field(
        "grouped", description="grouped: all problems of a run, then the next run; interleaved: every run on "
                               "a problem, then the next problem, engine groups (distinct app_overrides) one after "
                               "another; alternated: like interleaved, the runs in reverse order on every other "
                               "problem (a run sent second on a problem finds the first's prompts in the prefix "
                               "cache: alternating shares that out); paired: like interleaved, but every engine "
                               "group is loaded afresh for each problem, so runs on different engines are paired in "
                               "time too.")
    warmup: bool = Field(True, description="Send one short untimed request per method before timing.")
    warmup_tokens: int = Field(32, gt=0, description="Token budget of a warm-up request.")
    runs: list[RunSpec] = Field(min_length=1, description="The runs, in the order they execute (grouped order).")
    only: list[str] | None = Field(None, description="Run only these run names (default: all).")
    baseline: str | None = Field("target", description="Run that speedups, the ceiling's achieved fraction and "
                                                       "the fallback target step time refer to.")
    compare_to: list[str] = Field(default_factory=list, description="Further reference runs for pairwise "
                                                                    "speedup columns (e.g. token-level SD).")
    output_dir: str = Field("benchmarks/runs", description="Parent folder of the results folder "
                            "(benchmarks/runs is git-ignored).")
    plots: bool = Field(True, description="Render PNG plots with the report.")

    @model_validator(mode="after")
    def _consistent(self) -> BenchConfig:
        names = [r.name for r in self.runs]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"run names must be unique; repeated: {dupes}")
        for key, wanted in (("baseline", [self.baseline] if self.baseline else []),
                            ("compare_to", self.compare_to), ("only", self.only or [])):
            unknown = [w for w in wanted if w not in names]
            if unknown:
                raise ValueError(f"{key} names unknown runs {unknown}; runs are {names}")
        served = [r for r in self.runs if self.mode_of(r) == "served"]
        if served:
            if bool(self.url) == self.launch:
                raise ValueError("mode=served needs either url (a running app) or launch=true (the runner starts "
                                 "it), not both")
            if self.url and any(r.app_overrides for r in served):
                raise ValueError("per-run app_overrides of a served run need launch=true (a running app has one "
                                 "config)")
        elif self.url or self.launch:
            raise ValueError("url and launch are for served mode, but mode is inprocess; add mode=served")
        return self

    def mode_of(self, run: RunSpec) -> Mode:
        """Where `run`'s requests go: its own mode, else the benchmark's."""
        return run.mode or self.mode

    def selected_runs(self) -> list[RunSpec]:
        """The runs to execute, in config order (`only` filters, never reorders)."""
        return [r for r in self.runs if self.only is None or r.name in self.only]


def _load_file(path: Path, seen: tuple[Path, ...] = ()) -> DictConfig:
    """One YAML file; an `extends: other.yaml` key (relative to this file) loads that file underneath."""
    path = path.resolve()
    if path in seen:
        raise ConfigError(f"config files extend each other in a cycle: {[str(p) for p in (*seen, path)]}")
    node = OmegaConf.load(path)
    if not isinstance(node, DictConfig):
        raise ConfigError(f"{path}: a benchmark config must be a mapping")
    base = node.pop("extends", None)
    if base is None:
        return node
    merged = OmegaConf.merge(_load_file(path.parent / str(base), (*seen, path)), node)
    assert isinstance(merged, DictConfig)
    return merged


def load_bench_config(files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> BenchConfig:
    """Merge benchmark YAML files (default: configs/engine20.yaml) and `key=value` overrides, then validate.

    Raises:
        ConfigError: a missing file, bad YAML, or invalid keys (each named with its reason).
    """
    paths = [Path(f) for f in files] or [DEFAULT_BENCH_CONFIG]
    try:
        merged = OmegaConf.merge(*(_load_file(p) for p in paths), OmegaConf.from_dotlist(list(overrides)))
        raw = OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except FileNotFoundError as e:
        raise ConfigError(f"benchmark config not found: {e.filename}") from e
    except (OmegaConfBaseException, ValueError) as e:
        raise ConfigError(f"cannot load benchmark config: {e}") from e
    try:
        return BenchConfig.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"invalid benchmark config: {format_validation_error(e)}") from e
