"""Model backends behind one async interface; `create_backend` picks one by name."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cluster.backends.base import ChatMessage, Generation, ModelBackend, SamplingParams, TokenDistribution

if TYPE_CHECKING:
    from cluster.config.schema import ModelSpec

BACKENDS = ("transformers", "vllm")


def create_backend(spec: ModelSpec) -> ModelBackend:
    """Load the model `spec` names on the engine it names (heavy imports happen here, lazily).

    Raises:
        ValueError: unknown backend name.
        ModelNotFoundError: the path or name does not resolve to a model directory.
    """
    from cluster.modelstore import resolve_model_path

    model_dir = resolve_model_path(spec.path)
    if spec.backend == "transformers":
        from cluster.backends.hf import HFBackend

        return HFBackend(spec, model_dir)
    if spec.backend == "vllm":
        from cluster.backends.vllm import VLLMBackend

        return VLLMBackend(spec, model_dir)
    raise ValueError(f"Unknown backend {spec.backend!r}; valid: {list(BACKENDS)}")


__all__ = ["BACKENDS", "ChatMessage", "Generation", "ModelBackend", "SamplingParams", "TokenDistribution",
           "create_backend"]
