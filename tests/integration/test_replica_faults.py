"""Replica faults and lifecycle against the served app: a drafter killed under load, a verifier killed, a wedged
engine found by its health check, a redeploy and a shutdown that drain in-flight requests.

Layout: one tiny-model app for the module (real models; the target hangs on questions carrying
WEDGE_MARKER and stalls SLOW_S on SLOW_MARKER, tests/integration/faulty_backends.py). Tests kill replicas
and redeploy, so each waits for the app to serve again before it starts; the last one deletes the app.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
import ray
from ray import serve

from benchmarks.local_app import kill_replica, tiny_app_config, wait_for
from tests.integration.conftest import run_tiny_app
from tests.integration.faulty_backends import SLOW_MARKER, WEDGE_MARKER, faulty_target

pytestmark = [pytest.mark.integration, pytest.mark.faults]

APP = "specserve-replica-faults"
QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"
CALL_TIMEOUT_S = 15.0
STALL_S = 3.0
LONG = {"question": QUESTION, "method": "specreason", "max_steps": 12, "max_total_tokens": 72}


def app_config(dirs: Any, **server: Any) -> dict[str, Any]:
    server = {"call_timeout_s": CALL_TIMEOUT_S, "health_probe_interval_s": 0.5, **server}
    cfg = tiny_app_config(dirs, APP, **server)
    cfg["deployments"]["verifier"].update(stall_timeout_s=STALL_S, health_check_period_s=1.0)
    return cfg


@pytest.fixture(scope="module")
def dirs(tiny_model_dirs) -> Any:
    return tiny_model_dirs


@pytest.fixture(scope="module")
def url(serve_instance, dirs) -> str:
    run_tiny_app(app_config(dirs), target_backend_factory=faulty_target)
    yield serve_instance.url
    if APP in serve.status().applications:
        serve.delete(APP)


@pytest.fixture()
def http(url) -> httpx.Client:
    with httpx.Client(base_url=url, timeout=120) as client:
        wait_for(lambda: client.get("/healthz").json()["status"], lambda s: s == "ok", timeout_s=120)
        yield client


def post(url: str, body: dict[str, Any]) -> httpx.Response:
    return httpx.post(f"{url}/v1/reason", json=body, timeout=120)


def replica(deployment: str) -> str:
    return next(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::") and f"{APP}#{deployment}#" in a["name"])


def in_flight(http: httpx.Client) -> int:
    return http.get("/v1/stats").json()["ingress"]["in_flight"]


def test_killing_the_drafter_under_load_loses_no_request(http, url):
    with ThreadPoolExecutor(6) as pool:
        futures = [pool.submit(post, url, LONG) for _ in range(6)]
        wait_for(lambda: in_flight(http), lambda n: n >= 4, timeout_s=30)
        kill_replica(APP, "Drafter")
        replies = [f.result() for f in futures]
    assert [r.status_code for r in replies] == [200] * 6, [r.text for r in replies if r.status_code != 200]
    stats = [r.json()["stats"] for r in replies]
    degraded = [s for s in stats if s["degraded_steps"]]
    assert degraded and all("drafter" in s["degraded_reason"] for s in degraded)
    wait_for(lambda: http.get("/healthz").json()["components"]["drafter"], lambda s: s == "ok", timeout_s=120)
    assert post(url, LONG).json()["stats"]["degraded_steps"] == 0  # the new drafter replica serves


def test_killing_the_verifier_fails_in_flight_requests_fast_then_recovers(http, url):
    with ThreadPoolExecutor(4) as pool:
        futures = [pool.submit(post, url, LONG) for _ in range(4)]
        wait_for(lambda: in_flight(http), lambda n: n >= 2, timeout_s=30)
        killed = time.monotonic()
        kill_replica(APP, "Verifier")
        replies = [f.result() for f in futures]
    summary = [(r.status_code, round(r.elapsed.total_seconds(), 1), r.text[-200:] if r.status_code != 200 else
                r.json()["stats"]["target_steps"]) for r in replies]
    assert time.monotonic() - killed < CALL_TIMEOUT_S, summary  # none waited it out
    failed = [r for r in replies if r.status_code != 200]
    assert failed and all(r.status_code == 503 and r.json()["error"]["code"] == "backend_error" for r in failed), [
        (r.status_code, r.text[:300]) for r in replies]
    assert all("verifier" in r.json()["error"]["message"] for r in failed)
    ok = wait_for(lambda: post(url, {"question": QUESTION, "method": "target", "max_steps": 1}),
                  lambda r: r.status_code == 200, timeout_s=120)
    assert ok.json()["stats"]["target_steps"] == 1


def test_a_wedged_engine_fails_its_health_check_and_is_replaced(http, url):
    before = replica("Verifier")
    r = post(url, {"question": f"{WEDGE_MARKER} {QUESTION}", "method": "target"})
    assert r.status_code in (503, 504) and r.json()["error"]["code"] in ("backend_error", "backend_timeout")
    wait_for(lambda: replica_or_none("Verifier"), lambda name: name not in (None, before), timeout_s=120)
    ok = wait_for(lambda: post(url, {"question": QUESTION, "method": "target", "max_steps": 1}),
                  lambda r: r.status_code == 200, timeout_s=120)
    assert ok.json()["stats"]["target_steps"] == 1


def replica_or_none(deployment: str) -> str | None:
    try:
        return replica(deployment)
    except StopIteration:
        return None


def test_a_redeploy_drains_in_flight_requests(http, url, dirs):
    """New ingress arguments replace every replica; requests already running finish on the old ones."""
    slow = {"question": f"{SLOW_MARKER} {QUESTION}", "method": "target", "max_steps": 1}
    with ThreadPoolExecutor(4) as pool:
        held = pool.submit(post, url, slow)
        steady = [pool.submit(post, url, {"question": QUESTION, "max_steps": 2}) for _ in range(2)]
        wait_for(lambda: in_flight(http), lambda n: n >= 1, timeout_s=30)
        run_tiny_app(app_config(dirs, request_timeout_s=90.0), target_backend_factory=faulty_target)
        assert held.result().status_code == 200, held.result().text
        assert [f.result().status_code for f in steady] == [200, 200]


def test_deleting_the_app_drains_in_flight_requests(http, url):
    """What `specserve up` does on Ctrl-C before it stops Serve (launcher.stop)."""
    slow = {"question": f"{SLOW_MARKER} {QUESTION}", "method": "target", "max_steps": 1}
    with ThreadPoolExecutor(1) as pool:
        held = pool.submit(post, url, slow)
        wait_for(lambda: in_flight(http), lambda n: n >= 1, timeout_s=30)
        serve.delete(APP)
        reply = held.result()
    assert reply.status_code == 200, reply.text
    assert reply.json()["stats"]["target_steps"] == 1
