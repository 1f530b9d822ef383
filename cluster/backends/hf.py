"""The transformers backend: a manual, batched decode loop over KV caches reused across calls.

Every call runs on one dedicated worker thread, in arrival order: the event loop stays free, and the
model and its prefix cache are only ever touched by that thread (the same serialisation an asyncio.Lock
plus `asyncio.to_thread` would give, but independent of which event loop calls).

Batching: each prompt of a `generate` call is prefilled on its own (from its cached prefix), then all
rows decode together over one left-padded batched cache (attention mask + per-row position ids); a
finished row leaves the batch. Decoding is memory-bound, so on 2 CPU cores 4 rows decode in about the
time of 1-2. `next_token_distribution` is prefill only (compute-bound) and runs prompt by prompt.

Token-level speculation (`spec.speculative`): rows that ask for it (`SamplingParams.speculative`) decode
one after another instead of batched, each with the assistant (`assistant.py`) drafting k tokens that the
target verifies in one forward pass per round (`sampling.verify_*`); both models keep their prefix caches.

Context limit: a prompt that leaves no room for one new token (`prompt_tokens >= max_model_len`) raises
PromptTooLongError; otherwise `max_tokens` is clamped to what fits and the generation ends with LENGTH.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from cluster.backends.assistant import Assistant
from cluster.backends.base import ChatTokenizerBackend, Generation, SamplingParams, SpecDecodeStats, TokenDistribution
from cluster.backends.kv_cache import PrefixCache, extract_row, merge_left_padded
from cluster.backends.sampling import sample_token, token_probs, verify_greedy, verify_sampled
from cluster.errors import BackendError, BackendUnavailableError, SpecServeError
from cluster.reasoning.types import FinishReason

if TYPE_CHECKING:
    from cluster.config.schema import ModelSpec

logger = logging.getLogger(__name__)


def find_stop(text: str, stops: Sequence[str]) -> int | None:
    """Index in `text` where the earliest stop string starts, or None when none occurs."""
    hits = [i for i in (text.find(s) for s in stops if s) if i >= 0]
    return min(hits) if hits else None


@dataclass(slots=True)
class _Row:
    """Decoding state of one prompt of a generate call."""

    ids: list[int]
    params: SamplingParams
    cached: int
    max_new: int
    generator: torch.Generator | None
    out: list[int] = field(default_factory=list)
    finish: FinishReason = FinishReason.LENGTH
    cut: int | None = None
    spec: SpecDecodeStats = field(default_factory=SpecDecodeStats)

    def result(self, detokenize) -> Generation:
        text = detokenize(self.out[:-1] if self.finish is FinishReason.EOS else self.out)
        return Generation(text=text if self.cut is None else text[:self.cut], num_tokens=len(self.out),
                          finish_reason=self.finish, prompt_tokens=len(self.ids), cached_tokens=self.cached,
                          spec_rounds=self.spec.num_drafts, spec_draft_tokens=self.spec.draft_tokens,
                          spec_accepted_tokens=self.spec.accepted_tokens)


class HFBackend(ChatTokenizerBackend):
    """A transformers causal LM with prefix (KV) reuse across calls.

    Args:
        spec: the model spec (dtype, max_model_len, num_threads (None = every core this process may
            use), prefix_cache_entries and speculative are used).
        model_dir: a local HF model directory (never a hub id; loading is offline).
    """

    def __init__(self, spec: ModelSpec, model_dir: Path) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

        self._closed = False
        self._threads = spec.num_threads or len(os.sched_getaffinity(0))
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"hf-{Path(model_dir).name}",
                                            initializer=self._init_worker)
        torch.set_num_threads(self._threads)
        dtype = "auto" if spec.dtype == "auto" else getattr(torch, spec.dtype)
        self._tokenizer = AutoTokenizer.from_pretrained(model_dir, local_files_only=True)
        super().__init__(self._tokenizer, spec.max_model_len, speculative=spec.speculative is not None)
        self._model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True).eval()
        config = self._model.config
        self._new_cache = lambda: DynamicCache(config=config)
        self._prefix = PrefixCache(spec.prefix_cache_entries, self._new_cache)
        self._eos_ids = self._collect_eos_ids()
        self._seed_gen = torch.Generator().manual_seed(int.from_bytes(os.urandom(8), "little") >> 1)
        self._assistant = None if spec.speculative is None else Assistant(spec, self._tokenizer, config.vocab_size)
        logger.info("loaded %s (%s, %s) with eos ids %s", model_dir, spec.dtype, self._model.device,
                    sorted(self._eos_ids))

    def _init_worker(self) -> None:
        # The OpenMP thread count is per thread: set it on the worker too. Set it always: a Ray
        # replica inherits OMP_NUM_THREADS = its logical num_cpus (often 1), not the cores it may use.
        torch.set_num_threads(self._threads)

    def _collect_eos_ids(self) -> frozenset[int]:
        ids: set[int] = set()
        for source in (getattr(self._model, "generation_config", None), self._model.config, self._tokenizer):
            value = getattr(source, "eos_token_id", None)
            ids.update(value if isinstance(value, list | tuple) else [] if value is None else [value])
        return frozenset(int(i) for i in ids)

    # ---- ModelBackend -------------------------------------------------------------------------------

    async def _generate(self, prompts: list[str], params: list[SamplingParams]) -> list[Generation]:
        if not prompts:
            return []
        return await self._run(self._generate_all, prompts, params)

    async def next_token_distribution(self, prompts: Sequence[str], top_k: int = 10) -> list[TokenDistribution]:
        if not prompts:
            return []
        return await self._run(self._distributions, list(prompts), top_k)

    async def check_health(self) -> None:
        if self._closed:
            raise BackendUnavailableError("backend is closed")

    async def close(self) -> None:
        """Finish the call in progress, cancel queued ones and free the model and its caches."""
        self._closed = True
        await asyncio.to_thread(self._executor.shutdown, wait=True, cancel_futures=True)
        self._prefix.clear()
        self._model = self._assistant = None

    # ---- worker-thread side ------------------------------------------------------------------------

    async def _run(self, fn, *args):
        if self._closed:
            raise BackendUnavailableError("backend is closed")
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)
        except SpecServeError:
            raise
        except Exception as e:  # torch/transformers failures surface as the engine's error
            raise BackendError(f"{type(e).__name__}: {e}") from e

    def _prefill(self, ids: list[int], *, steal: bool = True) -> tuple[torch.Tensor, object, int]:
        """Logits after `ids` [vocab], the cache holding all of `ids`, and how many tokens it reused."""
        cache, cached = self._prefix.take(ids, steal=steal)
        logits = self._forward(ids[cached:], cache)[-1]
        self._stats.prompt_tokens += len(ids)
        self._stats.cached_tokens += cached
        return logits, cache, cached

    def _forward(self, ids: list[int], cache, keep: int = 1) -> torch.Tensor:
        """Feed `ids` after `cache`; the logits of the last `keep` positions [keep, vocab]."""
        input_ids = torch.tensor([ids], dtype=torch.long, device=self._model.device)  # [1, new]
        out = self._model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=keep)
        self._stats.forward_calls += 1
        return out.logits[0]

    @torch.inference_mode()
    def _generate_all(self, prompts: list[str], params: list[SamplingParams]) -> list[Generation]:
        all_ids = [self._chat.prompt_ids(p, room=1) for p in prompts]  # validate the whole batch first
        self._stats.batch_sizes.append(len(prompts))
        rows, caches, logits = [], [], []
        for k, (ids, p) in enumerate(zip(all_ids, params, strict=True)):
            row_logits, cache, cached = self._prefill(ids, steal=k == len(all_ids) - 1)  # rows may share a prefix
            rows.append(_Row(ids, p, cached, min(p.max_tokens, self.max_model_len - len(ids)), self._generator(p)))
            caches.append(cache)
            logits.append(row_logits)
        speculative = [self._assistant is not None and p.speculative for p in params]
        for row, cache, spec in zip(rows, caches, speculative, strict=True):
            if spec:
                self._speculate(row, cache)
        plain = [k for k, spec in enumerate(speculative) if not spec]
        if plain:
            self._decode([rows[k] for k in plain], [caches[k] for k in plain], torch.stack([logits[k] for k in plain]))
        self._stats.generated_tokens += sum(len(r.out) for r in rows)
        return [r.result(self._detokenize) for r in rows]

    def _generator(self, params: SamplingParams) -> torch.Generator | None:
        if params.temperature == 0:
            return None
        seed = params.seed if params.seed is not None else int(torch.randint(2**62, (1,), generator=self._seed_gen))
        return torch.Generator().manual_seed(seed)

    def _decode(self, rows: list[_Row], caches: list, logits: torch.Tensor) -> None:
        """Decode all rows together over one left-padded batched cache; a finished row leaves the batch
        and its cache (prompt + generated tokens) goes to the prefix LRU. `logits`: [batch, vocab]."""
        if len(caches) == 1:
            cache, pads = caches[0], [0]
        else:
            cache = self._new_cache()
            pads = merge_left_padded(caches, cache)
        caches.clear()
        device = self._model.device
        mask = torch.ones(len(rows), cache.get_seq_length(), dtype=torch.long, device=device)  # [batch, seq]
        for i, pad in enumerate(pads):
            mask[i, :pad] = 0
        positions = torch.tensor([len(r.ids) for r in rows], device=device)  # [batch], next position of each row
        active = list(range(len(rows)))  # original index of each batch row
        while True:
            keep, tokens = [], []
            for j, i in enumerate(active):
                row = rows[i]
                token = sample_token(logits[j], row.params.temperature, row.params.top_p, row.generator)
                if not self._step_done(row, token):
                    keep.append(j)
                    tokens.append(token)
                elif len(active) == 1 and pads[i] == 0:
                    self._prefix.put(row.ids + row.out[:-1], cache)  # the last token was never fed
                else:
                    self._prefix.put(row.ids + row.out[:-1], extract_row(cache, j, pads[i], self._new_cache()))
            if not keep:
                return
            if len(keep) < len(active):
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
                mask, positions, active = mask[index], positions[index], [active[j] for j in keep]
            mask = torch.cat([mask, mask.new_ones(len(active), 1)], dim=1)
            out = self._model(input_ids=torch.tensor(tokens, device=device)[:, None],  # [batch, 1]
                              attention_mask=mask if any(pads[i] for i in active) else None,
                              position_ids=positions[:, None], past_key_values=cache, use_cache=True,
                              logits_to_keep=1)
            self._stats.forward_calls += 1
            positions += 1
            logits = out.logits[:, -1]  # [batch, vocab]

    def _speculate(self, row: _Row, cache) -> None:
        """Decode one row with token-level speculation. Each round the assistant drafts up to k tokens, one
        target pass over [last token, drafts] scores them all, and the accepted drafts plus the target's own
        next token are kept. `cache` holds the prompt; it ends, like in `_decode`, in the prefix LRU."""
        assert self._assistant is not None and self._spec_stats is not None
        p, proposal = row.params, self._assistant.session(row.ids)
        cache.crop(-1)  # invariant: the cache holds all but the last token of the sequence
        done = False
        while not done:
            seq = row.ids + row.out
            k = min(self._assistant.k, row.max_new - len(row.out) - 1)  # at most max_new tokens per round
            drafted, q = proposal.propose(seq, k, p.temperature, p.top_p, row.generator)
            logits = self._forward(seq[-1:] + drafted, cache, keep=k + 1)  # [k + 1, vocab]
            if q is None:
                n, token = verify_greedy(drafted, logits)
            else:
                n, token = verify_sampled(drafted, q, token_probs(logits, p.temperature, p.top_p), row.generator)
            if drafted:
                row.spec.observe_round(len(drafted), n)
                self._spec_stats.observe_round(len(drafted), n)
            for t in [*drafted[:n], token]:
                if done := self._step_done(row, t):
                    break
            cache.crop(len(row.ids) + len(row.out) - 1 - cache.get_seq_length())  # drop rejected drafts
        proposal.close(row.ids + row.out)
        self._prefix.put(row.ids + row.out[:-1], cache)

    def _step_done(self, row: _Row, token: int) -> bool:
        """Append `token` to the row and say whether the row is finished (setting its finish reason)."""
        row.out.append(token)
        if token in self._eos_ids:
            row.finish = FinishReason.EOS
        elif row.params.stop and (cut := find_stop(self._detokenize(row.out), row.params.stop)) is not None:
            row.finish, row.cut = FinishReason.STOP, cut
        elif len(row.out) < row.max_new:
            return False
        return True

    def _detokenize(self, ids: list[int]) -> str:
        return self._tokenizer.decode(ids, skip_special_tokens=True)

    @torch.inference_mode()
    def _distributions(self, prompts: list[str], top_k: int) -> list[TokenDistribution]:
        all_ids = [self._chat.prompt_ids(p, room=0) for p in prompts]
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
