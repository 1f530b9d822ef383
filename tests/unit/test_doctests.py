"""The docstring examples (`>>>`) in the project's packages run and hold."""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODULES = sorted(
    ".".join(path.relative_to(ROOT).with_suffix("").parts)
    for package in ("cluster", "deployments", "benchmarks")
    for path in (ROOT / package).rglob("*.py")
    if ">>>" in path.read_text(encoding="utf-8")
)


def test_some_modules_have_examples():
    assert MODULES


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_hold(name):
    """Examples marked `# doctest: +SKIP` (a running server) are skipped."""
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} examples failed (see the output above)"
