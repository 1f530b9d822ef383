"""OpenMP's barrier spin for engine processes: set unless the user chose a wait policy."""

from __future__ import annotations

import pytest

from cluster.backends.openmp import SPIN_COUNT, USER_SETTINGS, openmp_environment


@pytest.fixture
def clean_environment(monkeypatch):
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_short_spin_by_default(clean_environment):
    assert openmp_environment() == {"GOMP_SPINCOUNT": SPIN_COUNT}


@pytest.mark.parametrize(("name", "value"), [("GOMP_SPINCOUNT", "300000"), ("OMP_WAIT_POLICY", "passive")])
def test_a_user_wait_policy_is_left_alone(clean_environment, name, value):
    clean_environment.setenv(name, value)
    assert openmp_environment() == {}

