"""The optional API key: HTTP 401 / gRPC UNAUTHENTICATED without it, success with it, /healthz open, and the
key never written to a Ray log.

Layout: one tiny-model app for the module with `server.api_key_env` naming TEST_API_KEY_ENV, which the
session's Ray inherited from the test process (tests/integration/conftest.py), as a pod inherits a Secret.
"""

from __future__ import annotations

from pathlib import Path

import grpc
import httpx
import pytest
import ray
from ray import serve

from benchmarks.local_app import tiny_app_config
from cluster.client import GRPC_SCHEME, SpecServeClient, SpecServeHTTPError, SpecServeRPCError
from deployments.app import build_app
from deployments.auth import ApiKeyAuth, AuthenticationError
from tests.integration.conftest import NO_ACCESS_LOG, TEST_API_KEY, TEST_API_KEY_ENV

pytestmark = pytest.mark.integration

APP = "specserve-auth"
QUESTION = "What is 2 + 3?"
GOOD = f"Bearer {TEST_API_KEY}"
BAD_AUTHORIZATION = [None, f"Bearer {TEST_API_KEY}x", f"Basic {TEST_API_KEY}", TEST_API_KEY, "Bearer"]
BAD_IDS = ["missing", "wrong-key", "wrong-scheme", "no-scheme", "empty-key"]


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION, ids=BAD_IDS)
def test_api_key_auth_rejects(authorization):
    with pytest.raises(AuthenticationError):
        ApiKeyAuth(TEST_API_KEY).check(authorization)


def test_api_key_auth_accepts_the_key_and_is_off_without_one():
    ApiKeyAuth(TEST_API_KEY).check(GOOD)
    ApiKeyAuth(TEST_API_KEY).check(f"bearer  {TEST_API_KEY} ")
    ApiKeyAuth(None).check(None)


@pytest.fixture(scope="module")
def app_urls(serve_instance, tiny_model_dirs) -> tuple[str, str]:
    cfg = tiny_app_config(tiny_model_dirs, APP, api_key_env=TEST_API_KEY_ENV)
    serve.run(build_app(cfg), name=APP, route_prefix="/", logging_config=NO_ACCESS_LOG)
    yield serve_instance.url, serve_instance.grpc_target
    serve.delete(APP)


@pytest.fixture(scope="module")
def stub(app_urls):
    from cluster.grpc import specserve_pb2_grpc as pb_grpc

    with grpc.insecure_channel(app_urls[1]) as channel:
        yield pb_grpc.SpecServeStub(channel)


def headers(authorization: str | None) -> dict[str, str]:
    return {"Authorization": authorization} if authorization is not None else {}


def metadata(authorization: str | None) -> list[tuple[str, str]]:
    return [("application", APP)] + ([("authorization", authorization)] if authorization is not None else [])


ROUTES = [("POST", "/v1/reason", {"question": QUESTION, "max_steps": 1}), ("GET", "/v1/models", None),
          ("GET", "/v1/stats", None), ("GET", "/openapi.json", None),
          ("POST", "/v1/chat/completions", {"model": "specserve-tiny", "max_steps": 1,
                                            "messages": [{"role": "user", "content": QUESTION}]})]
ROUTE_IDS = [path for _, path, _ in ROUTES]


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION, ids=BAD_IDS)
@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_http_without_the_key_is_401(app_urls, method, path, body, authorization):
    r = httpx.request(method, app_urls[0] + path, json=body, headers=headers(authorization), timeout=30)
    assert r.status_code == 401, r.text
    assert r.json()["error"]["type"] == "authentication_error" and r.headers["www-authenticate"] == "Bearer"
    assert TEST_API_KEY not in r.text


@pytest.mark.parametrize(("method", "path", "body"), ROUTES, ids=ROUTE_IDS)
def test_http_with_the_key_passes(app_urls, method, path, body):
    r = httpx.request(method, app_urls[0] + path, json=body, headers=headers(GOOD), timeout=60)
    assert r.status_code == 200, r.text


def test_healthz_is_open(app_urls):
    assert httpx.get(app_urls[0] + "/healthz", timeout=30).json()["status"] == "ok"


@pytest.mark.parametrize("authorization", BAD_AUTHORIZATION, ids=BAD_IDS)
@pytest.mark.parametrize("rpc", ["Reason", "ReasonStream", "ListModels"])
def test_grpc_without_the_key_is_unauthenticated(stub, rpc, authorization):
    from cluster.grpc import specserve_pb2 as pb

    request = pb.ListModelsRequest() if rpc == "ListModels" else pb.ReasonRequest(question=QUESTION, max_steps=1)
    with pytest.raises(grpc.RpcError) as err:
        response = getattr(stub, rpc)(request, metadata=metadata(authorization), timeout=30)
        list(response) if rpc == "ReasonStream" else response
    assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED and TEST_API_KEY not in err.value.details()


def test_clients_with_the_key_pass(app_urls):
    url, grpc_target = app_urls
    for base in (url, GRPC_SCHEME + grpc_target):
        with SpecServeClient(base, timeout=60, api_key=TEST_API_KEY, app=APP) as client:
            assert client.reason(QUESTION, method="target", max_steps=1)["stats"]["target_steps"] == 1
            assert client.models()
        with SpecServeClient(base, timeout=60, api_key="not-the-key", app=APP) as client, \
                pytest.raises((SpecServeHTTPError, SpecServeRPCError)):
            client.models()
    with SpecServeClient(GRPC_SCHEME + grpc_target, timeout=60, api_key=TEST_API_KEY, app=APP) as client:
        assert "result" in list(client.reason_stream(QUESTION, max_steps=1))[-1]


def test_the_key_is_never_logged(app_urls):
    """Last: after every request above, no Ray log file of the session holds the key."""
    logs = Path(ray._private.worker._global_node.get_logs_dir_path())  # the session's own log directory
    files = [p for p in logs.rglob("*") if p.is_file()]
    assert files and not [p.name for p in files if TEST_API_KEY.encode() in p.read_bytes()]
