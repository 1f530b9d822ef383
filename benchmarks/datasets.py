"""Offline, seeded problem sets: reasoning-gym generators and the numeric-answer part of CHAMP."""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from benchmarks.config import DatasetConfig
from cluster.errors import ConfigError


@dataclass(frozen=True, slots=True)
class Problem:
    """One benchmark problem.

    Attributes:
        id: stable identifier (the same problem has the same id in every run and every re-run).
        question: the text sent to the engine.
        answer: the reference answer, compared with `cluster.reasoning.steps.answers_match`.
    """

    id: str
    question: str
    answer: str


# Longer chains than reasoning-gym's defaults (2–6 terms): more steps per problem for the speculation to act on.
LONG_ARITHMETIC = {"min_terms": 6, "max_terms": 10, "min_digits": 1, "max_digits": 3}
_PLAIN_NUMBER = re.compile(r"\s*-?\d[\d,]*(?:\.\d+)?\s*")


def _reasoning_gym(task: str, cfg: DatasetConfig, defaults: dict[str, Any]) -> list[Problem]:
    import reasoning_gym  # lazy: only the benchmark needs it (the `bench` extra)

    try:
        data = reasoning_gym.create_dataset(task, size=cfg.size, seed=cfg.seed, **{**defaults, **cfg.options})
    except (TypeError, AssertionError) as e:  # reasoning-gym checks its settings with dataclass init and asserts
        raise ConfigError(f"dataset {task}: invalid dataset.options {cfg.options}: {e}") from e
    return [Problem(f"{task}-s{cfg.seed}-{i}", str(e["question"]), str(e["answer"])) for i, e in enumerate(data)]


def load_gsm_symbolic(cfg: DatasetConfig) -> list[Problem]:
    """reasoning-gym `gsm_symbolic`: GSM8K-derived word problems with numeric answers."""
    return _reasoning_gym("gsm_symbolic", cfg, {})


def load_basic_arithmetic(cfg: DatasetConfig) -> list[Problem]:
    """reasoning-gym `basic_arithmetic` with 6–10 terms (override with `dataset.options`)."""
    return _reasoning_gym("basic_arithmetic", cfg, LONG_ARITHMETIC)


def champ_numeric_sample(items: Iterable[tuple[str, str, str]], size: int, seed: int) -> list[Problem]:
    """A seeded sample of the problems whose reference answer is a plain number.

    CHAMP's other answers are free text or formulas ("0 is the only possible value", "4^n") that
    `answers_match` cannot check honestly, so they are left out (79 of 270 problems remain).

    Args:
        items: (identifier, question, answer) triples, in any order.
        size: how many to draw.
        seed: seed of the draw (the pool is sorted by identifier first, so the sample is deterministic).

    Raises:
        ConfigError: `size` exceeds the numeric pool.
    """
    pool = sorted((pid, q, a.strip()) for pid, q, a in items if _PLAIN_NUMBER.fullmatch(a))
    if size > len(pool):
        raise ConfigError(f"dataset.size={size} but CHAMP has only {len(pool)} problems with a numeric answer")
    return [Problem(pid, q, a) for pid, q, a in random.Random(seed).sample(pool, size)]


def load_champ(cfg: DatasetConfig) -> list[Problem]:
    """CHAMP (competition math, MIT licence): a seeded sample of the numeric-answer problems."""
    try:
        import champ_dataset
    except ImportError as e:
        raise ConfigError("dataset champ needs the champ-dataset package (pip install champ-dataset==1.0.0)") from e
    data = champ_dataset.load("v0")
    return champ_numeric_sample(((p.identifier, p.text, p.answer) for p in data.problems.values()),
                                cfg.size, cfg.seed)


LOADERS: dict[str, Callable[[DatasetConfig], list[Problem]]] = {
    "gsm_symbolic": load_gsm_symbolic,
    "basic_arithmetic": load_basic_arithmetic,
    "champ": load_champ,
}


def load_problems(cfg: DatasetConfig) -> list[Problem]:
    """The problems `cfg` names; the same config always gives the same problems in the same order.

    Raises:
        ValueError: unknown dataset name (lists the valid ones).
        ConfigError: a dataset that cannot be loaded as configured.
    """
    try:
        loader = LOADERS[cfg.name]
    except KeyError:
        raise ValueError(f"Unknown dataset {cfg.name!r}; valid: {sorted(LOADERS)}") from None
    problems = loader(cfg)
    if cfg.select is not None:
        problems = [problems[i] for i in sorted(set(cfg.select))]
    ids = [p.id for p in problems]
    assert len(set(ids)) == len(ids), "problem ids must be unique"
    return problems
