"""Answer extraction, answer comparison and judge-score parsing."""

from __future__ import annotations

import pytest

from cluster.reasoning.scoring import score_from_distribution
from cluster.reasoning.steps import answer_groups, answers_match, continuation_prefix, extract_answer, has_answer


@pytest.mark.parametrize("text, answer", [
    ("so x = 7.\n\nThe answer is \\boxed{7}.", "7"),
    ("first \\boxed{1} then \\boxed{\\frac{1}{2}}", "\\frac{1}{2}"),
    ("Answer: 1,250 dollars.", "1,250 dollars"),
    ("no answer here", None),
    ("\\boxed{unclosed", None),
], ids=["boxed", "nested-last", "answer-line", "none", "unclosed"])
def test_extract_answer(text, answer):
    assert extract_answer(text) == answer


@pytest.mark.parametrize("pred, gold, ok", [
    ("1,250", "1250", True), ("$12.50", "12.5", True), ("7", "7.0", True),
    ("8", "7", False), (None, "7", False), ("\\text{Paris}", "paris", True),
], ids=["thousands", "dollars", "trailing-zero", "wrong", "missing", "text"])
def test_answers_match(pred, gold, ok):
    assert answers_match(pred, gold) is ok


def test_answer_groups_merge_equal_numbers_and_skip_missing_answers():
    assert answer_groups(["7", None, "7.0", "$9"]) == {"7": [0, 2], "9": [3]}
    assert answer_groups([None]) == {}


def test_answer_markers():
    assert has_answer("thus \\boxed{3}") and has_answer("ANSWER: 3") and not has_answer("3 + 4 = 7")


def test_continuation_prefix_ends_with_delimiter():
    assert continuation_prefix(["a", "b"], "\n\n") == "a\n\nb\n\n" and continuation_prefix([], "\n\n") == ""


def test_score_from_distribution():
    s = score_from_distribution([("9", 0.5), (" 8", 0.25), ("x", 0.2), ("7", 0.05)])
    assert s.greedy == 9
    assert s.expected == pytest.approx((9 * 0.5 + 8 * 0.25 + 7 * 0.05) / 0.8)
    assert s.digit_mass == pytest.approx(0.8)


def test_score_non_digit_top_token_is_zero_greedy():
    s = score_from_distribution([("The", 0.9), ("5", 0.1)])
    assert s.greedy == 0 and s.expected == 5.0
    assert score_from_distribution([("no", 1.0)]).expected == 0.0
