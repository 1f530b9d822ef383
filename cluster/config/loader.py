"""OmegaConf loading: base file → overlays → `key=value` overrides → resolve → pydantic validation."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf
from omegaconf.errors import OmegaConfBaseException
from pydantic import ValidationError

from cluster.config.schema import AppArgs
from cluster.constants import DEFAULT_CONFIG
from cluster.errors import ConfigError


def format_validation_error(err: ValidationError, prefix: str = "") -> str:
    """One line per problem: the dotted key and the reason."""
    lines = []
    for e in err.errors():
        key = ".".join(str(p) for p in e["loc"]) or "<root>"
        lines.append(f"{prefix}{key}: {e['msg']}")
    return "; ".join(lines)


def load_raw(files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> dict[str, Any]:
    """Merge YAML files (the default config when none is given) and `key=value` overrides into a dict."""
    paths = [Path(f) for f in files] or [DEFAULT_CONFIG]
    try:
        merged = OmegaConf.merge(*(OmegaConf.load(p) for p in paths), OmegaConf.from_dotlist(list(overrides)))
        data = OmegaConf.to_container(merged, resolve=True, throw_on_missing=True)
    except FileNotFoundError as e:
        raise ConfigError(f"config file not found: {e.filename}") from e
    except (OmegaConfBaseException, ValueError) as e:
        raise ConfigError(f"cannot load config: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError("config must be a mapping at the top level")
    return {str(k): v for k, v in data.items()}


def load_config(files: Sequence[str | Path] = (), overrides: Sequence[str] = ()) -> AppArgs:
    """Load and validate the configuration.

    Raises:
        ConfigError: naming every invalid key and the reason.
    """
    raw = load_raw(files, overrides)
    try:
        return AppArgs.model_validate(raw)
    except ValidationError as e:
        raise ConfigError(f"invalid config: {format_validation_error(e)}") from e
