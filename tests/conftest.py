"""Shared fixtures: tiny random draft/target models built once per session."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from benchmarks.tiny_models import build_tiny_pair


@dataclass(frozen=True, slots=True)
class TinyModelDirs:
    """HF model directories of the tiny draft and target (same tokenizer, different weights)."""

    draft: Path
    target: Path


@pytest.fixture(scope="session")
def tiny_model_dirs(tmp_path_factory: pytest.TempPathFactory) -> TinyModelDirs:
    draft, target = build_tiny_pair(tmp_path_factory.mktemp("tiny-models"))
    return TinyModelDirs(draft=draft, target=target)
