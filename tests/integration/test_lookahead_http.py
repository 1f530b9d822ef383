"""Served lookahead over real HTTP on the tiny pair: every step verifier, the batched target prefixes, the
Embedder deployment (the shipped all-MiniLM-L6-v2), and per-request token-level speculation.

Layout: one app for the module; its target speculates at token level with the tiny draft as assistant,
and `verifiers.embedding` deploys the Embedder. The two random models practically never write the same
step, so drafts reach the model-backed verifiers (judge_calls > 0) and exact match rewrites every step.
"""

from __future__ import annotations

import asyncio
import time

import httpx
import pytest
from ray import serve

from benchmarks.local_app import tiny_app_config
from cluster.config.schema import EmbeddingVerifierConfig
from cluster.errors import InvalidRequestError
from deployments.app import build_app
from deployments.embedder import EmbedderDeployment
from tests.integration.conftest import NO_ACCESS_LOG

pytestmark = pytest.mark.integration

APP = "specserve-lookahead"
QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"
DEPTH = 2
# "e" ends the random models' steps within the token cap: a target step cut off by the cap validates no
# draft, so with the usual delimiter no draft would ever reach a model-backed verifier.
LOOKAHEAD = {"method": "lookahead", "lookahead_depth": DEPTH, "max_steps": 3, "token_speculation": False,
             "step_delimiter": "e"}


@pytest.fixture(scope="module")
def url(serve_instance, tiny_model_dirs) -> str:
    cfg = tiny_app_config(tiny_model_dirs, APP)
    cfg["target"]["speculative"] = {"model": str(tiny_model_dirs.draft), "num_speculative_tokens": 3}
    cfg["verifiers"] = {"embedding": {"num_cpus": 0.1, "max_ongoing_requests": 32}}
    serve.run(build_app(cfg), name=APP, route_prefix="/", logging_config=NO_ACCESS_LOG)
    yield serve_instance.url
    serve.delete(APP)


@pytest.fixture()
def verifier(url):
    return serve.get_deployment_handle("Verifier", APP)


@pytest.mark.parametrize("mode", ["sync", "async"])
@pytest.mark.parametrize("step_verifier", ["exact", "llm_judge", "embedding"])
def test_lookahead_with_each_step_verifier(http, verifier, step_verifier, mode):
    judged_before = len(verifier.batch_sizes.remote("equivalence").result())
    r = http.post("/v1/reason", json={"question": QUESTION, **LOOKAHEAD, "lookahead_mode": mode,
                                      "step_verifier": step_verifier})
    assert r.status_code == 200, r.text
    body = r.json()
    stats = body["method"] == "lookahead" and body["stats"]
    assert stats["steps_drafted"] == stats["steps_accepted"] + stats["steps_rewritten"] > 0
    assert (stats["judge_calls"] > 0) == (step_verifier != "exact")
    judged = len(verifier.batch_sizes.remote("equivalence").result()) > judged_before
    assert judged == (step_verifier == "llm_judge")  # the judge runs on the Verifier deployment, batched


def test_sync_cycle_sends_its_target_prefixes_as_one_batch(http, verifier):
    """A sync cycle writes the target's step after the γ + 1 prefixes (context, + draft 1, + drafts 1..2) in
    ONE call to the Verifier deployment, which runs it as one backend batch."""
    before = len(verifier.batch_items.remote("target").result())
    r = http.post("/v1/reason", json={"question": QUESTION, **LOOKAHEAD, "lookahead_mode": "sync",
                                      "step_verifier": "exact"})
    assert r.status_code == 200, r.text
    items = verifier.batch_items.remote("target").result()[before:]
    calls = verifier.batch_sizes.remote("target").result()[before:]
    assert max(items) == DEPTH + 1 and set(calls) == {1}, (items, calls)


def test_concurrent_embedding_requests_share_the_embedder(url):
    async def burst() -> list[httpx.Response]:
        async with httpx.AsyncClient(base_url=url, timeout=120) as client:
            return await asyncio.gather(*(client.post("/v1/reason", json={
                "question": f"{QUESTION} ({i})", **LOOKAHEAD, "step_verifier": "embedding"}) for i in range(3)))

    responses = asyncio.run(burst())
    assert [r.status_code for r in responses] == [200] * 3
    assert all(r.json()["stats"]["judge_calls"] > 0 for r in responses)


def test_token_speculation_is_per_request(http):
    on, off = (http.post("/v1/reason", json={"question": QUESTION, "method": "target", "max_steps": 2,
                                             "token_speculation": flag}).json() for flag in (True, False))
    assert on["stats"]["spec_draft_tokens"] > 0 and on["stats"]["spec_rounds"] > 0
    assert on["stats"]["token_acceptance_rate"] is not None
    assert off["stats"]["spec_draft_tokens"] == 0 and off["stats"]["token_acceptance_rate"] is None
    assert on["text"] == off["text"]  # greedy token-level speculation writes the target's own tokens
    deadline = time.monotonic() + 10  # the controller's aggregate counts them (reports are asynchronous)
    while (stats := http.get("/v1/stats").json())["token_spec_decode_num_draft_tokens"] == 0:
        assert time.monotonic() < deadline, stats
        time.sleep(0.2)
    assert stats["token_acceptance_rate"] is not None


def test_embedder_without_a_model_rejects_calls_naming_step_verifier(tmp_path):
    """A replica whose model is missing stays up and answers each call with a 400-class error."""
    replica = EmbedderDeployment.func_or_class(EmbeddingVerifierConfig(path=str(tmp_path / "missing")))
    with pytest.raises(InvalidRequestError) as err:
        asyncio.run(replica.embed(["a step"]))
    assert err.value.field == "step_verifier"
