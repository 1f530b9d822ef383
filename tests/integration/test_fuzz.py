"""Fuzzing: schemathesis cases from /openapi.json over HTTP and malformed gRPC messages get no 5xx, no
INTERNAL / UNKNOWN status, and restart no replica (benchmarks/fuzz.py).

Layout: one tiny-model app that requires the session's API key, deployed with `serve.run`. The HTTP case
count is SPECSERVE_FUZZ_CASES (150 by default, sized for CI; the recorded figure used 1000).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import grpc
import pytest
from ray import serve
from ray.serve.context import _get_global_client

from benchmarks import fuzz
from benchmarks.local_app import tiny_app_config
from tests.integration.conftest import TEST_API_KEY, TEST_API_KEY_ENV, run_tiny_app, wait_for_grpc_route

pytestmark = [pytest.mark.integration, pytest.mark.faults]

APP = "specserve-fuzz"
CASES = int(os.environ.get("SPECSERVE_FUZZ_CASES", "150"))
GRPC_RANDOM = int(os.environ.get("SPECSERVE_FUZZ_GRPC_RANDOM", "40"))
SUMMARY_OUT = os.environ.get("SPECSERVE_FUZZ_OUT")  # write the summary (JSON) here: the RESULTS.md figure
AUTH = (("authorization", f"Bearer {TEST_API_KEY}"),)


def replicas(app: str) -> dict[str, str]:
    """Replica id → actor id of every replica of `app`, all of them RUNNING."""
    out = {}
    for name, deployment in _get_global_client().get_serve_details()["applications"][app]["deployments"].items():
        for replica in deployment["replicas"]:
            assert replica["state"] == "RUNNING", (name, replica)
            out[replica["replica_id"]] = replica["actor_id"]
    return out


@pytest.fixture(scope="module")
def app_targets(serve_instance, tiny_model_dirs) -> tuple[str, str]:
    run_tiny_app(tiny_app_config(tiny_model_dirs, APP, api_key_env=TEST_API_KEY_ENV))
    with grpc.insecure_channel(serve_instance.grpc_target) as channel:
        wait_for_grpc_route(channel, APP, AUTH)
    yield serve_instance.url, serve_instance.grpc_target
    serve.delete(APP)


def test_fuzz_gets_no_server_errors_and_restarts_nothing(app_targets):
    url, grpc_target = app_targets
    before = replicas(APP)
    summary = fuzz.run(fuzz.FuzzConfig(url=url, grpc_target=grpc_target, cases=CASES, grpc_random=GRPC_RANDOM,
                                       api_key=TEST_API_KEY, app=APP, timeout_s=60))
    print(fuzz.table(summary))
    if SUMMARY_OUT:
        Path(SUMMARY_OUT).parent.mkdir(parents=True, exist_ok=True)
        Path(SUMMARY_OUT).write_text(json.dumps(summary, indent=2))
    http, rpc = summary["http"], summary["grpc"]
    assert http["cases"] >= CASES and http["failed"] == 0, http["failures"]
    assert rpc["failed"] == 0, rpc["failures"]
    assert len(http["by_kind"]) >= 7  # every operation positive, the body routes negative too
    assert {"200", "400"} <= http["statuses"].keys() and {"OK", "INVALID_ARGUMENT"} <= rpc["statuses"].keys()
    assert summary["controller_replica"]["before"] == summary["controller_replica"]["after"] is not None
    assert replicas(APP) == before
