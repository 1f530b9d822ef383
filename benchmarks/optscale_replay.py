"""Replay OptScale's stopping rule on the candidate pools of a fixed-N Best-of-N run.

A fixed-N run (`best_of_n.adaptive: false`) scores every candidate and records each one's answer and score
in scoring order (`ProblemRecord.candidates`). OptScale's decision after a score depends only on the scores
so far, so running the controller's own sampler (`cluster.policies.optscale.OptScaleSampler`) over a pool in
that order gives, for any s_target and α, the samples OptScale would have drawn and the candidate it would
have returned: the paper's own evaluation over pre-generated pools (ALGORITHMS.md §5), paired with fixed N on
the same pools. The prior is the controller's: fitted online over the problems in record order (or none: MLE).

Scoring order is finish order: with every candidate in flight at once (`best_of_n.parallel` = N) the first scored
are the shortest solutions, while a live OptScale request draws the first `peek` candidates it launches. The
candidates are i.i.d., so `--orders R` replays each pool in R seeded random orders instead and averages.
`--select weighted_vote` returns the answer whose candidates' scores sum highest, for fixed N and OptScale alike
(`best_of_n.select`), instead of the best-scoring candidate's.

    python -m benchmarks.optscale_replay RESULTS_DIR [--run best-of-n-fixed8]
        [--s-target 0.8 0.85 0.9 0.95] [--alpha 0.05 0.1] [--prior online|none] [--orders R]
        [--select best|weighted_vote]

Samples are scored candidates (a live request also cancels the ones in flight when it stops).
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import get_args

from benchmarks.metrics import auc
from benchmarks.records import ProblemRecord, read_records
from cluster.config.schema import BestOfNParams, OptScaleConfig, SelectName
from cluster.policies.optscale import OnlinePrior, OptScaleSampler
from cluster.reasoning.methods.best_of_n import choose
from cluster.reasoning.steps import answers_match
from cluster.reasoning.types import Candidate

S_TARGETS = (0.8, 0.85, 0.9, 0.95)  # within the paper's grid where it overlaps (0.85–0.99), plus 0.8
ALPHAS = (0.05, 0.1)


@dataclass(frozen=True, slots=True)
class Pool:
    """One problem's scored candidates, in scoring order, and its expected answer."""

    problem_id: str
    expected: str
    candidates: tuple[Candidate, ...]


@dataclass(frozen=True, slots=True)
class Stopped:
    """What OptScale did on one pool: samples drawn and whether the candidate it returned is right."""

    samples: int
    correct: bool


def pools(records: Sequence[ProblemRecord], run: str) -> list[Pool]:
    """The candidate pools of `run`'s successful records, in record order.

    Raises:
        ValueError: the run has no record with candidates (not a best_of_n run, or recorded before they were kept).
    """
    found = [Pool(r.problem_id, r.expected, r.candidates) for r in records if r.run == run and r.ok and r.candidates]
    if not found:
        raise ValueError(f"run {run!r} has no records with best_of_n candidates")
    return found


def chosen_correct(candidates: Sequence[Candidate], expected: str, select: SelectName = "best") -> bool:
    """Whether the candidate Best-of-N returns under `select` (as a live request chooses) is right."""
    return answers_match(candidates[choose(candidates, select)].answer, expected)


def stop_on(pool: Pool, *, s_target: float, alpha: float, peek: int, prior: OnlinePrior | None,
            select: SelectName = "best") -> Stopped:
    """Feed the pool's scores to OptScale until it stops (or the pool ends: N_max = the pool's size);
    the online prior, when given, then learns from the MLE fit, as the controller's does."""
    n_max = len(pool.candidates)
    sampler: OptScaleSampler[Candidate] = OptScaleSampler(
        s_target=s_target, alpha=alpha, n_max=n_max, peek=min(peek, n_max), prior=prior.prior if prior else None)
    for c in pool.candidates:
        if sampler.add(c, c.score).stop:
            break
    if prior is not None:
        prior.observe(sampler.mle_fit())
    return Stopped(len(sampler.scores), chosen_correct(sampler.candidates, pool.expected, select))


def shuffled(found: Sequence[Pool], rng: random.Random) -> list[Pool]:
    """The pools with each one's candidates in a random order (the problems stay in record order)."""
    return [replace(p, candidates=tuple(rng.sample(p.candidates, len(p.candidates)))) for p in found]


