"""`specserve up`: a local Ray instance, Serve and the app, served until SIGINT/SIGTERM, then drained and shut down.

Ray waits forever for replicas whose resources do not fit, so the launcher checks the summed
requests of the config against the cluster's resources before deploying, and then fails when a
replica is still not placed after `server.schedule_timeout_s`, or the application is not RUNNING
(its models still loading) after `server.start_timeout_s`.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from collections import defaultdict
from collections.abc import Callable

import ray
from ray import serve
from ray.serve import RunTarget
from ray.serve.config import gRPCOptions
from ray.serve.schema import ApplicationStatus, ApplicationStatusOverview

from cluster.backends.openmp import openmp_environment
from cluster.config.schema import AppArgs
from cluster.errors import ConfigError, SpecServeError
from cluster.grpc import SERVICER_FUNCTION
from deployments.app import build_app

logger = logging.getLogger(__name__)

POLL_S = 0.5


class LaunchError(SpecServeError):
    """The application could not be started (deploy failed, or replicas not running in time)."""


def required_resources(cfg: AppArgs) -> dict[str, float]:
    """Resources the config's replicas request in all (autoscaled deployments: their min_replicas); a replica
    with a placement group reserves the sum of its bundles (its own request lies inside the first one)."""
    need: dict[str, float] = defaultdict(float)
    for spec in (cfg.deployments.drafter, cfg.deployments.verifier, cfg.deployments.controller,
                 cfg.deployments.ingress):
        n = spec.autoscaling.min_replicas if spec.autoscaling else spec.num_replicas
        bundles = spec.placement_group_bundles or [{"CPU": spec.num_cpus, "GPU": spec.num_gpus, **spec.resources}]
        for bundle in bundles:
            for name, amount in bundle.items():
                need[name] += n * amount
        if spec.accelerator_type:
            need[f"accelerator_type:{spec.accelerator_type}"] += n * 0.001
    return {k: v for k, v in need.items() if v > 0}


def check_resources(cfg: AppArgs, available: dict[str, float]) -> None:
    """Fail fast when the replicas cannot all be scheduled.

    Raises:
        ConfigError: naming each short resource, what the deployments request and what Ray has.
    """
    short = [f"{name}: deployments request {need:g}, Ray has {available.get(name, 0.0):g}"
             for name, need in sorted(required_resources(cfg).items()) if need > available.get(name, 0.0) + 1e-9]
    if short:
        raise ConfigError("the replicas cannot be scheduled (" + "; ".join(short) + "); lower "
                          "deployments.<role>.num_cpus / num_gpus or raise server.ray_num_cpus")


# Serve's status message for a deployment whose replicas wait for resources (not yet placed on a node); replicas
# that were placed and are loading their models say "… to initialize" instead.
UNPLACED_NOTE = "to be scheduled"


def unplaced(app: ApplicationStatusOverview) -> list[str]:
    """The deployments of `app` whose replicas Serve reports as still waiting to be placed."""
    return [name for name, d in app.deployments.items() if UNPLACED_NOTE in d.message]


def wait_until_running(app_name: str, start_timeout_s: float, schedule_timeout_s: float | None = None) -> None:
    """Poll `serve.status()` until the app is RUNNING.

    Raises:
        LaunchError: the deploy failed; a replica is still not placed after `schedule_timeout_s` (None: no such
            check); or the app is not running after `start_timeout_s` (with the deployments' status messages).
    """
    start = time.monotonic()
    while True:
        app = serve.status().applications.get(app_name)
        if app is not None and app.status == ApplicationStatus.RUNNING:
            return
        if app is not None and app.status in (ApplicationStatus.DEPLOY_FAILED, ApplicationStatus.UNHEALTHY):
            raise LaunchError(f"application {app_name!r} {app.status.value}: {_describe(app)}")
        elapsed = time.monotonic() - start
        late = schedule_timeout_s is not None and elapsed > schedule_timeout_s
        if late and app is not None and (waiting := unplaced(app)):
            raise LaunchError(f"application {app_name!r}: replicas of {', '.join(waiting)} not placed after "
                              f"{schedule_timeout_s:g}s (server.schedule_timeout_s): {_describe(app)}")
        if elapsed > start_timeout_s:
            detail = _describe(app) if app is not None else "not created"
            raise LaunchError(f"application {app_name!r} not running after {start_timeout_s:g}s "
                              f"(server.start_timeout_s): {detail}")
        time.sleep(POLL_S)


def _describe(app: ApplicationStatusOverview) -> str:
    parts = [app.message] if app.message else []
    parts += [f"{name}: {d.status.value} {d.message}".strip() for name, d in app.deployments.items()]
    return "; ".join(parts) or "no message"


def base_url(cfg: AppArgs) -> str:
    """Where a client on this machine reaches the app's HTTP routes (a bind-all host at 127.0.0.1)."""
    host = "127.0.0.1" if cfg.server.host == "0.0.0.0" else cfg.server.host
    return f"http://{host}:{cfg.server.port}"


def urls(cfg: AppArgs) -> dict[str, str]:
    """The addresses a user needs once the app is up."""
    base = f"http://{cfg.server.host}:{cfg.server.port}"
    out = {"reason": f"{base}/v1/reason", "openai": f"{base}/v1", "health": f"{base}/healthz",
           "docs": f"{base}/docs"}
    if cfg.server.grpc_port:
        out["grpc"] = f"{cfg.server.host}:{cfg.server.grpc_port}"
    if cfg.server.metrics_port:
        out["metrics"] = f"http://{cfg.server.host}:{cfg.server.metrics_port}/metrics"
    return out


def grpc_options(cfg: AppArgs) -> gRPCOptions | None:
    """Serve's gRPC proxy serving specserve.proto (with server reflection) on `server.grpc_port`; None = off."""
    if not cfg.server.grpc_port:
        return None
    return gRPCOptions(port=cfg.server.grpc_port, grpc_servicer_functions=[SERVICER_FUNCTION], enable_reflection=True)


def ray_environment(cfg: AppArgs) -> dict[str, str]:
    """Environment for the local Ray that `start` launches: its daemons and workers inherit it, so it sets the
    workers' nice value, the period of Serve's controller loop and of its metrics export
    (`server.ray_worker_niceness`, `server.serve_control_loop_s`, `server.serve_metrics_export_s`), and OpenMP's
    barrier spin for the engines in the replicas (`cluster.backends.openmp`)."""
    return {**openmp_environment(), "RAY_worker_niceness": str(cfg.server.ray_worker_niceness),
            "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": f"{cfg.server.serve_control_loop_s:g}",
            "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": str(round(1000 * cfg.server.serve_metrics_export_s))}


def start(cfg: AppArgs) -> dict[str, str]:
    """Start a local Ray, Serve and the app; return `urls(cfg)` once it is RUNNING.

    Raises:
        ConfigError / LaunchError: resources short, deploy failed or not running in time (Ray is
            shut down again before raising).
    """
    os.environ.update(ray_environment(cfg))
    ray.init(address="local", num_cpus=cfg.server.ray_num_cpus, include_dashboard=cfg.server.ray_dashboard,
             _metrics_export_port=cfg.server.metrics_port, logging_level=logging.WARNING)
    try:
        check_resources(cfg, ray.cluster_resources())
        serve.start(http_options={"host": cfg.server.host, "port": cfg.server.port}, grpc_options=grpc_options(cfg))
        serve.run_many([RunTarget(build_app(cfg), name=cfg.server.app_name, route_prefix="/")],
                       wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
        wait_until_running(cfg.server.app_name, cfg.server.start_timeout_s, cfg.server.schedule_timeout_s)
    except BaseException:
        stop()
        raise
    return urls(cfg)


def stop(app_name: str | None = None) -> None:
    """Shut Serve and Ray down (safe to call when either is not running).

    Args:
        app_name: delete this application first, which drains it: each replica finishes its in-flight
            requests (the streams included, through the still running proxy) for up to its deployment's
            `graceful_shutdown_timeout_s`.
    """
    if ray.is_initialized():
        try:
            if app_name is not None:
                logger.info("draining %r", app_name)
                try:
                    serve.delete(app_name)
                except Exception as e:  # a failed drain must not keep Ray running
                    logger.warning("could not drain %r: %s", app_name, e)
            serve.shutdown()
        finally:
            ray.shutdown()


def up(cfg: AppArgs, on_ready: Callable[[dict[str, str]], None] | None = None) -> None:
    """Serve `cfg` locally until SIGINT or SIGTERM, then shut down cleanly.

    Args:
        cfg: the validated configuration.
        on_ready: called with `urls(cfg)` once the app is running (e.g. to send a first request).

    Raises:
        ConfigError / LaunchError: see `start`.
    """
    try:
        addresses = start(cfg)
    except KeyboardInterrupt:  # Ctrl-C while starting: start() has already shut Ray down
        logger.info("interrupted while starting")
        return
    stopping = threading.Event()
    previous = {sig: signal.signal(sig, lambda *_: stopping.set()) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        for name, url in addresses.items():
            logger.info("%-7s %s", name, url)
        if on_ready is not None:
            on_ready(addresses)
        logger.info("serving %r; Ctrl-C to stop", cfg.server.app_name)
        while not stopping.wait(1.0):
            pass
        logger.info("shutting down")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        stop(cfg.server.app_name)
