"""Problem sets: seeded, deterministic, ids stable; CHAMP keeps only problems with a numeric answer."""

from __future__ import annotations

import pytest

from benchmarks.config import DatasetConfig
from benchmarks.datasets import Problem, champ_numeric_sample, load_problems
from cluster.errors import ConfigError


def test_gsm_symbolic_is_deterministic_for_a_seed():
    first = load_problems(DatasetConfig(name="gsm_symbolic", size=2, seed=7))
    again = load_problems(DatasetConfig(name="gsm_symbolic", size=2, seed=7))
    other = load_problems(DatasetConfig(name="gsm_symbolic", size=2, seed=8))
    assert first == again
    assert [p.id for p in first] == ["gsm_symbolic-s7-0", "gsm_symbolic-s7-1"]
    assert first != other
    assert all(isinstance(p, Problem) and p.question and p.answer for p in first)
    float(first[0].answer)  # gsm_symbolic answers are numbers


def test_problems_are_frozen():
    (p,) = load_problems(DatasetConfig(name="gsm_symbolic", size=1, seed=7))
    with pytest.raises(AttributeError):
        p.answer = "0"  # type: ignore[misc]


def test_basic_arithmetic_has_long_chains_and_takes_options():
    (p,) = load_problems(DatasetConfig(name="basic_arithmetic", size=1, seed=7))
    assert p.question.count("+") + p.question.count("-") + p.question.count("*") >= 5
    short = load_problems(DatasetConfig(name="basic_arithmetic", size=2, seed=7,
                                        options={"min_terms": 2, "max_terms": 2}))
    assert len(short) == 2


def test_bad_reasoning_gym_options_are_a_config_error():
    with pytest.raises(ConfigError, match="dataset.options"):
        load_problems(DatasetConfig(name="basic_arithmetic", size=1, seed=7, options={"no_such_option": 1}))


CHAMP_ITEMS = [
    ("P_b", "How many strings?", "239"),
    ("P_a", "Find the minimum.", "0"),
    ("P_c", "Find all values.", "0 is the only possible value"),
    ("P_d", "Find f.", "f(x)=0"),
    ("P_e", "What is the sum?", " 1,024 "),
]


def test_champ_sample_keeps_plain_numbers_and_is_seeded():
    sample = champ_numeric_sample(CHAMP_ITEMS, 3, seed=1)
    assert sorted(p.id for p in sample) == ["P_a", "P_b", "P_e"]
    assert champ_numeric_sample(reversed(CHAMP_ITEMS), 3, seed=1) == sample  # input order does not matter
    assert {p.answer for p in sample} == {"239", "0", "1,024"}


def test_champ_sample_larger_than_the_pool_is_a_config_error():
    with pytest.raises(ConfigError, match="only 3"):
        champ_numeric_sample(CHAMP_ITEMS, 4, seed=1)


@pytest.mark.slow  # parses CHAMP's 72 MB JSON (~5 s)
def test_champ_package_loads_when_installed():
    pytest.importorskip("champ_dataset")
    problems = load_problems(DatasetConfig(name="champ", size=2, seed=7))
    assert len(problems) == 2 and all(p.id.startswith("P_") for p in problems)


def test_select_keeps_the_chosen_problems_with_their_full_set_ids():
    full = load_problems(DatasetConfig(name="gsm_symbolic", size=4, seed=7))
    chosen = load_problems(DatasetConfig(name="gsm_symbolic", size=4, seed=7, select=[3, 1]))
    assert chosen == [full[1], full[3]]
    with pytest.raises(ValueError, match="dataset.select"):
        DatasetConfig(size=4, select=[4])
