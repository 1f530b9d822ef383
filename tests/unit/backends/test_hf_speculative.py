"""HFBackend with token-level speculation (tiny draft → tiny target): greedy output identical to the no-cache
reference, prefix reuse of both models, stop strings, EOS, token and context limits, sampling, the
acceptance counters through the reasoning stats, and config validation.
"""

from __future__ import annotations

import pytest

from benchmarks.tiny_models import build_tiny_model
from cluster.backends.base import ChatMessage, SamplingParams
from cluster.backends.hf import HFBackend
from cluster.backends.roles import BackendDrafter, BackendVerifier
from cluster.config.loader import load_config
from cluster.config.schema import ModelSpec, ReasoningParams
from cluster.errors import ConfigError
from cluster.reasoning.methods.baseline import run_target
from cluster.reasoning.types import FinishReason
from tests.unit.backends.test_hf import QUESTION, STEPS, reference_greedy

MAX_MODEL_LEN = 256
K = 3


def speculative_spec(target, draft, **kw) -> ModelSpec:
    return ModelSpec(path=str(target), dtype="float32", num_threads=1, max_model_len=MAX_MODEL_LEN,
                     prefix_cache_entries=4, speculative={"model": str(draft), "num_speculative_tokens": K}, **kw)


@pytest.fixture(scope="module")
def backend(tiny_model_dirs) -> HFBackend:
    """The tiny target, with the tiny draft proposing K tokens per round."""
    return HFBackend(speculative_spec(tiny_model_dirs.target, tiny_model_dirs.draft), tiny_model_dirs.target)


@pytest.fixture(scope="module")
def self_drafting(tiny_model_dirs) -> HFBackend:
    """The target drafting for itself: every greedy proposal should be accepted."""
    return HFBackend(speculative_spec(tiny_model_dirs.target, tiny_model_dirs.target), tiny_model_dirs.target)


def prompt(backend: HFBackend, steps: str | None = STEPS, question: str = QUESTION) -> str:
    return backend.render_chat([ChatMessage("user", question)], assistant_prefix=steps)


async def greedy(backend: HFBackend, text: str, n: int, **kw):
    (gen,) = await backend.generate([text], [SamplingParams(max_tokens=n, **kw)])
    return gen


async def test_greedy_matches_reference_and_both_prefix_caches_are_reused(backend):
    backend._prefix.clear()
    backend._assistant.prefix.clear()
    base = prompt(backend)
    first = await greedy(backend, base, 20)
    assert first.text == backend._detokenize(reference_greedy(backend, base, 20))
    assert (first.num_tokens, first.finish_reason) == (20, FinishReason.LENGTH)
    assert first.spec_rounds > 0 and first.spec_accepted_tokens <= first.spec_draft_tokens <= K * first.spec_rounds

    longer = base + first.text + "\n\nStep 3:"
    session = backend._assistant.session(backend._chat.encode(longer))
    assert len(session.fed) >= backend.count_tokens(base)  # the draft's cache from the first call is reused
    session.close(session.fed)
    ext = await greedy(backend, longer, 20)
    assert ext.cached_tokens >= backend.count_tokens(base)
    assert ext.text == backend._detokenize(reference_greedy(backend, longer, 20))
    again = await greedy(backend, longer, 8, speculative=False)  # the target cache a speculative row left is exact
    assert again.cached_tokens == backend.count_tokens(longer) - 1
    assert again.text == backend._detokenize(reference_greedy(backend, longer, 8))


async def test_batch_rows_decode_speculatively_or_plainly_per_request(backend):
    texts = [prompt(backend, "Step 1:"), prompt(backend, None, "What is 2 + 2?"), prompt(backend)]
    params = [SamplingParams(max_tokens=9), SamplingParams(max_tokens=4, speculative=False),
              SamplingParams(max_tokens=13)]
    gens = await backend.generate(texts, params)
    for text, p, gen in zip(texts, params, gens, strict=True):
        assert gen.num_tokens == p.max_tokens
        assert gen.text == backend._detokenize(reference_greedy(backend, text, p.max_tokens))
    assert [g.spec_rounds > 0 for g in gens] == [True, False, True]


