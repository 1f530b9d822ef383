"""The application builder: `deployments.app:build_app` is the import_path of `serve run` / `serve deploy` / KubeRay.

Four deployments, each with the resources and scaling of its `AppArgs.deployments` entry:
Drafter (draft model, batched), Verifier (target model, batched), Controller (defaults and stats) and
Ingress (HTTP), which gets a handle to each of the others; a fifth, Embedder (the embedding step
verifier's model, batched; resources in `verifiers.embedding`), when one is configured.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError
from ray.serve import Application
from ray.serve.deployment import Deployment

from cluster.config.loader import format_validation_error
from cluster.config.schema import AppArgs, BatchedDeploymentSpec, DeploymentSpec
from cluster.errors import ConfigError
from deployments.controller import ControllerDeployment
from deployments.drafter import BackendFactory, DrafterDeployment
from deployments.embedder import EmbedderDeployment, EmbedderFactory
from deployments.ingress import IngressDeployment
from deployments.verifier import VerifierDeployment

# What Ray itself requests of `accelerator_type:<type>` for an actor with accelerator_type set.
ACCELERATOR_DEMAND = 0.001


def deployment_options(spec: DeploymentSpec) -> dict[str, Any]:
    """`Deployment.options(...)` keyword arguments of one DeploymentSpec."""
    actor: dict[str, Any] = {"num_cpus": spec.num_cpus, "num_gpus": spec.num_gpus}
    if spec.resources:
        actor["resources"] = dict(spec.resources)
    if spec.accelerator_type:
        actor["accelerator_type"] = spec.accelerator_type
    options: dict[str, Any] = {"ray_actor_options": actor, "max_ongoing_requests": spec.max_ongoing_requests,
                               "health_check_period_s": spec.health_check_period_s,
                               "health_check_timeout_s": spec.health_check_timeout_s,
                               "graceful_shutdown_timeout_s": spec.graceful_shutdown_timeout_s}
    if spec.max_queued_requests is not None:
        options["max_queued_requests"] = spec.max_queued_requests
    if spec.autoscaling is not None:
        options["autoscaling_config"] = spec.autoscaling.model_dump()
    else:
        options["num_replicas"] = spec.num_replicas
    if spec.placement_group_bundles is not None:
        options["placement_group_bundles"] = placement_bundles(spec)
        if spec.placement_group_strategy is not None:
            options["placement_group_strategy"] = spec.placement_group_strategy
    return options


def placement_bundles(spec: DeploymentSpec) -> list[dict[str, float]]:
    """The replica's placement-group bundles, each pinned to `accelerator_type` when one is set.

    Ray turns `accelerator_type` into a demand for the node resource `accelerator_type:<type>`; the replica
    actor runs inside bundle 0, so that bundle must carry the demand too, and the others (tensor-parallel
    workers) carry it so that every rank lands on that GPU type.
    """
    bundles = [dict(b) for b in spec.placement_group_bundles or ()]
    if spec.accelerator_type:
        for bundle in bundles:
            bundle.setdefault(f"accelerator_type:{spec.accelerator_type}", ACCELERATOR_DEMAND)
    return bundles


def validate_args(args: dict[str, Any] | AppArgs) -> AppArgs:
    """`args` as AppArgs.

    Raises:
        ConfigError: naming every invalid key (a Serve config's `args` fail to deploy with this message).
    """
    if isinstance(args, AppArgs):
        return args
    try:
        return AppArgs.model_validate(args)
    except ValidationError as e:
        raise ConfigError(f"invalid application args: {format_validation_error(e)}") from e


def build_app(args: dict[str, Any] | AppArgs) -> Application:
    """Build the application from the configuration (Serve requires a one-parameter builder).

    Args:
        args: AppArgs, or a dict validated into it (Serve passes a config file's `args` as a dict).

    Returns:
        The bound Ingress, ready for `serve.run`.

    Raises:
        ConfigError: invalid `args`, naming every offending key.
    """
    return compose_app(validate_args(args))


def compose_app(cfg: AppArgs, *, draft_backend_factory: BackendFactory | None = None,
                target_backend_factory: BackendFactory | None = None,
                embedder_factory: EmbedderFactory | None = None) -> Application:
    """Bind the deployments of `cfg`.

    Args:
        cfg: the validated configuration.
        draft_backend_factory / target_backend_factory: build a backend from a ModelSpec inside the
            replica (default `cluster.backends.create_backend`); tests inject fakes here.
        embedder_factory: loads the embedding model inside the Embedder replica (default
            `cluster.engine.load_embedder`).
    """
    d = cfg.deployments
    draft_batching = _batching(d.drafter)
    target_batching = _batching(d.verifier)
    drafter = _internal(DrafterDeployment, d.drafter, user_config=draft_batching).bind(
        cfg.draft, draft_batching, draft_backend_factory, d.drafter.stall_timeout_s)
    verifier = _internal(VerifierDeployment, d.verifier, user_config=target_batching).bind(
        cfg.target, target_batching, target_backend_factory, d.verifier.stall_timeout_s)
    controller = _internal(ControllerDeployment, d.controller).bind(cfg.reasoning, controller=cfg.controller,
                                                                    target=cfg.target)
    embedding = cfg.verifiers.embedding
    embedder = None if embedding is None else _internal(
        EmbedderDeployment, embedding, user_config=_batching(embedding)).bind(
        embedding, _batching(embedding), embedder_factory)
    return _with(IngressDeployment, d.ingress).bind(drafter, verifier, controller, cfg, embedder)


def _batching(spec: BatchedDeploymentSpec) -> dict[str, Any]:
    return {"max_batch_size": spec.max_batch_size, "batch_wait_timeout_s": spec.batch_wait_timeout_s}


def _with(deployment: Deployment, spec: DeploymentSpec, **extra: Any) -> Deployment:
    return deployment.options(**deployment_options(spec), **extra)


def _internal(deployment: Deployment, spec: DeploymentSpec, **extra: Any) -> Deployment:
    """A deployment only the ingress calls: no access log line per step (the ingress logs each request)."""
    return _with(deployment, spec, logging_config={"enable_access_log": False}, **extra)


__all__ = ["build_app", "compose_app", "deployment_options", "placement_bundles", "validate_args"]
