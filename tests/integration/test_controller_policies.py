"""The Controller's policies over real HTTP on the tiny models: the bandit hands out arms and learns (per request
and per step), pinning bypasses it, its checkpoint survives a controller restart, and best_of_n / ssr answer.

Layout: one app for the module with two arms, Thompson sampling (the shipped controller configs' bandit; UCB and
EXP3 are covered by the unit tests) and a checkpoint written on every report (interval 0).
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import pytest
from ray import serve

from benchmarks.local_app import kill_replica, tiny_app_config, wait_for
from cluster.reasoning.methods.best_of_n import choose
from cluster.reasoning.types import Candidate
from deployments.app import build_app
from tests.integration.conftest import NO_ACCESS_LOG

pytestmark = pytest.mark.integration

APP = "specserve-policies"
QUESTION = "What is 2 + 3?"
ARMS = [{"name": "spec-low", "knobs": {"method": "specreason", "threshold": 3.0}},
        {"name": "target-only", "knobs": {"method": "target"}}]


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("controller") / "policy.json")


@pytest.fixture(scope="module")
def http(serve_instance, tiny_model_dirs, checkpoint) -> httpx.Client:
    cfg = tiny_app_config(tiny_model_dirs, APP)
    cfg["controller"] = {"bandit": {"arms": ARMS, "algorithm": "thompson"}, "checkpoint_path": checkpoint,
                         "checkpoint_interval_s": 0}
    serve.run(build_app(cfg), name=APP, route_prefix="/", logging_config=NO_ACCESS_LOG)
    with httpx.Client(base_url=serve_instance.url, timeout=120) as client:
        yield client
    serve.delete(APP)


def reason(http: httpx.Client, **knobs: Any) -> dict[str, Any]:
    r = http.post("/v1/reason", json={"question": QUESTION, **knobs})
    assert r.status_code == 200, r.text
    return r.json()


def pulls(http: httpx.Client) -> dict[str, int]:
    arms = http.get("/v1/stats").json()["policy"]["bandit"]["arms"]
    return {name: a["pulls"] for name, a in arms.items()}


def test_the_bandit_hands_out_arms_and_learns(http):
    arms = [reason(http)["arm"] for _ in range(3)]
    assert set(arms) == {"spec-low", "target-only"}  # the warm-up pulls every arm twice first
    counts = wait_for(lambda: pulls(http), lambda p: sum(p.values()) == 3)
    stats = http.get("/v1/stats").json()["policy"]["bandit"]
    assert counts["spec-low"] >= 1 and all(a["mean_reward"] is not None for a in stats["arms"].values())
    assert stats["settings"] == {"variance": "arm", "warmup_rounds": 2, "seed": 0}  # the settings in force


def test_pinning_bypasses_the_bandit(http):
    before = wait_for(lambda: pulls(http), lambda p: sum(p.values()) >= 3)
    assert reason(http, arm="target-only")["arm"] == "target-only"
    assert reason(http, threshold=1.0)["arm"] is None  # an arm knob set explicitly: no arm
    assert http.post("/v1/reason", json={"question": QUESTION, "arm": "nope"}).status_code == 400
    time.sleep(1.0)
    assert pulls(http) == before


def test_a_request_served_per_step_pulls_an_arm_every_round(http):
    before = sum(wait_for(lambda: pulls(http), lambda p: sum(p.values()) >= 3).values())
    body = reason(http, bandit_granularity="step", max_steps=3)
    assert body["method"] == "bandit_rounds" and body["arm"] is None
    assert body["steps"] and all(s["arm"] in {"spec-low", "target-only"} for s in body["steps"])
    wait_for(lambda: pulls(http), lambda p: sum(p.values()) == before + len(body["steps"]))  # one step per round
    bad = http.post("/v1/reason", json={"question": QUESTION, "bandit_granularity": "token"})
    assert bad.status_code == 400 and "bandit_granularity" in bad.text


def test_checkpoint_survives_a_controller_restart(http, checkpoint):
    before = wait_for(lambda: pulls(http), lambda p: sum(p.values()) >= 3)
    replica = http.get("/v1/stats").json()["replica"]["id"]
    kill_replica(APP, "Controller")
    served = http.post("/v1/reason", json={"question": "What is 2 + 2?", "arm": "target-only", "max_steps": 1})
    assert served.status_code == 200, served.text  # served meanwhile, with the last known defaults

    def stats() -> dict[str, Any]:
        try:
            return http.get("/v1/stats").json()
        except httpx.HTTPError:
            return {}
    after = wait_for(stats, lambda s: s.get("replica", {}).get("id") not in (None, replica), timeout_s=120)
    assert after["policy"]["restored"] is True
    assert {n: a["pulls"] for n, a in after["policy"]["bandit"]["arms"].items()} == before


@pytest.mark.parametrize(("scorer", "select"), [("judge", "best"), ("verdict", "weighted_vote")])
def test_best_of_n_over_http(http, scorer, select):
    verifier = serve.get_deployment_handle("Verifier", APP)
    verdicts_before = len(verifier.batch_sizes.remote("verdict").result())
    body = reason(http, method="best_of_n", temperature=0.8,
                  best_of_n={"method": "draft", "peek": 2, "n_max": 3, "scorer": scorer, "select": select})
    verdicts = len(verifier.batch_sizes.remote("verdict").result()) - verdicts_before
    assert (verdicts > 0) == (scorer == "verdict")  # the yes / no judge runs on the Verifier deployment
    assert body["method"] == "best_of_n" and 2 <= body["stats"]["samples"] <= 3 and body["arm"] is None
    candidates = [Candidate.from_dict(c) for c in body["candidates"]]
    assert len(candidates) == body["stats"]["samples"] and all(0 <= c.score <= 1 for c in candidates)
    assert body["answer"] == candidates[choose(candidates, select)].answer
    prior = wait_for(lambda: http.get("/v1/stats").json()["policy"]["optscale_prior"],
                     lambda p: p is not None)
    assert 0 < prior["sigma"]


def test_ssr_over_http(http):
    pool = ["Add the numbers.", "Count on your fingers."]  # the default pool's menu outgrows the tiny context
    body = reason(http, method="ssr", ssr={"k": 2, "early_stop": "first_answer", "pool": pool})
    assert body["method"] == "ssr" and body["stats"]["samples"] == 2 and body["steps"]
    assert body["stats"]["paths_stopped_early"] in (0, 1)  # the second path, unless both answered in one round
