"""SSR's strategy pool: lettering, the selection prompt and parsing the target's pick."""

from __future__ import annotations

import pytest

from cluster.reasoning.strategies import MATH_POOL, StrategyPool

POOL = StrategyPool()


def test_default_math_pool_is_a_to_l_plus_fallback_m():
    assert len(MATH_POOL) == 12
    assert [s.code for s in POOL.strategies] == list("ABCDEFGHIJKL")
    assert POOL.fallback.code == "M" and POOL.fallback.hint is None


@pytest.mark.parametrize("reply, codes", [
    ("B, E, F", ["B", "E", "F"]),
    ("B,E,F,G", ["B", "E", "F"]),
    ("B, B, E", ["B", "B", "E"]),
    ("E", ["E", "M", "M"]),
    ("Z, Q, C", ["C", "M", "M"]),
    ("", ["M", "M", "M"]),
    ("D, K\nI think A is also good", ["D", "K", "M"]),
    ("Both B and G.", ["B", "G", "M"]),
], ids=["plain", "too-many", "repeat", "short-pad", "unknown-letters", "empty", "first-line-only", "in-words"])
def test_parse_selection_takes_the_first_k_codes_and_pads(reply, codes):
    assert [s.code for s in POOL.parse_selection(reply, 3)] == codes


def test_selected_strategies_carry_their_hint():
    (b,) = POOL.parse_selection("B", 1)
    assert b.hint == MATH_POOL[1]


def test_selection_prompt_lists_every_strategy_and_asks_for_k():
    messages, prefill = POOL.selection_prompt("What is 2 + 2?", 3)
    text = messages[0].content
    assert messages[0].role == "user" and text.startswith("What is 2 + 2?")
    assert all(f"{s.code}. {s.hint}" in text for s in POOL.strategies) and "\nM. " in text
    assert "3 methods" in text and prefill.endswith(": ")


def test_custom_pool_and_limits():
    pool = StrategyPool(["Work backwards.", "Try small cases."])
    assert [s.code for s in pool.parse_selection("B, A, C", 3)] == ["B", "A", "C"]
    assert pool.fallback.code == "C"
    with pytest.raises(ValueError):
        StrategyPool([])
    with pytest.raises(ValueError):
        StrategyPool(["x"] * 26)