def report(found: Sequence[Pool], *, s_targets: Sequence[float], alphas: Sequence[float], peek: int,
           online_prior: bool, orders: int = 0, select: SelectName = "best") -> str:
    """Markdown: fixed N, then OptScale per (s_target, α): samples, their share of fixed N's, accuracy.

    `orders` = 0 replays the recorded scoring order; R > 0 replays R random orders of every pool (seed 0) and
    reports OptScale's means over them (fixed N's pick does not depend on the order, ties aside). `select` is
    the pick of both (`best_of_n.select`).
    """
    n = len(found)
    rng = random.Random(0)
    passes = [list(found)] if orders == 0 else [shuffled(found, rng) for _ in range(orders)]
    fixed_samples = sum(len(p.candidates) for p in found)
    fixed_right = sum(chosen_correct(p.candidates, p.expected, select) for p in found)
    scored = [(c.score, answers_match(c.answer, p.expected)) for p in found for c in p.candidates]
    scores = [score for score, _ in scored]
    right = [score for score, ok in scored if ok]
    ranking = auc(right, [score for score, ok in scored if not ok])
    order = "as scored" if orders == 0 else f"{orders} random orders per pool (seed 0), means"
    lines = [f"Pools: {n} problems, {fixed_samples} candidates ({len(right)} right); scores mean "
             f"{statistics.fmean(scores):.3f}, sd {statistics.pstdev(scores):.3f}, AUC right vs wrong "
             f"{'n/a' if ranking is None else f'{ranking:.2f}'}; peek {peek}; "
             f"prior {'online' if online_prior else 'none (MLE)'}; order: {order}; select: {select}.",
             "", "| rule | samples per problem | ÷ fixed N | accuracy | goal (≤ 50% of the samples, equal accuracy) |",
             "|---|---|---|---|---|",
             f"| fixed N | {fixed_samples / n:.2f} | 100% | {fixed_right}/{n} | — |"]
    defaults = OptScaleConfig()
    for s_target in s_targets:
        for alpha in alphas:
            samples, hits = 0.0, 0.0
            for ordered in passes:
                prior = OnlinePrior(defaults.mu, defaults.sigma, std=defaults.std, weight=defaults.weight) \
                    if online_prior else None
                runs = [stop_on(p, s_target=s_target, alpha=alpha, peek=peek, prior=prior, select=select)
                        for p in ordered]
                samples += sum(r.samples for r in runs) / len(passes)
                hits += sum(r.correct for r in runs) / len(passes)
            met = "met" if samples <= 0.5 * fixed_samples and hits >= fixed_right else "missed"
            lines.append(f"| OptScale s_target {s_target}, α {alpha} | {samples / n:.2f} | "
                         f"{samples / fixed_samples:.0%} | {hits:.4g}/{n} | {met} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.optscale_replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="results folders holding the fixed-N run's records")
    parser.add_argument("--run", default="best-of-n-fixed8", help="the fixed-N run's name (default: %(default)s)")
    parser.add_argument("--s-target", type=float, nargs="+", default=list(S_TARGETS))
    parser.add_argument("--alpha", type=float, nargs="+", default=list(ALPHAS))
    parser.add_argument("--peek", type=int, default=BestOfNParams().peek, help="k (default: %(default)s)")
    parser.add_argument("--prior", choices=["online", "none"], default="online",
                        help="the controller's online prior, or MLE (default: %(default)s)")
    parser.add_argument("--orders", type=int, default=0,
                        help="random candidate orders per pool, averaged (default: 0 = the scoring order)")
    parser.add_argument("--select", choices=get_args(SelectName), default="best",
                        help="the candidate returned: best score, or score-weighted vote (default: %(default)s)")
    args = parser.parse_args(argv)
    if (args.peek < 1 or args.orders < 0 or not all(0 < s <= 1 for s in args.s_target)
            or not all(0 < a < 1 for a in args.alpha)):
        parser.error("need --peek ≥ 1, --orders ≥ 0, 0 < --s-target ≤ 1 and 0 < --alpha < 1")
    try:
        found = pools([r for d in args.run_dirs for r in read_records(d)], args.run)
    except ValueError as e:
        parser.error(str(e))
    print(report(found, s_targets=args.s_target, alphas=args.alpha, peek=args.peek,
                 online_prior=args.prior == "online", orders=args.orders, select=args.select))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
