"""Token-level speculative decoding counts of a vLLM engine, exact, and their share per generation.

vLLM's per-request counts (`per_request_spec_decode_metrics`) come with the engine's final output of a request,
which a request cut by a stop string never gets: the frontend finds the stop string and aborts the request in
the engine. Steps end at a stop string, so those counts miss most verification rounds. The scheduler's counts
per iteration (the ones behind vLLM's `vllm:spec_decode_*` Prometheus metrics) miss none; a stat logger adds
them up here. They are per engine, so a call's share is exact only when no other call ran on the engine
meanwhile (`CallWindow`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from typing import Any

from cluster.backends.base import Generation, SpecDecodeStats


class SpecDecodeCounter:
    """A vLLM stat logger (and its own per-engine factory) that adds every iteration's spec-decode counts."""

    def __init__(self) -> None:
        self.stats = SpecDecodeStats()

    def __call__(self, vllm_config: Any, engine_index: int = 0) -> SpecDecodeCounter:
        return self

    def record(self, scheduler_stats: Any, iteration_stats: Any, mm_cache_stats: Any = None,
               engine_idx: int = 0) -> None:
        spec = getattr(scheduler_stats, "spec_decoding_stats", None)
        if spec is not None:
            self.stats.observe_positions(spec.num_drafts, spec.num_draft_tokens, spec.num_accepted_tokens_per_pos)

    def log_engine_initialized(self) -> None:
        """Nothing to log: the counts are read, not printed."""

    def log(self) -> None:
        """Nothing to log: the counts are read, not printed."""

    def record_sleep_state(self, is_awake: int, level: int) -> None:
        """Sleep mode does not change the counts."""


class CallWindow:
    """Tells whether a call had the engine to itself, so that the counts it saw change by are its own."""

    def __init__(self) -> None:
        self._in_flight = 0
        self._started = 0

    def open(self) -> tuple[bool, int]:
        """Start a call; returns the token that `close` needs."""
        token = (self._in_flight == 0, self._started)
        self._in_flight += 1
        self._started += 1
        return token

    def close(self, token: tuple[bool, int]) -> bool:
        """End a call; True when no other call was in flight at any time during it."""
        self._in_flight -= 1
        alone_at_start, started = token
        return alone_at_start and self._started == started + 1


def share_out(gens: Sequence[Generation], counts: SpecDecodeStats) -> list[Generation]:
    """Give each generation of one call its share of the call's counts, in proportion to its generated tokens
    (exact for one generation; the totals are exact for any number)."""
    weights = [g.num_tokens for g in gens]
    rounds = _apportion(counts.num_drafts, weights)
    drafted = _apportion(counts.draft_tokens, weights)
    accepted = _apportion(counts.accepted_tokens, weights)
    return [replace(g, spec_rounds=r, spec_draft_tokens=d, spec_accepted_tokens=a)
            for g, r, d, a in zip(gens, rounds, drafted, accepted, strict=True)]


def _apportion(total: int, weights: Sequence[int]) -> list[int]:
    """Split `total` into integers proportional to `weights` (largest remainders; equal split if all are 0)."""
    if not weights:
        return []
    w = list(weights) if sum(weights) > 0 else [1] * len(weights)
    exact = [total * x / sum(w) for x in w]
    parts = [int(e) for e in exact]
    by_remainder = sorted(range(len(w)), key=lambda i: exact[i] - parts[i], reverse=True)
    for i in by_remainder[: total - sum(parts)]:
        parts[i] += 1
    return parts
