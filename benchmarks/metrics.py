"""Benchmark metrics, pure functions of the records: accuracy, latency, tokens, α, c, ceiling, speedups.

Definitions (every ratio pools over the problems of one run; failed requests count as wrong and are
left out of latency, token, step and speedup figures):

- accuracy: correct / problems, with a Wilson 95% interval.
- α (step acceptance rate): Σ steps_accepted / Σ steps_drafted — judged draft steps the target kept.
- accepted steps per verification: Σ steps_accepted / Σ judge_calls. A verification is one judge call
  of the target; SpecReason judges one drafted step per call, so there it equals α, while a verifier
  that judges k drafted steps per call (lookahead) can reach k.
- per-step times: draft Σ draft_time_s / Σ draft calls (steps_drafted plus unjudged draft-only steps),
  judge Σ judge_time_s / Σ judge_calls, target Σ target_time_s / Σ target_steps.
- cost ratio c = (draft step + judge) / target step, from the run's own per-step times; a run without
  target steps (every draft accepted) takes the target step time of the baseline run. Undefined
  (None) for a run without judge calls.
- ceiling = 1 / (c + (1 − c)(1 − α)): the step-level speculation bound of ALGORITHMS.md §3.3 (Lookahead
  Reasoning's S) that issues 2 and 4 measure against; achieved = speedup vs the baseline ÷ ceiling.
  It assumes drafting and judging overlap with target work; a strictly sequential loop (draft, judge,
  then maybe rewrite) is bounded instead by the sequential ceiling 1 / (c + 1 − α), also reported.
- throughput: successful requests per second over the run's span (first start to last finish);
  meaningful when several requests are in flight (served mode, concurrency > 1).
- speedup vs a reference run, pair by pair: only problems both runs answered without error; the
  ratio of mean latencies mean(L_ref) / mean(L_run), with a 95% bootstrap interval (the pairs resampled
  with replacement, percentile method, fixed seed), and the geometric mean of L_ref / L_run.
- acceptance per step position: at each step index, judged drafts and how many were accepted.
- token-level speculation (inside generation, summed over the run's steps): token acceptance rate =
  Σ accepted / Σ drafted tokens; mean acceptance length = 1 + Σ accepted / Σ verification rounds
  (tokens per target pass, its own correction/bonus token included; vLLM's definitions).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from benchmarks.records import ProblemRecord
from cluster.reasoning.types import ReasoningStats, StepOutcome

Z95 = 1.959963984540054
BOOTSTRAP_RESAMPLES = 4000


@dataclass(frozen=True, slots=True)
class StepTimes:
    """Pooled mean wall time per step of each phase, in seconds (None = the phase never ran)."""

    draft_s: float | None
    judge_s: float | None
    target_s: float | None


@dataclass(frozen=True, slots=True)
class Speedup:
    """A run's speedup over a reference run, over the `pairs` problems both answered."""

    reference: str
    pairs: int
    mean_ratio: float | None  # mean(L_ref) / mean(L_run)
    geomean: float | None     # geometric mean of L_ref / L_run
    interval: tuple[float, float] | None = None  # 95% bootstrap interval of mean_ratio


@dataclass(frozen=True, slots=True)
class PositionAcceptance:
    """Judged draft steps at one step position and how many the target accepted."""

    position: int
    judged: int
    accepted: int

    @property
    def rate(self) -> float:
        return self.accepted / self.judged if self.judged else 0.0


@dataclass(frozen=True, slots=True)
class TokenSpeculation:
    """Token-level speculation of a run, pooled over its successful records (module docstring)."""

    rounds: int
    drafted: int
    accepted: int

    @property
    def acceptance_rate(self) -> float | None:
        return _ratio(self.accepted, self.drafted)

    @property
    def mean_acceptance_length(self) -> float | None:
        return 1 + self.accepted / self.rounds if self.rounds else None


