"""Overload, size limits, client deadlines and disconnects against the served app (real HTTP and gRPC).

Layout: one tiny-model app for the module that admits 2 requests at once and has small size caps; its target
stalls SLOW_S on questions carrying SLOW_MARKER (tests/integration/faulty_backends.py), which is how a test
holds the admission slots. A stall holds the target's batch queue, so tests that need the target fast wait
for it with `served`.
"""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import grpc
import httpx
import pytest
from ray import serve

from benchmarks.local_app import tiny_app_config, wait_for
from cluster.grpc import specserve_pb2 as pb
from cluster.grpc import specserve_pb2_grpc as pb_grpc
from tests.integration.conftest import run_tiny_app, wait_for_grpc_route
from tests.integration.faulty_backends import SLOW_MARKER, SLOW_S, faulty_target

pytestmark = [pytest.mark.integration, pytest.mark.faults]

APP = "specserve-overload"
MODEL = "specserve-tiny"
QUESTION = "What is 7 times 8?"
ADMITTED = 2
LIMITS = {"body_bytes": 8192, "messages": 4, "prompt_chars": 4000, "prompt_tokens": 64, "total_tokens": 400,
          "steps": 64, "candidates": 4}


@pytest.fixture(scope="module")
def url(serve_instance, tiny_model_dirs) -> str:
    cfg = tiny_app_config(tiny_model_dirs, APP, max_inflight_requests=ADMITTED, retry_after_s=2)
    cfg["server"]["limits"] = LIMITS
    run_tiny_app(cfg, target_backend_factory=faulty_target)
    yield serve_instance.url
    serve.delete(APP)


@pytest.fixture(scope="module")
def stub(url, serve_instance) -> pb_grpc.SpecServeStub:
    with grpc.insecure_channel(serve_instance.grpc_target) as channel:
        wait_for_grpc_route(channel, APP)
        yield pb_grpc.SpecServeStub(channel)


def ingress(http: httpx.Client) -> dict[str, int]:
    return http.get("/v1/stats").json()["ingress"]


def served(http: httpx.Client) -> httpx.Response:
    """A cheap request, retried until the target's batch queue is free of stalls."""
    return wait_for(lambda: http.post("/v1/reason", json={"question": QUESTION, "method": "target", "max_steps": 1}),
                    lambda r: r.status_code == 200, timeout_s=4 * SLOW_S)


def error(r: httpx.Response, status: int) -> dict[str, Any]:
    assert r.status_code == status, r.text
    return r.json()["error"]


def test_overload_is_refused_at_once_with_retry_after(http, stub):
    slow = {"question": f"{SLOW_MARKER} {QUESTION}", "timeout_s": SLOW_S - 1}
    with ThreadPoolExecutor(ADMITTED) as pool:
        held = [pool.submit(httpx.post, f"{http.base_url}/v1/reason", json=slow, timeout=60) for _ in range(ADMITTED)]
        wait_for(lambda: ingress(http)["in_flight"], lambda n: n == ADMITTED, timeout_s=30)
        refused = http.post("/v1/reason", json={"question": QUESTION})
        assert error(refused, 503)["code"] == "overloaded" and refused.headers["retry-after"] == "2"
        streamed = http.post("/v1/chat/completions", json={"model": MODEL, "stream": True,
                                                          "messages": [{"role": "user", "content": QUESTION}]})
        assert error(streamed, 503)["code"] == "overloaded"
        assert http.get("/v1/models").status_code == 200  # reads never take a slot
        with pytest.raises(grpc.RpcError) as rpc:
            stub.Reason(pb.ReasonRequest(question=QUESTION), metadata=(("application", APP),), timeout=30)
        assert rpc.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        for f in held:  # the client's deadline ended them, well before the server's request_timeout_s
            err = error(f.result(), 504)
            assert err["code"] == "client_deadline" and "timeout_s" in err["message"]
    assert served(http).json()["stats"]["target_steps"] == 1  # recovered by itself
    counters = ingress(http)
    assert counters["refused"] >= 3 and counters["in_flight"] == 0


