"""Environment-backed knobs: every value here can be overridden by an environment variable."""

from __future__ import annotations

import os
from pathlib import Path

# Where `specserve models pull` writes model directories and where configured model names resolve.
MODELS_DIR = Path(os.environ.get("SPECSERVE_MODELS_DIR", Path.home() / ".cache" / "specserve" / "models"))

# Configuration file used when none is given on the command line.
DEFAULT_CONFIG = Path(
    os.environ.get("SPECSERVE_CONFIG", Path(__file__).resolve().parent.parent / "configs" / "default.yaml")
)

# Environment variable that carries the optional API key (issue: production surfaces).
API_KEY_ENV = "SPECSERVE_API_KEY"
