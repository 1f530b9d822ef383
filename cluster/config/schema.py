"""Pydantic models: the one source of truth for configuration and per-request knobs."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

MethodName = Literal["target", "draft", "specreason"]
BackendName = Literal["transformers", "vllm"]
ScoreMethod = Literal["greedy", "expected"]


class StrictModel(BaseModel):
    """Base of every config model: unknown keys are errors."""

    model_config = ConfigDict(extra="forbid", frozen=True)


class ModelSpec(StrictModel):
    """One model and the engine that runs it."""

    path: str = Field(description="Local HF model directory, or a model name resolved under the models dir "
                                  "(SPECSERVE_MODELS_DIR, filled by `specserve models pull`). Never a hub id.")
    backend: BackendName = Field("transformers", description="Engine that runs the model.")
    dtype: Literal["float32", "bfloat16", "float16", "auto"] = Field(
        "bfloat16", description="Weight and activation dtype.")
    max_model_len: int = Field(4096, gt=0, description="Context length in tokens (prompt + generated).")
    num_threads: int | None = Field(
        None, gt=0, description="CPU threads for the engine (None = every core the process may use, also in a "
                                "Ray replica, whose OMP_NUM_THREADS Ray sets to its logical num_cpus).")
    prefix_cache_entries: int = Field(
        8, ge=0, description="transformers backend: KV caches kept for prefix reuse (0 disables reuse).")
    engine_kwargs: dict[str, Any] = Field(
        default_factory=dict, description="Extra engine arguments (vLLM: passed to AsyncEngineArgs).")


class ReasoningParams(StrictModel):
    """The knobs of one reasoning request; the config holds the defaults, a request may override them."""

    method: MethodName = Field("specreason", description="Reasoning method.")
    threshold: float = Field(7.0, ge=0, le=9, description="SpecReason: accept a draft step if its 0–9 score ≥ this.")
    score_method: ScoreMethod = Field(
        "expected", description="SpecReason: threshold the greedy digit or the expected value over digits.")
    first_n_target_steps: int = Field(0, ge=0, description="SpecReason: the first n steps are written by the target.")
    max_step_tokens: int = Field(256, gt=0, description="Token cap of one step.")
    max_total_tokens: int = Field(2048, gt=0, description="Token budget of the whole reasoning.")
    max_steps: int = Field(64, gt=0, description="Cap on the number of steps.")
    temperature: float = Field(0.0, ge=0, le=2, description="Sampling temperature of step generation (0 = greedy).")
    top_p: float = Field(1.0, gt=0, le=1, description="Nucleus sampling mass of step generation.")
    seed: int | None = Field(0, description="Base RNG seed of the request (None = unseeded).")
    step_delimiter: str = Field("\n\n", min_length=1, description="String that separates reasoning steps.")

    def with_overrides(self, overrides: dict[str, Any]) -> ReasoningParams:
        """A validated copy with `overrides` applied (unknown keys and bad values raise ValidationError)."""
        return ReasoningParams.model_validate({**self.model_dump(), **overrides})


class AutoscalingConfig(StrictModel):
    """Ray Serve autoscaling of one deployment."""

    min_replicas: int = Field(1, ge=0, description="Fewest replicas.")
    max_replicas: int = Field(1, ge=1, description="Most replicas.")
    target_ongoing_requests: float = Field(2.0, gt=0, description="Ongoing requests per replica to aim for.")


class DeploymentSpec(StrictModel):
    """Resources and scaling of one Ray Serve deployment."""

    num_replicas: int = Field(1, ge=1, description="Replicas (ignored when autoscaling is set).")
    num_cpus: float = Field(1.0, ge=0, description="Logical CPUs per replica.")
    num_gpus: float = Field(0.0, ge=0, description="GPUs per replica.")
    accelerator_type: str | None = Field(None, description="Ray accelerator type (e.g. H100), GPU configs only.")
    resources: dict[str, float] = Field(default_factory=dict, description="Custom Ray resources per replica.")
    max_ongoing_requests: int = Field(64, gt=0, description="Requests a replica accepts at once.")
    autoscaling: AutoscalingConfig | None = Field(None, description="Autoscaling; None = fixed num_replicas.")


class BatchedDeploymentSpec(DeploymentSpec):
    """A model deployment (drafter or verifier): a DeploymentSpec plus batching of concurrent calls."""

    max_batch_size: int = Field(8, gt=0, description="Most calls batched into one forward pass.")
    batch_wait_timeout_s: float = Field(0.005, ge=0, description="How long a batch waits to fill.")

    @model_validator(mode="after")
    def _batch_fits(self) -> BatchedDeploymentSpec:
        if self.max_batch_size > self.max_ongoing_requests:
            raise ValueError("max_batch_size must be ≤ max_ongoing_requests (a batch never fills otherwise)")
        return self


class DeploymentsConfig(StrictModel):
    """Per-role Ray Serve deployment settings."""

    drafter: BatchedDeploymentSpec = Field(default_factory=BatchedDeploymentSpec, description="Draft-model replicas.")
    verifier: BatchedDeploymentSpec = Field(default_factory=BatchedDeploymentSpec,
                                            description="Target-model (verifier) replicas.")
    controller: DeploymentSpec = Field(default_factory=lambda: DeploymentSpec(num_cpus=0.1),
                                       description="Controller (policy state).")
    ingress: DeploymentSpec = Field(default_factory=lambda: DeploymentSpec(num_cpus=0.1, max_ongoing_requests=256),
                                    description="HTTP/gRPC ingress.")


class ServerConfig(StrictModel):
    """Ray and HTTP settings of a served app."""

    host: str = Field("127.0.0.1", description="HTTP bind address.")
    port: int = Field(8000, gt=0, lt=65536, description="HTTP port.")
    app_name: str = Field("specserve", description="Serve application name.")
    ray_num_cpus: float | None = Field(None, gt=0, description="Logical CPUs for a local Ray (None = physical).")
    request_timeout_s: float = Field(600.0, gt=0, description="Deadline of one request end to end.")
    call_timeout_s: float = Field(300.0, gt=0, description="Deadline of one call to a drafter or verifier.")
    schedule_timeout_s: float = Field(120.0, gt=0, description="`specserve up` fails when replicas are not "
                                                               "running after this long.")
    max_prompt_chars: int = Field(32768, gt=0, description="Longest question accepted, in characters.")
    served_model_name: str = Field("specserve", min_length=1, description="Model id of the OpenAI-compatible "
                                                                         "routes (/v1/models, `model` field).")
    metrics_port: int | None = Field(None, gt=0, lt=65536, description="`specserve up`: Prometheus /metrics port "
                                                                       "of the local Ray (None = Ray picks one).")


class AppArgs(StrictModel):
    """The whole configuration: models, request defaults, deployments and server."""

    draft: ModelSpec = Field(description="The draft model.")
    target: ModelSpec = Field(description="The target model (verifier and writer of rejected steps).")
    reasoning: ReasoningParams = Field(default_factory=ReasoningParams, description="Request defaults.")
    deployments: DeploymentsConfig = Field(default_factory=DeploymentsConfig, description="Ray Serve deployments.")
    server: ServerConfig = Field(default_factory=ServerConfig, description="Ray and HTTP settings.")
