"""Faults: a drafter that always fails degrades requests to target-only; a failing or stalled verifier
gives 503 / 504; the replicas keep serving afterwards.

Layout: one app with a FailingBackend drafter and a FaultyTarget verifier (the real tiny target,
failing or stalling only for questions that carry a marker), deployed with `serve.run`.
"""

from __future__ import annotations

import json
import time

import pytest
from ray import serve

from benchmarks.local_app import tiny_app_config
from tests.integration.conftest import run_tiny_app
from tests.integration.faulty_backends import FAIL_MARKER, SLOW_MARKER, SLOW_S, failing_backend, faulty_target

pytestmark = pytest.mark.integration

APP = "specserve-faults"
QUESTION = "What is 7 times 8?"
CALL_TIMEOUT_S = 2.0


@pytest.fixture(scope="module")
def url(serve_instance, tiny_model_dirs) -> str:
    run_tiny_app(tiny_app_config(tiny_model_dirs, APP, call_timeout_s=CALL_TIMEOUT_S),
                 draft_backend_factory=failing_backend, target_backend_factory=faulty_target)
    yield serve_instance.url
    serve.delete(APP)


def test_failing_drafter_degrades_to_target_only(http):
    r = http.post("/v1/reason", json={"question": QUESTION, "method": "specreason"})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["steps"] and {s["author"] for s in body["steps"]} == {"target"}
    assert body["stats"]["degraded_steps"] > 0
    assert "drafter" in body["stats"]["degraded_reason"]


def test_failing_drafter_degrades_streaming(http):
    r = http.post("/v1/chat/completions", json={"model": "specserve-tiny", "stream": True,
                                                "messages": [{"role": "user", "content": QUESTION}]})
    events = [json.loads(line[6:]) for line in r.text.splitlines() if line.startswith("data: {")]
    steps = [e["specserve"]["step"] for e in events if "step" in e.get("specserve", {})]
    assert steps and {s["outcome"] for s in steps} == {"target"}
    assert events[-1]["specserve"]["stats"]["degraded_steps"] == len(steps)


@pytest.mark.parametrize(("marker", "status", "code"), [
    (FAIL_MARKER, 503, "backend_error"),
    (SLOW_MARKER, 504, "backend_timeout"),
], ids=["verifier-fails-503", "verifier-stalls-504"])
def test_verifier_fault_is_a_5xx(http, marker, status, code):
    r = http.post("/v1/reason", json={"question": f"{marker} {QUESTION}"})
    assert r.status_code == status, r.text
    assert r.json()["error"]["code"] == code and "Traceback" not in r.text


def test_replicas_serve_after_faults(http):
    """Once the stalled call is over (it holds the target's batch queue meanwhile), requests succeed again."""
    deadline = time.monotonic() + SLOW_S + 10
    while (r := http.post("/v1/reason", json={"question": QUESTION, "method": "target", "max_steps": 1})
           ).status_code != 200 and time.monotonic() < deadline:
        time.sleep(0.5)
    assert r.status_code == 200 and r.json()["stats"]["target_steps"] == 1
