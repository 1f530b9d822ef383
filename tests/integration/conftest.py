"""One local Ray instance (with Serve) per test session, and running the tiny-model app on it."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from benchmarks.local_app import free_port, wait_for

REPO_ROOT = Path(__file__).resolve().parents[2]
RAY_NUM_CPUS = 4  # logical CPUs: the four small replicas of an app fit, whatever the machine has
NO_ACCESS_LOG = {"enable_access_log": False, "log_level": "WARNING"}
# An API key in the replicas' environment (set before Ray starts); apps use it with server.api_key_env.
TEST_API_KEY_ENV, TEST_API_KEY = "SPECSERVE_TEST_API_KEY", "sk-specserve-test-4f9d2c1e7b"


@dataclass(frozen=True, slots=True)
class ServeInstance:
    """The session's Serve: HTTP address and port, and Ray's Prometheus /metrics address."""

    url: str
    port: int
    metrics_url: str
    grpc_target: str = ""  # host:port of Serve's gRPC proxy (specserve.proto)


@pytest.fixture(scope="session")
def serve_instance() -> ServeInstance:
    """Start Ray + Serve once; replicas import `tests.*` (test fakes) through PYTHONPATH."""
    import ray
    from ray import serve

    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (str(REPO_ROOT), os.environ.get("PYTHONPATH")) if p)
    from cluster.grpc import SERVICER_FUNCTION

    os.environ[TEST_API_KEY_ENV] = TEST_API_KEY
    port, metrics_port, grpc_port = free_port(), free_port(), free_port()
    ray.init(address="local", num_cpus=RAY_NUM_CPUS, include_dashboard=False, log_to_driver=False,
             logging_level="WARNING", _metrics_export_port=metrics_port,
             _system_config={"metrics_report_interval_ms": 1000})
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config=NO_ACCESS_LOG,
                grpc_options={"port": grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION]})
    yield ServeInstance(f"http://127.0.0.1:{port}", port, f"http://127.0.0.1:{metrics_port}/metrics",
                        f"127.0.0.1:{grpc_port}")
    serve.shutdown()
    ray.shutdown()


@pytest.fixture()
def http(url: str) -> Iterator[httpx.Client]:
    """An HTTP client of the module's app (`url` is each module's own fixture: the app it deploys)."""
    with httpx.Client(base_url=url, timeout=120) as client:
        yield client


def run_tiny_app(cfg: dict[str, Any], **factories: Any) -> None:
    """Validate `cfg` (a tiny_app_config), compose its app with backend `factories` (compose_app keywords) and
    run it under its server.app_name at route prefix /."""
    from ray import serve

    from cluster.config.schema import AppArgs
    from deployments.app import compose_app

    args = AppArgs.model_validate(cfg)
    serve.run(compose_app(args, **factories), name=args.server.app_name, route_prefix="/",
              logging_config=NO_ACCESS_LOG)


def wait_for_grpc_route(channel: Any, app: str, metadata: tuple[tuple[str, str], ...] = (),
                        timeout_s: float = 30) -> None:
    """Block until Serve's gRPC proxy routes to `app` (it learns about a new application asynchronously);
    `metadata` is sent along (e.g. the API key)."""
    import grpc

    from cluster.grpc import specserve_pb2 as pb
    from cluster.grpc import specserve_pb2_grpc as pb_grpc

    stub = pb_grpc.SpecServeStub(channel)

    def routed() -> bool:
        try:
            stub.ListModels(pb.ListModelsRequest(), metadata=(("application", app), *metadata), timeout=10)
        except grpc.RpcError:
            return False
        return True
    wait_for(routed, bool, timeout_s)
