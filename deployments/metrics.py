"""Prometheus sinks through `ray.util.metrics` (exported by Ray's metrics agent as `ray_specserve_*`).

Request-level counters and histograms follow the definitions in `cluster.metrics` (emitted by the
ingress, which sees every finished request); the verifier emits its batch sizes and the drafter and
verifier their per-call latency.
"""

from __future__ import annotations

from ray.util.metrics import Counter, Gauge, Histogram

from cluster.metrics import COUNTERS, PHASES, SpecReasoningStats, phase_latencies, request_counts
from cluster.reasoning.types import ReasoningResult

LATENCY_BOUNDARIES_S = [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300]
BATCH_BOUNDARIES = [1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 64]
PREFIX = "specserve_"


class RequestMetrics:
    """Per-request counters (see `cluster.metrics.COUNTERS`), acceptance-rate gauge and phase latencies.

    Metrics:
        specserve_<counter>: one Counter per entry of COUNTERS, tagged by method.
        specserve_spec_decode_acceptance_rate: Gauge, α = accepted steps / drafts since replica start.
        specserve_token_spec_decode_acceptance_rate: Gauge, token-level accepted / drafted tokens since
            replica start (the counts are specserve_token_spec_decode_num_*).
        specserve_phase_latency_seconds: Histogram of a request's seconds per phase
            (draft, judge, target summed over its steps; wall = end to end), tagged by phase and method.
    """

    def __init__(self) -> None:
        self._counters = {name: Counter(PREFIX + name, description=desc, tag_keys=("method",))
                          for name, desc in COUNTERS.items()}
        self._acceptance = Gauge(PREFIX + "spec_decode_acceptance_rate",
                                 description="Accepted draft steps / judged draft steps since replica start.")
        self._token_acceptance = Gauge(PREFIX + "token_spec_decode_acceptance_rate",
                                       description="Token-level speculation: accepted / drafted tokens since "
                                                   "replica start.")
        self._latency = Histogram(PREFIX + "phase_latency_seconds",
                                  description="Seconds a request spent per phase (draft, judge, target, wall).",
                                  boundaries=LATENCY_BOUNDARIES_S, tag_keys=("phase", "method"))
        self._totals = SpecReasoningStats()

    def observe(self, result: ReasoningResult) -> None:
        tags = {"method": result.method}
        for name, value in request_counts(result).items():
            if value:
                self._counters[name].inc(value, tags=tags)
        for phase, seconds in phase_latencies(result).items():
            if seconds > 0 or phase == "wall":
                self._latency.observe(seconds, tags={"phase": phase, "method": result.method})
        self._totals.observe(result)
        if (rate := self._totals.acceptance_rate) is not None:
            self._acceptance.set(rate)
        if (rate := self._totals.token_acceptance_rate) is not None:
            self._token_acceptance.set(rate)


class CallMetrics:
    """Per-call metrics of a model deployment.

    Metrics:
        specserve_<role>_call_latency_seconds: Histogram of one backend call's seconds, tagged by op.
        specserve_<role>_batch_size: Histogram of calls merged into one backend call (verifier batching),
            tagged by op; the number of steps in that call is specserve_<role>_batch_items. Always 1 on vLLM,
            whose engine merges concurrent calls itself (`deployments.batching.submit`).
    """

    def __init__(self, role: str) -> None:
        self._latency = Histogram(f"{PREFIX}{role}_call_latency_seconds",
                                  description=f"Seconds per {role} backend call.",
                                  boundaries=LATENCY_BOUNDARIES_S, tag_keys=("op",))
        self._batch = Histogram(f"{PREFIX}{role}_batch_size", description=f"Calls merged into one {role} "
                                "backend call.", boundaries=BATCH_BOUNDARIES, tag_keys=("op",))
        self._items = Histogram(f"{PREFIX}{role}_batch_items", description=f"Steps in one {role} backend call.",
                                boundaries=BATCH_BOUNDARIES, tag_keys=("op",))

    def observe(self, op: str, seconds: float, calls: int = 1, items: int = 1) -> None:
        tags = {"op": op}
        self._latency.observe(seconds, tags=tags)
        self._batch.observe(calls, tags=tags)
        self._items.observe(items, tags=tags)


__all__ = ["PHASES", "CallMetrics", "RequestMetrics"]
