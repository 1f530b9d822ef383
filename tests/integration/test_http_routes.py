"""Every route over real HTTP against the tiny-model app, deployed declaratively like `serve deploy`.

Layout: the app is deployed once for the module from a ServeDeploySchema (import_path
deployments.app:build_app + args); the last test redeploys it with a Controller `user_config`
override and checks the new defaults are in force on the same controller replica.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import Any

import httpx
import pytest
from ray import serve
from ray.serve.context import _get_global_client
from ray.serve.schema import ServeDeploySchema

from benchmarks.local_app import tiny_app_config
from cluster.client import SpecServeClient, SpecServeHTTPError
from deployments.launcher import wait_until_running
from tests.integration.conftest import NO_ACCESS_LOG

pytestmark = pytest.mark.integration

APP = "specserve-it"
MODEL = "specserve-tiny"
QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"


def serve_config(cfg: dict[str, Any], port: int, controller_user_config: dict | None = None) -> ServeDeploySchema:
    app: dict[str, Any] = {"name": APP, "route_prefix": "/", "import_path": "deployments.app:build_app",
                           "args": cfg, "logging_config": NO_ACCESS_LOG}
    if controller_user_config is not None:
        app["deployments"] = [{"name": "Controller", "user_config": controller_user_config}]
    return ServeDeploySchema.model_validate({"http_options": {"host": "127.0.0.1", "port": port},
                                             "applications": [app]})


@pytest.fixture(scope="module")
def app_config(tiny_model_dirs) -> dict[str, Any]:
    return tiny_app_config(tiny_model_dirs, APP)


@pytest.fixture(scope="module")
def url(serve_instance, app_config) -> str:
    _get_global_client().deploy_apps(serve_config(app_config, serve_instance.port))
    wait_until_running(APP, 180)
    yield serve_instance.url
    serve.delete(APP)


def sse_events(text: str) -> list[Any]:
    """The `data:` payloads of a server-sent-events body, [DONE] kept as a string."""
    out = []
    for line in text.splitlines():
        if line.startswith("data: "):
            data = line[len("data: "):]
            out.append(data if data == "[DONE]" else json.loads(data))
    return out


# ---- native route, health, models, OpenAPI -----------------------------------------------------------

def test_healthz_models_openapi(http):
    health = http.get("/healthz")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    assert [m["id"] for m in http.get("/v1/models").json()["data"]] == [MODEL]
    paths = http.get("/openapi.json").json()["paths"]
    assert {"/v1/reason", "/v1/chat/completions", "/v1/models", "/healthz"} <= set(paths)


def test_reason_returns_answer_trace_and_stats(http):
    body = http.post("/v1/reason", json={"question": QUESTION}).json()
    assert body["method"] == "specreason" and "answer" in body
    steps, stats = body["steps"], body["stats"]
    assert 1 <= len(steps) <= 4
    assert body["text"] == "\n\n".join(s["text"] for s in steps)
    assert stats["steps_drafted"] == stats["steps_accepted"] + stats["steps_rewritten"] >= 1
    assert stats["judge_calls"] == stats["steps_drafted"]
    assert {s["outcome"] for s in steps} <= {"accepted", "rewritten"}


@pytest.mark.parametrize(("knobs", "outcomes"), [
    ({"method": "target"}, {"target"}),
    ({"method": "draft"}, {"draft"}),
    ({"method": "specreason", "threshold": 0.0}, {"accepted"}),
], ids=["target-only", "draft-only", "threshold-0-accepts-all"])
def test_reason_knobs_select_method(http, knobs, outcomes):
    body = http.post("/v1/reason", json={"question": QUESTION, "max_steps": 2, **knobs}).json()
    assert {s["outcome"] for s in body["steps"]} == outcomes
    assert len(body["steps"]) <= 2


# ---- OpenAI-compatible route -------------------------------------------------------------------------

def test_chat_completion(http):
    body = http.post("/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": QUESTION}],
        "max_tokens": 12, "threshold": 5}).json()
    assert body["object"] == "chat.completion"
    choice = body["choices"][0]
    assert choice["message"]["role"] == "assistant" and choice["finish_reason"] in ("stop", "length")
    ext = body["specserve"]
    assert sum(s["num_tokens"] for s in ext["steps"]) == body["usage"]["completion_tokens"] <= 12 + 6
    assert body["usage"]["prompt_tokens"] > 0
    assert choice["message"]["content"] == "\n\n".join(s["text"] for s in ext["steps"])


def test_chat_stream_one_chunk_per_step(http):
    r = http.post("/v1/chat/completions", json={
        "model": MODEL, "messages": [{"role": "user", "content": QUESTION}], "stream": True,
        "stream_options": {"include_usage": True}})
    assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
    events = sse_events(r.text)
    assert events[-1] == "[DONE]"
    step_chunks = [e for e in events[:-1] if "step" in e.get("specserve", {})]
    final = next(e for e in events[:-1] if e["choices"] and e["choices"][0]["finish_reason"])
    usage = events[-2]["usage"]
    steps = [c["specserve"]["step"] for c in step_chunks]
    assert [s["index"] for s in steps] == list(range(len(steps))) and steps
    content = "".join(c["choices"][0]["delta"].get("content", "") for c in step_chunks)
    assert content == "\n\n".join(s["text"] for s in steps)
    assert final["specserve"]["stats"]["steps_drafted"] >= 1
    assert usage["completion_tokens"] == sum(s["num_tokens"] for s in steps)


def test_openai_sdk_plain_and_streaming(url):
    openai = pytest.importorskip("openai")
    client = openai.OpenAI(base_url=f"{url}/v1", api_key="unused", timeout=120)
    messages = [{"role": "user", "content": QUESTION}]
    resp = client.chat.completions.create(model=MODEL, messages=messages, extra_body={"threshold": 5, "max_steps": 3})
    assert resp.choices[0].message.content and resp.usage.completion_tokens > 0
    assert resp.model_extra["specserve"]["method"] == "specreason"
    chunks = list(client.chat.completions.create(model=MODEL, messages=messages, stream=True,
                                                 extra_body={"max_steps": 3}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text and chunks[-1].choices[0].finish_reason in ("stop", "length")
    with pytest.raises(openai.NotFoundError):
        client.chat.completions.create(model="gpt-4o", messages=messages)


# ---- bad input -----------------------------------------------------------------------------------------

def chat(**extra: Any) -> dict[str, Any]:
    return {"model": MODEL, "messages": [{"role": "user", "content": QUESTION}], **extra}


BAD_REQUESTS = [
    ("/v1/reason", b'{"question": "1+1?",', 400, None),
    ("/v1/reason", {"question": QUESTION, "method": "oracle"}, 400, "method"),
    ("/v1/reason", {"question": QUESTION, "bogus_knob": 1}, 400, "bogus_knob"),
    ("/v1/reason", {"question": QUESTION, "threshold": 12}, 400, "threshold"),
    ("/v1/reason", {"question": "   "}, 400, "question"),
    ("/v1/reason", {"method": "target"}, 400, "question"),
    ("/v1/reason", {"question": "x" * 4001}, 400, "question"),
    ("/v1/reason", {"question": "seven apples " * 300}, 400, "question"),
    ("/v1/chat/completions", chat(messages=[]), 400, "messages"),
    ("/v1/chat/completions", chat(messages=[{"role": "assistant", "content": "hi"}]), 400, "messages.0.role"),
    ("/v1/chat/completions", chat(model="gpt-4o"), 404, "model"),
    ("/v1/chat/completions", chat(n=2), 400, "n"),
    ("/v1/chat/completions", chat(threshold=-1, stream=True), 400, "threshold"),
    ("/v1/chat/completions", chat(messages=[{"role": "user", "content": "seven apples " * 300}], stream=True),
     400, "messages.0.content"),
    ("/v1/chat/completions", chat(messages=[{"role": "user", "content": ""}]), 400, "messages.0.content"),
    ("/v1/reason", {"question": QUESTION, "method": "lookahead", "step_verifier": "embedding"}, 400, "step_verifier"),
    ("/v1/chat/completions", chat(method="lookahead", step_verifier="embedding", stream=True), 400, "step_verifier"),
    ("/v1/reason", {"question": QUESTION, "arm": "fast"}, 400, "arm"),
    ("/v1/reason", {"question": QUESTION, "bandit_granularity": "step"}, 400, "bandit_granularity"),
]
BAD_IDS = ["malformed-json", "unknown-method", "unknown-knob", "threshold-out-of-range", "empty-question",
           "missing-question", "question-too-many-chars", "prompt-too-many-tokens", "empty-messages",
           "last-message-not-user", "wrong-model", "n-2", "stream-bad-knob", "stream-prompt-too-long",
           "empty-user-message", "no-embedding-model", "stream-no-embedding-model", "arm-without-bandit",
           "step-bandit-without-bandit"]


@pytest.mark.parametrize(("path", "body", "status", "param"), BAD_REQUESTS, ids=BAD_IDS)
def test_bad_input_is_a_structured_4xx(http, path, body, status, param):
    r = http.post(path, content=body, headers={"content-type": "application/json"}) if isinstance(body, bytes) \
        else http.post(path, json=body)
    assert r.status_code == status, r.text
    err = r.json()["error"]
    assert set(err) == {"message", "type", "param", "code"} and err["message"]
    assert err["param"] == param
    assert err["code"] == ("prompt_too_long" if "seven apples" in str(body) else
                           "model_not_found" if status == 404 else "invalid_value")
    assert "Traceback" not in r.text


def test_replicas_survive_bad_input(http):
    assert http.get("/healthz").json()["status"] == "ok"
    assert http.post("/v1/reason", json={"question": QUESTION, "max_steps": 1}).status_code == 200


# ---- Python client ---------------------------------------------------------------------------------------

def test_python_client(url):
    with SpecServeClient(url, timeout=120) as client:
        assert client.health()["status"] == "ok"
        assert client.models()[0]["id"] == MODEL
        assert client.reason(QUESTION, method="target", max_steps=1)["stats"]["target_steps"] == 1
        assert client.chat(QUESTION, model=MODEL, max_steps=1)["object"] == "chat.completion"
        chunks = list(client.stream(QUESTION, model=MODEL, max_steps=2))
        assert chunks[-1]["choices"][0]["finish_reason"] in ("stop", "length")
        with pytest.raises(SpecServeHTTPError) as err:
            client.reason(QUESTION, threshold=99)
        assert err.value.status == 400 and err.value.param == "threshold"


# ---- batching, stats, reconfiguration ----------------------------------------------------------------------

def test_concurrent_requests_share_verifier_batches(url):
    """6 concurrent target-only requests: their steps reach the Verifier together and share backend calls."""
    verifier = serve.get_deployment_handle("Verifier", APP)
    before = len(verifier.batch_sizes.remote("target").result())

    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            return await asyncio.gather(*(client.post("/v1/reason", json={
                "question": f"{QUESTION} ({i})", "method": "target", "max_steps": 3}) for i in range(6)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 6
    sizes = verifier.batch_sizes.remote("target").result()[before:]
    assert sum(sizes) == sum(r.json()["stats"]["target_steps"] for r in responses)  # each step in one batch
    assert max(sizes) > 1, sizes


def test_controller_stats_aggregate_reports(http):
    deadline = time.monotonic() + 10
    while (stats := http.get("/v1/stats").json())["requests"] < 10 and time.monotonic() < deadline:
        time.sleep(0.2)
    assert stats["requests"] >= 10
    assert stats["spec_decode_num_drafts"] >= stats["spec_decode_num_accepted_steps"]
    assert 0.0 <= stats["acceptance_rate"] <= 1.0
    assert stats["methods"]["specreason"] >= 1


def test_prometheus_metrics_exported(serve_instance, http):
    """The ingress and verifier metrics reach Ray's /metrics endpoint (prefixed `ray_` by Ray)."""
    wanted = ["ray_specserve_spec_decode_num_drafts", "ray_specserve_spec_decode_num_accepted_steps",
              "ray_specserve_spec_decode_acceptance_rate", "ray_specserve_phase_latency_seconds_bucket",
              "ray_specserve_verifier_batch_size_bucket", "ray_specserve_drafter_call_latency_seconds_bucket"]
    deadline = time.monotonic() + 30
    while missing := [m for m in wanted if m not in httpx.get(serve_instance.metrics_url, timeout=10).text]:
        assert time.monotonic() < deadline, missing
        time.sleep(1)


def test_controller_reconfigure_without_restart(http, serve_instance, app_config):
    """Last in the module: changes the defaults of the deployed app."""
    before = http.get("/v1/stats").json()["replica"]
    _get_global_client().deploy_apps(serve_config(app_config, serve_instance.port,
                                                  {"method": "target", "max_steps": 1}))
    deadline = time.monotonic() + 60
    while (stats := http.get("/v1/stats").json())["defaults"]["method"] != "target":
        assert time.monotonic() < deadline, stats
        time.sleep(0.5)
    assert stats["replica"]["id"] == before["id"]  # same replica: reconfigured, not restarted
    assert stats["replica"]["reconfigures"] == before["reconfigures"] + 1
    body = http.post("/v1/reason", json={"question": QUESTION}).json()
    assert body["method"] == "target" and len(body["steps"]) == 1