@dataclass(frozen=True, slots=True)
class RunSummary:
    """Every metric of one run (definitions in the module docstring)."""

    name: str
    knobs: dict
    n: int
    errors: int
    correct: int
    accuracy: float | None
    accuracy_ci: tuple[float, float] | None
    latency_mean: float | None
    latency_p50: float | None
    latency_p90: float | None
    target_tokens_mean: float | None
    draft_tokens_mean: float | None
    steps_drafted: int
    steps_accepted: int
    judge_calls: int
    alpha: float | None
    accepted_per_verification: float | None
    step_times: StepTimes
    cost_ratio: float | None
    cost_ratio_target_from: str | None  # "run" or "baseline": where the target step time came from
    ceiling: float | None
    sequential_ceiling: float | None = None
    throughput_rps: float | None = None
    speedups: dict[str, Speedup] = field(default_factory=dict)
    achieved: float | None = None  # speedup (ratio of means) vs the baseline ÷ ceiling
    by_position: tuple[PositionAcceptance, ...] = ()
    token_spec: TokenSpeculation | None = None  # None: no token-level speculation in this run


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion (None for n = 0).

    Example:
        >>> [round(x, 3) for x in wilson_interval(10, 20)]
        [0.299, 0.701]
    """
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def auc(good: Sequence[float], bad: Sequence[float]) -> float | None:
    """P[score(good) > score(bad)] over all pairs, ties counting one half: how well a score ranks good items above
    bad ones (0.5 = not at all). None when either side is empty."""
    if not good or not bad:
        return None
    return sum((g > b) + 0.5 * (g == b) for g in good for b in bad) / (len(good) * len(bad))


def percentile(values: Sequence[float], q: float) -> float | None:
    """The q-th percentile (0–100), linear interpolation between order statistics (numpy's default)."""
    if not values:
        return None
    xs = sorted(values)
    rank = (len(xs) - 1) * q / 100
    lo, hi = math.floor(rank), math.ceil(rank)
    return xs[lo] + (xs[hi] - xs[lo]) * (rank - lo)


def mean(values: Iterable[float]) -> float | None:
    xs = list(values)
    return sum(xs) / len(xs) if xs else None


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def step_times(records: Iterable[ProblemRecord]) -> StepTimes:
    """Pooled per-step times of successful records (definitions in the module docstring)."""
    t_draft = t_judge = t_target = 0.0
    n_draft = n_judge = n_target = 0
    for r in records:
        if r.stats is None:
            continue
        s = r.stats
        t_draft += s.draft_time_s
        t_judge += s.judge_time_s
        t_target += s.target_time_s
        n_draft += s.steps_drafted + sum(st.outcome is StepOutcome.DRAFT for st in r.steps)
        n_judge += s.judge_calls
        n_target += s.target_steps
    return StepTimes(_ratio(t_draft, n_draft), _ratio(t_judge, n_judge), _ratio(t_target, n_target))


def cost_ratio(times: StepTimes, fallback_target_s: float | None = None) -> tuple[float | None, str | None]:
    """c = (draft step + judge) / target step, and where the target step time came from.

    Returns:
        (c, "run") with the run's own target step time, (c, "baseline") with `fallback_target_s`,
        or (None, None) when the run has no draft or judge steps or no target step time is known.
    """
    if times.draft_s is None or times.judge_s is None:
        return None, None
    target, source = (times.target_s, "run") if times.target_s else (fallback_target_s, "baseline")
    if not target:
        return None, None
    return (times.draft_s + times.judge_s) / target, source


def ceiling(c: float | None, alpha: float | None) -> float | None:
    """1 / (c + (1 − c)(1 − α)); e.g. c = 0.5, α = 0.7 → 1 / 0.65 ≈ 1.54."""
    if c is None or alpha is None:
        return None
    denom = c + (1 - c) * (1 - alpha)
    return 1.0 / denom if denom > 0 else math.inf


def sequential_ceiling(c: float | None, alpha: float | None) -> float | None:
    """1 / (c + 1 − α): a sequential draft → judge → rewrite loop; e.g. c = 0.5, α = 0.7 → 1 / 0.8 = 1.25."""
    if c is None or alpha is None:
        return None
    denom = c + 1 - alpha
    return 1.0 / denom if denom > 0 else math.inf


def throughput(records: Sequence[ProblemRecord]) -> float | None:
    """Successful requests per second between the first start and the last finish of `records`."""
    ok = [r for r in records if r.ok]
    if not ok:
        return None
    span = max(r.started_s + r.latency_s for r in ok) - min(r.started_s for r in ok)
    return len(ok) / span if span > 0 else None


def bootstrap_ratio(pairs: Sequence[tuple[float, float]], resamples: int = BOOTSTRAP_RESAMPLES,
                    seed: int = 0) -> tuple[float, float] | None:
    """95% percentile-bootstrap interval of Σ numerator ÷ Σ denominator over `pairs` ((numerator, denominator)
    each), drawn with replacement `resamples` times; a fixed seed, so a report re-renders identically. None
    without pairs or with a draw whose denominators sum to 0."""
    rng = random.Random(seed)
    draws = (rng.choices(pairs, k=len(pairs)) for _ in range(resamples)) if pairs else ()
    sums = [(sum(n for n, _ in d), sum(x for _, x in d)) for d in draws]
    if not sums or any(den <= 0 for _, den in sums):
        return None
    return percentile_interval([num / den for num, den in sums])


def percentile_interval(draws: Sequence[float]) -> tuple[float, float]:
    """The 2.5th and 97.5th percentiles of bootstrap `draws` (a 95% percentile interval)."""
    ordered = sorted(draws)
    return ordered[int(0.025 * (len(ordered) - 1))], ordered[int(0.975 * (len(ordered) - 1))]


def pairwise_speedup(run: Sequence[ProblemRecord], reference: Sequence[ProblemRecord], name: str) -> Speedup:
    """Speedup of `run` over `reference`, problem by problem (only problems both answered without error)."""
    ref = {r.problem_id: r.latency_s for r in reference if r.ok}
    pairs = [(ref[r.problem_id], r.latency_s) for r in run if r.ok and r.problem_id in ref]
    if not pairs:
        return Speedup(name, 0, None, None)
    mean_ratio = _ratio(sum(b for b, _ in pairs), sum(x for _, x in pairs))
    logs = [math.log(b / x) for b, x in pairs if b > 0 and x > 0]
    geomean = math.exp(sum(logs) / len(logs)) if logs else None
    return Speedup(name, len(pairs), mean_ratio, geomean, bootstrap_ratio(pairs))


def acceptance_by_position(records: Iterable[ProblemRecord]) -> tuple[PositionAcceptance, ...]:
    """Judged (accepted or rewritten) draft steps per step index, pooled over problems."""
    judged: dict[int, list[int]] = {}
    for r in records:
        for s in r.steps:
            if s.outcome in (StepOutcome.ACCEPTED, StepOutcome.REWRITTEN):
                slot = judged.setdefault(s.index, [0, 0])
                slot[0] += 1
                slot[1] += s.outcome is StepOutcome.ACCEPTED
    return tuple(PositionAcceptance(i, j, a) for i, (j, a) in sorted(judged.items()))


def token_speculation(stats: Iterable[ReasoningStats]) -> TokenSpeculation | None:
    """Pooled token-level counters, or None when no verification round checked a draft."""
    rounds = drafted = accepted = 0
    for s in stats:
        rounds += s.spec_rounds
        drafted += s.spec_draft_tokens
        accepted += s.spec_accepted_tokens
    return TokenSpeculation(rounds, drafted, accepted) if rounds else None


def summarize_run(name: str, records: Sequence[ProblemRecord], *, fallback_target_s: float | None = None,
                  references: dict[str, Sequence[ProblemRecord]] | None = None,
                  baseline: str | None = None) -> RunSummary:
    """Every metric of one run.

    Args:
        name: the run.
        records: its records (one per problem).
        fallback_target_s: the baseline's target step time, for c when this run has no target steps.
        references: records of the runs to compute pairwise speedups against, by name.
        baseline: which of `references` the achieved fraction of the ceiling refers to.
    """
    ok = [r for r in records if r.ok]
    stats = [r.stats for r in ok if r.stats is not None]
    latencies = [r.latency_s for r in ok]
    drafted = sum(s.steps_drafted for s in stats)
    accepted = sum(s.steps_accepted for s in stats)
    judges = sum(s.judge_calls for s in stats)
    alpha = _ratio(accepted, drafted)
    times = step_times(ok)
    c, c_from = cost_ratio(times, fallback_target_s)
    ceil = ceiling(c, alpha)
    speedups = {ref: pairwise_speedup(records, recs, ref) for ref, recs in (references or {}).items()}
    base = speedups.get(baseline) if baseline else None
    achieved = base.mean_ratio / ceil if base and base.mean_ratio and ceil and name != baseline else None
    correct = sum(r.correct for r in records)
    return RunSummary(
        name=name, knobs=dict(records[0].knobs) if records else {}, n=len(records), errors=len(records) - len(ok),
        correct=correct, accuracy=_ratio(correct, len(records)), accuracy_ci=wilson_interval(correct, len(records)),
        latency_mean=mean(latencies), latency_p50=percentile(latencies, 50), latency_p90=percentile(latencies, 90),
        target_tokens_mean=mean(s.target_tokens for s in stats), draft_tokens_mean=mean(s.draft_tokens for s in stats),
        steps_drafted=drafted, steps_accepted=accepted, judge_calls=judges, alpha=alpha,
        accepted_per_verification=_ratio(accepted, judges), step_times=times, cost_ratio=c,
        cost_ratio_target_from=c_from, ceiling=ceil, sequential_ceiling=sequential_ceiling(c, alpha),
        throughput_rps=throughput(records), speedups=speedups, achieved=achieved,
        by_position=acceptance_by_position(ok), token_spec=token_speculation(stats),
    )


def summarize(records: Sequence[ProblemRecord], *, baseline: str | None = None, compare_to: Sequence[str] = (),
              run_order: Sequence[str] = ()) -> list[RunSummary]:
    """A summary per run, in `run_order` (then first appearance), speedups against `baseline` + `compare_to`.

    A reference run missing from the records is skipped (its speedup columns stay empty).
    """
    by_run: dict[str, list[ProblemRecord]] = {name: [] for name in run_order}
    for r in sorted(records, key=lambda r: r.seq):
        by_run.setdefault(r.run, []).append(r)
    by_run = {k: v for k, v in by_run.items() if v}
    ref_names = [n for n in ([baseline] if baseline else []) + list(compare_to) if n in by_run]
    references = {n: by_run[n] for n in dict.fromkeys(ref_names)}
    fallback = step_times(by_run[baseline]).target_s if baseline in by_run else None
    return [summarize_run(name, recs, fallback_target_s=fallback, references=references, baseline=baseline)
            for name, recs in by_run.items()]
