"""The judge-calibration helpers: yes/no scores and the AUC of good vs bad candidate scores."""

from __future__ import annotations

import pytest

from benchmarks.judge_calibration import CASES, yes_no_score
from benchmarks.metrics import auc


def test_yes_no_score_renormalises_over_yes_and_no():
    assert yes_no_score((("Yes", 0.6), ("No", 0.2), ("To", 0.2))) == pytest.approx(9 * 0.75)
    assert yes_no_score((("maybe", 1.0),)) == 0.0


def test_auc_counts_ties_as_half():
    assert auc([9.0, 8.0], [1.0, 2.0]) == 1.0
    assert auc([5.0], [5.0]) == 0.5
    assert auc([1.0], [2.0, 0.5]) == 0.5
    assert auc([], [1.0]) is None


def test_cases_hold_good_and_bad_candidates():
    assert {correct for *_, correct in CASES} == {True, False}
