"""HFBackend on the tiny random target: greedy equivalence with and without prefix reuse, stop strings,
finish reasons, next-token distributions, context limits, seeded sampling and concurrent calls.

The reference for every greedy check is a plain loop that re-encodes the whole sequence at each token
(no KV cache at all), so any corruption of a reused cache shows up as a token mismatch.
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys

import pytest
import torch

from cluster.backends.base import ChatMessage, SamplingParams
from cluster.backends.hf import HFBackend, find_stop, sample_token
from cluster.config.schema import ModelSpec
from cluster.errors import BackendUnavailableError, PromptTooLongError
from cluster.reasoning.types import FinishReason

QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"
STEPS = "Step 1: 3 boxes with 14 pens each.\n\nStep 2: 3 * 14 = 42.\n\n"
MAX_MODEL_LEN = 256


@pytest.fixture(scope="module")
def backend(tiny_model_dirs) -> HFBackend:
    spec = ModelSpec(path=str(tiny_model_dirs.target), dtype="float32", num_threads=1,
                     max_model_len=MAX_MODEL_LEN, prefix_cache_entries=4)
    return HFBackend(spec, tiny_model_dirs.target)


def user(text: str = QUESTION) -> ChatMessage:
    return ChatMessage("user", text)


@torch.inference_mode()
def reference_greedy(backend: HFBackend, prompt: str, n: int) -> list[int]:
    """n greedy tokens, recomputing the full sequence every step (no cache)."""
    ids = backend._chat.encode(prompt)
    out: list[int] = []
    for _ in range(n):
        logits = backend._model(input_ids=torch.tensor([ids + out]), use_cache=False).logits[0, -1]
        out.append(int(torch.argmax(logits)))
    return out


@torch.inference_mode()
def reference_probs(backend: HFBackend, prompt: str) -> torch.Tensor:
    ids = backend._chat.encode(prompt)
    return torch.softmax(backend._model(input_ids=torch.tensor([ids]), use_cache=False).logits[0, -1], dim=-1)


async def greedy(backend: HFBackend, prompt: str, n: int, **kw):
    (gen,) = await backend.generate([prompt], [SamplingParams(max_tokens=n, **kw)])
    return gen


async def test_greedy_matches_reference_fresh_extension_and_strict_prefix(backend):
    """A fresh prompt, a prompt extending the cached sequence, and a strict prefix of it all decode
    exactly like the no-cache reference; the latter two are served mostly from the cache."""
    backend._prefix.clear()
    base = backend.render_chat([user()], assistant_prefix=STEPS)
    fresh = await greedy(backend, base, 12)
    assert fresh.cached_tokens == 0 and fresh.finish_reason is FinishReason.LENGTH
    assert fresh.text == backend._detokenize(reference_greedy(backend, base, 12))

    longer = base + fresh.text + "\n\nStep 3:"
    ext = await greedy(backend, longer, 12)
    assert ext.cached_tokens >= backend.count_tokens(base)
    assert ext.text == backend._detokenize(reference_greedy(backend, longer, 12))

    prefix = backend.render_chat([user()], assistant_prefix="Step 1:")
    sub = await greedy(backend, prefix, 12)
    assert sub.cached_tokens == backend.count_tokens(prefix) - 1
    assert sub.text == backend._detokenize(reference_greedy(backend, prefix, 12))
    # the longer entry survived the crop-copy: the extension is still a full hit
    again = await greedy(backend, longer, 12)
    assert again.text == ext.text and again.cached_tokens == backend.count_tokens(longer) - 1


async def test_judge_and_rewrite_prompts_hit_the_cache(backend):
    """Judge prompt after a continuation, then a rewrite prompt that is a prefix of the judge prompt."""
    backend._prefix.clear()
    draft = await greedy(backend, backend.render_chat([user()], assistant_prefix=STEPS), 8)
    judge = backend.render_chat([user(), ChatMessage("assistant", STEPS + draft.text), user("Score 0-9.")],
                                assistant_prefix="I think the quality score is: ")
    (dist,) = await backend.next_token_distribution([judge])
    assert dist.cached_tokens > backend.count_tokens(STEPS)
    rewrite = backend.render_chat([user()], assistant_prefix=STEPS)
    gen = await greedy(backend, rewrite, 8)
    assert gen.cached_tokens == backend.count_tokens(rewrite) - 1
    assert gen.text == draft.text


async def test_stop_string_inside_a_token_is_cut(backend):
    """The stop string starts in the middle of a generated token; the text ends right before it."""
    prompt = backend.render_chat([user()])
    ref_ids = reference_greedy(backend, prompt, 16)
    ref = backend._detokenize(ref_ids)
    # a stop that starts inside the 6th token (which is longer than one char) or else at its 2nd char
    start = len(backend._detokenize(ref_ids[:5])) + 1
    stop = ref[start:start + 2]
    gen = await greedy(backend, prompt, 16, stop=("never-produced", stop))
    assert gen.finish_reason is FinishReason.STOP
    assert gen.text == ref[:ref.find(stop)]
    assert gen.num_tokens <= 7


def test_find_stop_picks_the_earliest():
    assert find_stop("a.\n\nb\n\n", ("\n\n",)) == 2
    assert find_stop("xx</think>y\n\n", ("\n\n", "</think>")) == 2
    assert find_stop("abc", ("\n\n",)) is None and find_stop("abc", ()) is None


async def test_eos_and_length(backend, monkeypatch):
    prompt = backend.render_chat([user()])
    first, second = reference_greedy(backend, prompt, 2)
    monkeypatch.setattr(backend, "_eos_ids", frozenset({second}))
    gen = await greedy(backend, prompt, 10)
    assert gen.finish_reason is FinishReason.EOS and gen.num_tokens == 2
    assert gen.text == backend._detokenize([first])
    monkeypatch.undo()
    gen = await greedy(backend, prompt, 3)
    assert gen.finish_reason is FinishReason.LENGTH and gen.num_tokens == 3


async def test_next_token_distribution_matches_a_plain_forward(backend):
    prompt = backend.render_chat([user()], assistant_prefix=STEPS)
    await greedy(backend, prompt + "Step 3", 2)  # make the prompt a partial cache hit
    (dist,) = await backend.next_token_distribution([prompt], top_k=5)
    assert dist.cached_tokens > 0 and len(dist.top) == 5
    probs = reference_probs(backend, prompt)
    top = torch.topk(probs, 5)
    assert [t for t, _ in dist.top] == [backend._tokenizer.decode([int(i)]) for i in top.indices]
    assert [p for _, p in dist.top] == pytest.approx(top.values.tolist(), rel=1e-4)
    assert sum(p for _, p in dist.top) <= 1.0


async def test_prompt_too_long_and_clamping(backend):
    long_prompt = "7 " * MAX_MODEL_LEN
    with pytest.raises(PromptTooLongError):
        await greedy(backend, long_prompt, 4)
    with pytest.raises(PromptTooLongError):
        await backend.next_token_distribution([long_prompt])
    near = backend.render_chat([user()], assistant_prefix="7 " * 100)
    room = MAX_MODEL_LEN - backend.count_tokens(near)
    gen = await greedy(backend, near, room + 50)  # max_tokens is clamped to the room left
    assert gen.finish_reason is FinishReason.LENGTH and gen.num_tokens == room


async def test_seeded_sampling_is_reproducible(backend):
    prompt = backend.render_chat([user()])
    params = SamplingParams(max_tokens=10, temperature=0.8, top_p=0.9, seed=11)
    a, b = await backend.generate([prompt, prompt], [params, params])
    assert a.text == b.text
    (c,) = await backend.generate([prompt], [SamplingParams(max_tokens=10, temperature=0.8, top_p=0.9, seed=12)])
    assert c.text != a.text


async def test_batched_decoding_matches_reference(backend):
    """Rows of different lengths (one a cache hit, one fresh) decode together over a left-padded cache;
    rows leave the batch at different steps, and the cache each row leaves behind is exact."""
    backend._prefix.clear()
    hit = backend.render_chat([user()], assistant_prefix=STEPS)
    await greedy(backend, hit, 2)
    prompts = [hit + "Step 3:", backend.render_chat([user("What is 2 + 2?")]), backend.render_chat([user()])]
    lengths = [9, 3, 6]
    gens = await backend.generate(prompts, [SamplingParams(max_tokens=n) for n in lengths])
    assert gens[0].cached_tokens > backend.count_tokens(STEPS) > gens[1].cached_tokens
    for prompt, n, gen in zip(prompts, lengths, gens, strict=True):
        assert gen.num_tokens == n and gen.text == backend._detokenize(reference_greedy(backend, prompt, n))
    for prompt, gen in zip(prompts, gens, strict=True):  # every row's stored cache serves its continuation
        again = await greedy(backend, prompt + gen.text, 4)
        assert again.cached_tokens >= backend.count_tokens(prompt)
        assert again.text == backend._detokenize(reference_greedy(backend, prompt + gen.text, 4))


async def test_batch_rows_sharing_a_cached_prefix_all_hit(backend):
    """Several continuations of one cached prefix in one batch (parallel paths, lookahead drafts)."""
    backend._prefix.clear()
    base = backend.render_chat([user()], assistant_prefix=STEPS)
    await backend.next_token_distribution([base])  # caches exactly the tokens of `base`
    prompts = [base + f"Step {i}:" for i in (3, 4, 5)]
    gens = await backend.generate(prompts, [SamplingParams(max_tokens=4)] * 3)
    for prompt, gen in zip(prompts, gens, strict=True):
        assert gen.cached_tokens >= backend.count_tokens(base)
        assert gen.text == backend._detokenize(reference_greedy(backend, prompt, 4))


def test_sample_token_top_p_keeps_the_nucleus():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    gen = torch.Generator().manual_seed(0)
    picks = {sample_token(logits, 1.0, 0.7, gen) for _ in range(200)}
    assert picks == {0, 1}
    assert sample_token(logits, 0.0, 1.0, None) == 0


async def test_concurrent_calls(backend):
    prompts = [backend.render_chat([user(f"What is {i} + {i}?")]) for i in range(3)]
    gens = await asyncio.gather(*(greedy(backend, p, 6) for p in prompts),
                                backend.next_token_distribution(prompts[:1]))
    for prompt, gen in zip(prompts, gens[:3], strict=True):
        assert gen.text == backend._detokenize(reference_greedy(backend, prompt, 6))
    assert backend.stats().forward_calls > 0


async def test_close_rejects_later_calls(tiny_model_dirs):
    spec = ModelSpec(path=str(tiny_model_dirs.draft), dtype="float32", num_threads=1)
    backend = HFBackend(spec, tiny_model_dirs.draft)
    prompt = backend.render_chat([user()])
    assert (await greedy(backend, prompt, 2)).num_tokens == 2
    await backend.close()
    with pytest.raises(BackendUnavailableError):
        await greedy(backend, prompt, 2)
    with pytest.raises(BackendUnavailableError):
        await backend.check_health()



THREADS_PROBE = """
import asyncio, sys, torch
from pathlib import Path
from cluster.backends.hf import HFBackend
from cluster.config.schema import ModelSpec
num_threads = int(sys.argv[2]) or None
backend = HFBackend(ModelSpec(path=sys.argv[1], dtype="float32", num_threads=num_threads), Path(sys.argv[1]))
print(backend._executor.submit(torch.get_num_threads).result())
asyncio.run(backend.close())
"""


@pytest.mark.parametrize("num_threads", [0, 1])
def test_default_threads_are_the_usable_cores_not_omp_num_threads(tiny_model_dirs, num_threads):
    """Unset num_threads means every core the process may use, even in a process started with
    OMP_NUM_THREADS=1 (what Ray gives a replica with num_cpus 1); an explicit num_threads wins."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    out = subprocess.run([sys.executable, "-c", THREADS_PROBE, str(tiny_model_dirs.draft), str(num_threads)],
                         env=env, capture_output=True, text=True, check=True).stdout
    assert int(out.split()[-1]) == (num_threads or len(os.sched_getaffinity(0)))
