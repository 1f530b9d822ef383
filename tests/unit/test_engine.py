"""The in-process Engine's per-request knobs: token-level speculation reaches SamplingParams, and the embedding
step verifier's model is loaded lazily, once, or the request is rejected naming step_verifier."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import pytest

from cluster.backends.base import Generation, SamplingParams
from cluster.config import load_config
from cluster.config.schema import AppArgs, ReasoningParams
from cluster.engine import Engine, uses_embedder
from cluster.errors import InvalidRequestError
from cluster.reasoning.methods import get_method
from cluster.reasoning.types import FinishReason
from tests.fakes import BagOfWordsEmbedder, ScriptedBackend

QUESTION = "What is 1 + 1?"
LOOKAHEAD = {"method": "lookahead", "step_verifier": "embedding", "lookahead_depth": 2, "max_steps": 3}


class EchoBackend(ScriptedBackend):
    """Writes `text` for every prompt and records each row's SamplingParams."""

    def __init__(self, text: str) -> None:
        super().__init__([("1", 1.0)])
        self.text = text
        self.sampling: list[SamplingParams] = []

    async def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Generation]:
        self.sampling.extend(params)
        return [Generation(self.text, 3, FinishReason.STOP) for _ in prompts]


def engine(*overrides: str, embedder: BagOfWordsEmbedder | None = None) -> Engine:
    args = load_config(overrides=list(overrides))
    return Engine(args, draft_backend=EchoBackend("one plus one"), target_backend=EchoBackend("\\boxed{2}"),
                  embedder=embedder)


@pytest.mark.parametrize("flag", [True, False], ids=["on", "off"])
async def test_token_speculation_knob_reaches_sampling_params(flag):
    eng = engine()
    await eng.reason(QUESTION, {"method": "specreason", "token_speculation": flag})
    sampling = eng.target_backend.sampling + eng.draft_backend.sampling
    assert sampling and {p.speculative for p in sampling} == {flag}


@pytest.mark.parametrize("target, refused", [
    (["target.backend=vllm", "target.speculative.model=d"], True),
    (["target.backend=vllm", "target.engine_kwargs.speculative_config={method: ngram, num_speculative_tokens: 3}"],
     True),
    (["target.backend=vllm"], False),
    (["target.speculative.model=d"], False),
], ids=["vllm-speculative", "vllm-engine-kwargs", "vllm-without", "transformers-per-request"])
async def test_token_speculation_off_is_refused_where_the_engine_speculates_on_every_request(target, refused):
    eng = engine(*target)
    if not refused:
        assert (await eng.reason(QUESTION, {"method": "target", "token_speculation": False})).answer == "2"
        return
    with pytest.raises(InvalidRequestError, match="every request") as err:
        await eng.reason(QUESTION, {"method": "target", "token_speculation": False})
    assert err.value.field == "token_speculation" and not eng.target_backend.sampling
    assert (await eng.reason(QUESTION, {"method": "target"})).answer == "2"


def test_token_speculation_defaults_on_and_validates():
    assert ReasoningParams().token_speculation is True
    assert ReasoningParams().with_overrides({"token_speculation": False}).token_speculation is False


def test_uses_embedder_only_for_embedding_step_verifier_of_a_method_that_takes_one():
    embedding = ReasoningParams(method="lookahead", step_verifier="embedding")
    assert uses_embedder(get_method("lookahead"), embedding)
    assert not uses_embedder(get_method("lookahead"), ReasoningParams(method="lookahead", step_verifier="exact"))
    assert not uses_embedder(get_method("target"), embedding)


async def test_embedding_verifier_without_a_configured_model_is_invalid():
    with pytest.raises(InvalidRequestError) as err:
        await engine().reason(QUESTION, LOOKAHEAD)
    assert err.value.field == "step_verifier"


async def test_embedding_verifier_with_a_missing_model_is_invalid(tmp_path):
    eng = engine(f"verifiers.embedding.path={tmp_path / 'no-such-model'}")
    with pytest.raises(InvalidRequestError) as err:
        await eng.reason(QUESTION, LOOKAHEAD)
    assert err.value.field == "step_verifier" and "unavailable" in str(err.value)


async def test_embedder_loads_on_first_use_only_once(monkeypatch):
    loaded: list[object] = []

    def load(cfg):
        loaded.append(cfg)
        return BagOfWordsEmbedder(["one", "plus", "2"])

    monkeypatch.setattr("cluster.engine.load_embedder", load)
    eng = engine("verifiers.embedding.max_length=64")
    await eng.reason(QUESTION, {**LOOKAHEAD, "step_verifier": "exact"})
    assert not loaded
    results = await asyncio.gather(*(eng.reason(QUESTION, LOOKAHEAD) for _ in range(3)))
    assert len(loaded) == 1 and loaded[0].max_length == 64
    assert all(r.answer == "2" and r.stats.steps_rewritten >= 1 for r in results)
    assert eng.embedder.calls  # the drafts were judged by embedding


def test_embedding_config_is_optional_and_strict():
    assert load_config().verifiers.embedding is None
    cfg = load_config(overrides=["verifiers.embedding.num_cpus=0.25"]).verifiers.embedding
    assert cfg.path is None and cfg.num_cpus == 0.25 and cfg.max_batch_size > 0
    with pytest.raises(ValueError):
        AppArgs.model_validate({**load_config().model_dump(), "verifiers": {"embedding": {"bogus": 1}}})
