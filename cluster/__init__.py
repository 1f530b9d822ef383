"""specserve's Ray-free engine: configuration, reasoning methods, model backends, client.

Public names are re-exported here; heavy dependencies (torch, transformers, vLLM) load only when a
backend is created.
"""

from cluster.client import SpecServeClient
from cluster.config import AppArgs, ModelSpec, ReasoningParams, load_config
from cluster.engine import Engine
from cluster.errors import ConfigError, InvalidRequestError, SpecServeError
from cluster.reasoning.methods import METHODS, get_method
from cluster.reasoning.types import ReasoningResult, StepRecord

__all__ = [
    "METHODS",
    "AppArgs",
    "ConfigError",
    "Engine",
    "InvalidRequestError",
    "ModelSpec",
    "ReasoningParams",
    "ReasoningResult",
    "SpecServeClient",
    "SpecServeError",
    "StepRecord",
    "get_method",
    "load_config",
]