@pytest.mark.parametrize("stream", [False, True], ids=["plain", "stream"])
def test_a_disconnected_client_frees_its_slot(http, stream):
    """The client gives up after 1 s; its request (stalled for SLOW_S in the target) is cancelled, not left to run."""
    body = {"model": MODEL, "stream": stream, "messages": [{"role": "user", "content": f"{SLOW_MARKER} {QUESTION}"}]}
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(f"{http.base_url}/v1/chat/completions", json=body, timeout=1.0)
    gone = time.monotonic()
    wait_for(lambda: ingress(http)["in_flight"], lambda n: n == 0, timeout_s=SLOW_S - 2)
    assert time.monotonic() - gone < SLOW_S - 1


def test_a_grpc_deadline_cancels_the_request(http, stub):
    with pytest.raises(grpc.RpcError) as rpc:
        stub.Reason(pb.ReasonRequest(question=f"{SLOW_MARKER} {QUESTION}"), metadata=(("application", APP),),
                    timeout=1.0)
    assert rpc.value.code() == grpc.StatusCode.DEADLINE_EXCEEDED
    gone = time.monotonic()
    wait_for(lambda: ingress(http)["in_flight"], lambda n: n == 0, timeout_s=SLOW_S - 2)
    assert time.monotonic() - gone < SLOW_S - 1


def test_a_disconnected_stream_stops_target_work(http):
    served(http)
    verifier = serve.get_deployment_handle("Verifier", APP)
    body = {"model": MODEL, "stream": True, "method": "target", "max_steps": 60, "max_tokens": 360,
            "messages": [{"role": "user", "content": QUESTION}]}
    with httpx.stream("POST", f"{http.base_url}/v1/chat/completions", json=body, timeout=60) as r:
        next(line for line in r.iter_lines() if line.startswith("data: {"))  # one step, then hang up
    time.sleep(1.0)
    before = len(verifier.batch_sizes.remote("target").result())
    time.sleep(1.5)
    assert len(verifier.batch_sizes.remote("target").result()) == before
    assert ingress(http)["in_flight"] == 0


@pytest.mark.parametrize(("body", "field"), [
    ({"messages": [{"role": "user", "content": "hi"}] * 5}, "messages"),
    ({"max_tokens": 401}, "max_total_tokens"),
    ({"max_steps": 65}, "max_steps"),
    ({"method": "best_of_n", "temperature": 0.7, "best_of_n": {"n_max": 5, "peek": 1}}, "best_of_n.n_max"),
    ({"method": "ssr", "ssr": {"k": 5}}, "ssr.k"),
    ({"target": {"path": "/etc"}}, "target"),
], ids=["messages", "max_tokens", "max_steps", "best_of_n", "ssr-k", "model-path-knob"])
def test_caps_are_enforced_before_any_model_runs(http, body, field):
    request = {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], **body}
    assert error(http.post("/v1/chat/completions", json=request), 400)["param"] == field


def test_prompt_token_cap(http):
    served(http)
    verifier = serve.get_deployment_handle("Verifier", APP)
    before = len(verifier.batch_sizes.remote().result())
    err = error(http.post("/v1/reason", json={"question": "seven " * 200}), 400)
    assert err["code"] == "prompt_too_long" and err["param"] == "question" and "prompt_tokens" in err["message"]
    assert len(verifier.batch_sizes.remote().result()) == before


def test_body_size_cap(http):
    big = {"question": QUESTION, "padding": "x" * 10_000}
    assert error(http.post("/v1/reason", json=big), 413)["code"] == "request_too_large"

    def chunks():  # no Content-Length: the bytes that arrive are counted
        data = json.dumps(big).encode()
        for i in range(0, len(data), 1024):
            yield data[i:i + 1024]
    assert error(http.post("/v1/reason", content=chunks(), headers={"content-type": "application/json"}), 413)[
        "code"] == "request_too_large"


def test_unknown_model_name_is_not_a_path(http):
    r = http.post("/v1/chat/completions", json={"model": "/root/.cache/specserve/models/qwen",
                                                "messages": [{"role": "user", "content": QUESTION}]})
    assert error(r, 404)["code"] == "model_not_found"
