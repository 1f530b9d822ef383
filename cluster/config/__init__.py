"""Configuration: pydantic schema and the OmegaConf loader."""

from cluster.config.loader import load_config
from cluster.config.schema import AppArgs, ModelSpec, ReasoningParams

__all__ = ["AppArgs", "ModelSpec", "ReasoningParams", "load_config"]
