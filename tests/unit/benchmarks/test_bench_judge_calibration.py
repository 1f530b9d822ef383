"""The judge-calibration helpers: yes/no scores and the hand-written cases."""

from __future__ import annotations

import pytest

from benchmarks.judge_calibration import CASES, yes_no_score


def test_yes_no_score_renormalises_over_yes_and_no():
    assert yes_no_score((("Yes", 0.6), ("No", 0.2), ("To", 0.2))) == pytest.approx(9 * 0.75)
    assert yes_no_score((("maybe", 1.0),)) == 0.0


def test_yes_no_score_reads_tokens_as_the_verdict_does():
    """Prefixes and extensions count ("Y", "No."), as Best-of-N's verdict scorer reads them."""
    assert yes_no_score((("Y", 0.3), (" yes", 0.3), ("No.", 0.2), ("The", 0.2))) == pytest.approx(9 * 0.75)


def test_cases_hold_good_and_bad_candidates():
    assert {correct for *_, correct in CASES} == {True, False}