async def test_stop_string_eos_and_limits(backend, monkeypatch):
    text = prompt(backend)
    ref = reference_greedy(backend, text, 16)
    ref_text = backend._detokenize(ref)
    stop = ref_text[len(backend._detokenize(ref[:6])):][:2]  # starts at the 7th token, ends mid-round
    cut = await greedy(backend, text, 16, stop=(stop,))
    assert cut.finish_reason is FinishReason.STOP and cut.text == ref_text[:ref_text.find(stop)]

    monkeypatch.setattr(backend, "_eos_ids", frozenset({ref[4]}))
    eos = await greedy(backend, text, 16)
    assert (eos.finish_reason, eos.num_tokens) == (FinishReason.EOS, ref.index(ref[4]) + 1)
    monkeypatch.undo()

    for n in (1, 2, K + 1, K + 2):  # token limits at and around a round's size
        gen = await greedy(backend, text, n)
        assert gen.num_tokens == n and gen.text == backend._detokenize(ref[:n])
    near = prompt(backend, "7 " * 100)
    room = MAX_MODEL_LEN - backend.count_tokens(near)
    gen = await greedy(backend, near, room + 50)
    assert (gen.num_tokens, gen.finish_reason) == (room, FinishReason.LENGTH)


async def test_self_drafting_accepts_every_greedy_proposal(self_drafting):
    gen = await greedy(self_drafting, prompt(self_drafting), 4 * (K + 1))
    assert gen.spec_draft_tokens == K * gen.spec_rounds
    assert gen.spec_accepted_tokens == gen.spec_draft_tokens and gen.spec_rounds == 4
    stats = self_drafting.spec_decode_stats()
    assert stats.acceptance_rate == 1.0 and stats.mean_acceptance_length == K + 1
    assert stats.accepted_histogram[K] == stats.num_drafts


async def test_seeded_sampling_is_reproducible_and_self_drafting_keeps_almost_everything(backend, self_drafting):
    params = SamplingParams(max_tokens=16, temperature=0.8, top_p=0.9, seed=5)
    a, b = await backend.generate([prompt(backend)] * 2, [params, params])
    assert a.text == b.text and a.num_tokens == 16 and a.spec_rounds > 0
    (c,) = await self_drafting.generate([prompt(self_drafting)], [params])
    assert c.spec_accepted_tokens >= 0.9 * c.spec_draft_tokens  # p = q up to rounding: accepted with prob. 1


async def test_reasoning_stats_carry_token_level_acceptance(backend):
    params = ReasoningParams(method="target", max_step_tokens=8, max_total_tokens=24, max_steps=3)
    result = await run_target(QUESTION, BackendDrafter(backend), BackendVerifier(backend), params)
    s = result.stats
    assert s.spec_rounds > 0 and s.spec_accepted_tokens <= s.spec_draft_tokens
    assert s.token_acceptance_rate == s.spec_accepted_tokens / s.spec_draft_tokens
    assert s.mean_acceptance_length == 1 + s.spec_accepted_tokens / s.spec_rounds
    assert {"token_acceptance_rate", "mean_acceptance_length", "spec_rounds"} <= set(s.to_dict())


def test_invalid_speculative_config_names_the_key(tmp_path):
    draft = ["draft.path=d", "target.path=t", "target.speculative.model=d"]
    with pytest.raises(ConfigError, match="target.speculative.num_speculative_tokens"):
        load_config([], [*draft, "target.speculative.num_speculative_tokens=0"])
    with pytest.raises(ConfigError, match="target.speculative.model"):
        load_config([], ["target.speculative.num_speculative_tokens=3"])
    with pytest.raises(ConfigError, match="either speculative or engine_kwargs.speculative_config"):
        load_config([], [*draft, "target.engine_kwargs.speculative_config.method=ngram"])
    assert load_config([], draft).target.speculative.num_speculative_tokens == 5


def test_a_draft_with_another_vocabulary_is_rejected(tiny_model_dirs, tmp_path):
    other = build_tiny_model(tmp_path / "other-vocab", seed=2, vocab_size=400)
    with pytest.raises(ConfigError, match="vocabulary"):
        HFBackend(speculative_spec(tiny_model_dirs.target, other), tiny_model_dirs.target)
