"""The transformers backend: a manual decode loop over KV caches reused across calls (CPU or GPU).

Every call runs on one dedicated worker thread, in arrival order: the event loop stays free, and the
model and its prefix cache are only ever touched by that thread (the same serialisation an asyncio.Lock
plus `asyncio.to_thread` would give, but independent of which event loop calls).

Context limit: a prompt that leaves no room for one new token (`prompt_tokens >= max_model_len`) raises
PromptTooLongError; otherwise `max_tokens` is clamped to what fits and the generation ends with LENGTH.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cluster.backends.base import (
    BackendStats,
    ChatMessage,
    Generation,
    ModelBackend,
    SamplingParams,
    TokenDistribution,
)
from cluster.backends.kv_cache import PrefixCache
from cluster.errors import BackendError, InvalidRequestError, PromptTooLongError, SpecServeError
from cluster.reasoning.types import FinishReason

if TYPE_CHECKING:
    from cluster.config.schema import ModelSpec

logger = logging.getLogger(__name__)


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index in `text` where the earliest stop string starts, or None when none occurs."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


def sample_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """Pick the next token from last-position `logits` [vocab]: argmax at temperature 0, else nucleus sampling."""
    if temperature == 0:
        return int(torch.argmax(logits))
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [vocab]
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p  # the mass before it reached top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(0, order, sorted_probs)
    return int(torch.multinomial(probs, 1, generator=generator))


class HFBackend(ModelBackend):
    """A transformers causal LM with prefix (KV) reuse across calls.

    Args:
        spec: the model spec (dtype, max_model_len, num_threads, prefix_cache_entries are used).
        model_dir: a local HF model directory (never a hub id; loading is offline).
    """

    def __init__(self, spec: ModelSpec, model_dir: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

        self._spec = spec
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hf-{Path(model_dir).name}",
                                            initializer=self._init_worker)
        if spec.num_threads:
            torch.set_num_threads(spec.num_threads)
        dtype = "auto" if spec.dtype == "auto" else getattr(torch, spec.dtype)
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        self._model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True).eval()
        config = self._model.config
        self._prefix = PrefixCache(spec.prefix_cache_entries, lambda: DynamicCache(config=config))
        self._eos_ids = self._collect_eos_ids()
        self._seed_gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        self._stats = BackendStats()
        logger.info("loaded %s (%s, %s) with eos ids %s", model_dir, spec.dtype, self._model.device,
                    sorted(self._eos_ids))

    def _init_worker(self) -> None:
        if self._spec.num_threads:  # the OpenMP thread count is per thread: set it on the worker too
            torch.set_num_threads(self._spec.num_threads)

    def _collect_eos_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        for source in (getattr(self._model, "generation_config", None), self._model.config, self._tokenizer):
            value = getattr(source, "eos_token_id", None)
            ids.update(value if isinstance(value, list | tuple) else [] if value is None else [value])
        return frozenset(int(i) for i in ids)

    # ---- ModelBackend -------------------------------------------------------------------------------

    @property
    def max_model_len(self) -> int:
        return self._spec.max_model_len

    def render_chat(self, messages: Sequence[ChatMessage], assistant_prefix: str | None = None) -> str:
        """Apply the chat template with a generation prompt; `assistant_prefix` is appended to it verbatim.

        Appending to the generation prompt equals vLLM's `continue_final_message` for ChatML templates and
        also keeps what a template's generation prompt adds (e.g. an opening `<think>`).
        """
        dicts = [{"role": m.role, "content": m.content} for m in messages]
        text = self._tokenizer.apply_chat_template(dicts, add_generation_prompt=True, tokenize=False)
        return text + (assistant_prefix or "")

    def count_tokens(self, text: str) -> int:
        return len(self._encode(text))

    async def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Generation]:
        if len(prompts) != len(params):
            raise InvalidRequestError(f"{len(prompts)} prompts but {len(params)} sampling params")
        return await self._run(self._generate_all, list(prompts), list(params))

    async def next_token_distribution(self, prompts: Sequence[str], top_k: int = 10) -> list[TokenDistribution]:
        return await self._run(self._distributions, list(prompts), top_k)

    def stats(self) -> BackendStats:
        s = self._stats
        return BackendStats(s.prompt_tokens, s.cached_tokens, s.generated_tokens, s.forward_calls,
                            list(s.batch_sizes))

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._prefix.clear()
        self._model = None

    # ---- worker-thread side ------------------------------------------------------------------------

    async def _run(self, fn, *args):
        if self._model is None:
            raise BackendError("backend is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except SpecServeError:
            raise
        except Exception as e:  # torch/transformers failures surface as the engine's error
            raise BackendError(f"{type(e).__name__}: {e}") from e

    def _encode(self, text: str) -> list[int]:
        return self._tokenizer(text, add_special_tokens=False)["input_ids"]

    def _prompt_ids(self, prompt: str, *, room: int) -> list[int]:
        ids = self._encode(prompt)
        if not ids:
            raise InvalidRequestError("empty prompt", field="messages")
        if len(ids) + room > self.max_model_len:
            raise PromptTooLongError(len(ids), self.max_model_len)
        return ids

    def _prefill(self, ids: list[int]) -> tuple[torch.Tensor, object, int]:
        """Logits after `ids` [vocab], the cache holding all of `ids`, and how many tokens it reused."""
        cache, cached = self._prefix.take(ids)
        logits = self._forward(ids[cached:], cache)
        self._stats.prompt_tokens += len(ids)
        self._stats.cached_tokens += cached
        return logits, cache, cached

    def _forward(self, ids: list[int], cache) -> torch.Tensor:
        input_ids = torch.tensor([ids], dtype=torch.long, device=self._model.device)  # [1, new]
        out = self._model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1)
        self._stats.forward_calls += 1
        return out.logits[0, -1]  # [vocab]

    @torch.inference_mode()
    def _generate_all(self, prompts: list[str], params: list[SamplingParams]) -> list[Generation]:
        all_ids = [self._prompt_ids(p, room=1) for p in prompts]  # validate the whole batch first
        self._stats.batch_sizes.append(len(prompts))
        return [self._generate_one(ids, p) for ids, p in zip(all_ids, params, strict=True)]

    def _generate_one(self, ids: list[int], params: SamplingParams) -> Generation:
        max_new = min(params.max_tokens, self.max_model_len - len(ids))
        generator = None
        if params.temperature > 0:
            seed = params.seed if params.seed is not None else int(torch.randint(2**62, (1,), generator=self._seed_gen))
            generator = torch.Generator().manual_seed(seed)
        logits, cache, cached = self._prefill(ids)
        out: list[int] = []
        finish, cut = FinishReason.LENGTH, None
        while True:
            token = sample_token(logits, params.temperature, params.top_p, generator)
            out.append(token)
            if token in self._eos_ids:
                finish = FinishReason.EOS
                break
            if params.stop and (cut := find_stop(self._decode(out), params.stop)) is not None:
                finish = FinishReason.STOP
                break
            if len(out) >= max_new:
                break
            logits = self._forward([token], cache)
        self._prefix.put(ids + out[:-1], cache)  # the last token was sampled but never fed
        self._stats.generated_tokens += len(out)
        text = self._decode(out[:-1] if finish is FinishReason.EOS else out)
        return Generation(text=text if cut is None else text[:cut], num_tokens=len(out), finish_reason=finish,
                          prompt_tokens=len(ids), cached_tokens=cached)

    def _decode(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    @torch.inference_mode()
    def _distributions(self, prompts: list[str], top_k: int) -> list[TokenDistribution]:
        all_ids = [self._prompt_ids(p, room=0) for p in prompts]
        self._stats.batch_sizes.append(len(prompts))
        result = []
        for ids in all_ids:
            logits, cache, cached = self._prefill(ids)
            self._prefix.put(ids, cache)
            probs = torch.softmax(logits.float(), dim=-1)  # [vocab]
            top = torch.topk(probs, min(top_k, probs.numel()))
            pairs = tuple((self._tokenizer.decode([int(i)]), float(p))
                          for p, i in zip(top.values, top.indices, strict=True))
            result.append(TokenDistribution(top=pairs, prompt_tokens=len(ids), cached_tokens=cached))
        return result
