"""Replay the controller's bandit on measured fixed-arm records: how far it is from the best arm, and when.

A benchmark that ran every problem with every arm pinned (benchmarks/configs/controller50.yaml), or with runs
named after the arms (issue 4's matrix, replayed with configs/controller-matrix.yaml), knows the reward any arm
would have earned on any problem, so a bandit can be replayed on it without new model calls:
draw a sequence of problems, let the controller's own policy state (`cluster.policies.state.PolicyState`,
the configured bandit and reward scale) choose an arm for each, and feed it that arm's measured
target-equivalent tokens and engine seconds. On the same draws every fixed arm is scored too, so the ratio
to the best fixed arm in hindsight is paired, and repeats over random orders (and the seeds of EXP3 and Thompson
sampling) give its spread.

    python -m benchmarks.bandit_replay RESULTS_DIR [--config configs/default.yaml configs/controller.yaml]
        [--horizon 20 50 200] [--repeats 200] [--policy ucb:paper ucb:heuristic exp3 thompson thompson:pooled]

A horizon up to the number of measured problems draws a random order without repetition; a longer one draws
problems with replacement (the measured problems stand for the request distribution). Throughput = Σ tokens /
Σ seconds over the sequence (the bandit's reward before normalisation); accuracy counts the pulled arm's
answer. This is a counterfactual replay of measured outcomes, not a live run: timing noise of a live server
and the order a server would have seen are absent. Live bandit runs found in the same records (requests that
pinned no arm) are listed after the replays, against the fixed arms on the problems they ran; `--live-only`
lists only them, against whichever arms were measured beside them (a per-round run's kept steps counted by arm).
`--pool` reads several folders as repeats of one benchmark (each folder's problems its own), so the tables pool
the repeats: Σ tokens / Σ seconds over all of them.
"""

from __future__ import annotations

import argparse
import dataclasses
import random
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.records import ProblemRecord, read_records
from cluster.config.loader import load_config
from cluster.config.schema import BanditConfig, ControllerConfig
from cluster.policies.state import PolicyState

DEFAULT_CONFIG = ("configs/default.yaml", "configs/controller.yaml")
POLICIES = {"ucb:paper": {"algorithm": "ucb", "radius": "paper"},
            "ucb:heuristic": {"algorithm": "ucb", "radius": "heuristic"},
            "exp3": {"algorithm": "exp3"},
            "thompson": {"algorithm": "thompson", "variance": "arm"},
            "thompson:pooled": {"algorithm": "thompson", "variance": "pooled"}}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What one arm measured on one problem: target-equivalent tokens, engine seconds, right or wrong."""

    tokens: int
    seconds: float
    correct: bool


@dataclass(frozen=True, slots=True)
class Replay:
    """One replayed sequence: the bandit's throughput and accuracy, and the best fixed arm's on the same draws."""

    throughput: float
    correct: int
    best_arm: str
    best_throughput: float
    pulls: dict[str, int]

    @property
    def ratio(self) -> float:
        return self.throughput / self.best_throughput


def _outcome(r: ProblemRecord) -> Outcome:
    return Outcome(sum(s.num_tokens for s in r.steps), r.stats.wall_time_s, r.correct)


def outcome_table(records: Sequence[ProblemRecord], arms: Sequence[str],
                  every_arm: bool = True) -> dict[str, dict[str, Outcome]]:
    """problem id → arm → Outcome, from the records of runs that pinned an arm (knobs["arm"]), or that pinned
    none and are named after it (a run that set the arm's knobs itself, as issue 4's matrix runs do).

    Only problems every kept arm answered without error are kept; `every_arm` False keeps only the arms that
    have records (a live bandit run measured beside some of the fixed arms).

    Raises:
        ValueError: an arm no record pinned or named (with `every_arm`; else: no arm has records), or no
            problem measured by every kept arm.
    """
    by_arm: dict[str, dict[str, Outcome]] = {a: {} for a in arms}
    for r in records:
        arm = r.knobs.get("arm", r.run)
        if arm in by_arm and r.ok and r.stats is not None and r.stats.wall_time_s > 0:
            by_arm[arm][r.problem_id] = _outcome(r)
    kept = {a: m for a, m in by_arm.items() if m}
    if not kept or (every_arm and len(kept) < len(by_arm)):
        missing = sorted(by_arm.keys() - kept.keys())
        raise ValueError(f"no records pin the arms {missing} (runs with knobs {{arm: NAME}} or named NAME)")
    problems = sorted(set.intersection(*(set(m) for m in kept.values())))
    if not problems:
        raise ValueError("no problem was measured by every arm")
    return {p: {a: m[p] for a, m in kept.items()} for p in problems}


def fixed_throughputs(table: dict[str, dict[str, Outcome]], problems: Sequence[str]) -> dict[str, float]:
    """Each arm's Σ tokens / Σ seconds over `problems` (repeats count again)."""
    return {a: sum(table[p][a].tokens for p in problems) / sum(table[p][a].seconds for p in problems)
            for a in table[problems[0]]}


def best_fixed(table: dict[str, dict[str, Outcome]], problems: Sequence[str]) -> tuple[str, float]:
    """The best fixed arm in hindsight over `problems` and its throughput."""
    fixed = fixed_throughputs(table, problems)
    best = max(fixed, key=fixed.__getitem__)
    return best, fixed[best]


def live_rows(records: Sequence[ProblemRecord], table: dict[str, dict[str, Outcome]], bandit: BanditConfig) -> str:
    """Markdown: every live bandit run in `records` (knobs pin no arm and set no arm's knob, as the runner routes
    a request to the bandit) against the fixed arms on the problems it shares with the table."""
    arm_keys = {k for a in bandit.arms for k in a.knobs} | {"arm"}
    live: dict[str, dict[str, ProblemRecord]] = {}
    for r in records:
        if not arm_keys & r.knobs.keys() and r.ok and r.stats is not None and r.problem_id in table:
            live.setdefault(r.run, {})[r.problem_id] = r
    if not live:
        return ""
    lines = ["| live run | problems | throughput (tokens/s) | ÷ best fixed arm on them (arm) | accuracy "
             "| kept steps by arm (per-round runs) |", "|---|---|---|---|---|---|"]
    for run, by_problem in live.items():
        problems = list(by_problem)
        outcomes = [_outcome(r) for r in by_problem.values()]
        tps = sum(o.tokens for o in outcomes) / sum(o.seconds for o in outcomes)
        best, best_tps = best_fixed(table, problems)
        right = sum(o.correct for o in outcomes)
        lines.append(f"| {run} | {len(problems)} | {tps:.2f} | {tps / best_tps:.2f} ({best}) | "
                     f"{right}/{len(problems)} | {_steps_by_arm(by_problem.values())} |")
    return "\n".join(lines)


def _steps_by_arm(records: Iterable[ProblemRecord]) -> str:
    """"arm n, …" over the steps of `records` that carry the arm of their round (most first), or "—"."""
    counts = Counter(s.arm for r in records for s in r.steps if s.arm is not None)
    return ", ".join(f"{arm} {n}" for arm, n in counts.most_common()) or "—"


def draw(problems: Sequence[str], horizon: int, rng: random.Random) -> list[str]:
    """A random order of the problems (horizon ≤ their number, no repeats), else `horizon` draws with replacement."""
    if horizon <= len(problems):
        return rng.sample(list(problems), horizon)
    return rng.choices(list(problems), k=horizon)


def replay(controller: ControllerConfig, table: dict[str, dict[str, Outcome]], sequence: Sequence[str]) -> Replay:
    """Run the controller's policy state over `sequence`, each pull answered by the table."""
    state = PolicyState(controller.model_copy(update={"checkpoint_path": None}))
    arms = list(next(iter(table.values())))
    pulls = dict.fromkeys(arms, 0)
    tokens, seconds, correct = 0, 0.0, 0
    for problem in sequence:
        arm = state.choose()
        assert arm is not None  # the caller checked there is a bandit
        o = table[problem][arm.name]
        state.observe_throughput(arm.name, o.tokens, o.seconds)
        pulls[arm.name] += 1
        tokens, seconds, correct = tokens + o.tokens, seconds + o.seconds, correct + o.correct
    best, best_tps = best_fixed(table, sequence)
    return Replay(tokens / seconds, correct, best, best_tps, pulls)


def explore_once_bound(table: dict[str, dict[str, Outcome]], sequence: Sequence[str]) -> float:
    """Bandit ÷ best fixed arm for the cheapest exploration any per-request policy can make: one pull of every
    arm (the first problems, one arm each in table order), then the best arm in hindsight for the rest."""
    arms = list(next(iter(table.values())))
    best, best_tps = best_fixed(table, sequence)
    pulls = [table[p][arms[i] if i < len(arms) else best] for i, p in enumerate(sequence)]
    return sum(o.tokens for o in pulls) / sum(o.seconds for o in pulls) / best_tps


def _with_policy(bandit: BanditConfig, policy: str, seed: int) -> ControllerConfig:
    update = {**POLICIES[policy], "seed": seed}
    return ControllerConfig(bandit=bandit.model_copy(update=update))


def _ratio_cells(ratios: Sequence[float]) -> str:
    """Two table cells from ratios to the best fixed arm: their mean [p10, p90], and the share within 5%."""
    deciles = statistics.quantiles(ratios, n=10) if len(ratios) > 1 else list(ratios) * 9
    within = sum(r >= 0.95 for r in ratios) / len(ratios)
    return f"{statistics.fmean(ratios):.2f} [{deciles[0]:.2f}, {deciles[-1]:.2f}] | {within:.0%}"


def arm_table(table: dict[str, dict[str, Outcome]]) -> str:
    """Markdown: every fixed arm's throughput and accuracy on all measured problems."""
    problems = list(table)
    arms = list(table[problems[0]])
    lines = [f"Measured problems: {len(problems)}; arms: {', '.join(arms)}.", "",
             "| arm | throughput (tokens/s) | accuracy |", "|---|---|---|"]
    for a, tps in fixed_throughputs(table, problems).items():
        lines.append(f"| {a} | {tps:.2f} | {sum(table[p][a].correct for p in problems)}/{len(problems)} |")
    return "\n".join(lines)


def report(table: dict[str, dict[str, Outcome]], bandit: BanditConfig, policies: Sequence[str],
           horizons: Sequence[int], repeats: int, seed: int) -> str:
    """Markdown: the fixed arms on all measured problems, then, over `repeats` draws per horizon, the exploration
    bound and each policy (every row of a horizon sees the same draws)."""
    problems = list(table)
    lines = [arm_table(table), "", f"Replays: {repeats} random orders per row (seed {seed}).", "",
              "| policy | horizon | bandit ÷ best fixed arm: mean [p10, p90] | within 5% | pulls of the best arm "
              "| accuracy |", "|---|---|---|---|---|---|"]
    for horizon in horizons:
        rng = random.Random(seed)
        sequences = [draw(problems, horizon, rng) for _ in range(repeats)]
        bounds = [explore_once_bound(table, seq) for seq in sequences]
        lines.append(f"| bound: one pull per arm, then the best | {horizon} | {_ratio_cells(bounds)} | — | — |")
        for policy in policies:
            runs = [replay(_with_policy(bandit, policy, seed + i), table, seq) for i, seq in enumerate(sequences)]
            best_share = statistics.fmean(r.pulls[r.best_arm] / horizon for r in runs)
            accuracy = statistics.fmean(r.correct / horizon for r in runs)
            lines.append(f"| {policy} | {horizon} | {_ratio_cells([r.ratio for r in runs])} | {best_share:.0%} | "
                         f"{accuracy:.0%} |")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bandit_replay", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dirs", type=Path, nargs="+", help="results folders with the pinned-arm records")
    parser.add_argument("--config", nargs="+", default=list(DEFAULT_CONFIG),
                        help="app config files whose controller.bandit is replayed (default: %(default)s)")
    parser.add_argument("--policy", nargs="+", choices=sorted(POLICIES), default=list(POLICIES),
                        help="bandit variants to replay (default: all)")
    parser.add_argument("--horizon", type=int, nargs="+", default=[20, 50, 200], help="requests per replay")
    parser.add_argument("--repeats", type=int, default=200, help="replays per policy and horizon")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--live-only", action="store_true",
                        help="no replays: the live bandit runs against the arms measured beside them (any of them)")
    parser.add_argument("--pool", action="store_true",
                        help="the folders are repeats of one benchmark: each keeps its own problems (named "
                             "FOLDER/PROBLEM), so every figure is Σ over all of them")
    args = parser.parse_args(argv)
    if args.repeats < 1 or min(args.horizon) < 1:
        parser.error("--repeats and every --horizon must be ≥ 1")
    bandit = load_config(args.config).controller.bandit
    if bandit is None:
        parser.error(f"{args.config} configure no controller.bandit")
    records = [dataclasses.replace(r, problem_id=f"{d.name}/{r.problem_id}") if args.pool else r
               for d in args.run_dirs for r in read_records(d)]
    try:
        table = outcome_table(records, [a.name for a in bandit.arms], every_arm=not args.live_only)
    except ValueError as e:
        parser.error(str(e))
    print(arm_table(table) if args.live_only else
          report(table, bandit, args.policy, args.horizon, args.repeats, args.seed))
    if live := live_rows(records, table, bandit):
        print(f"\nLive bandit runs in the records, on the same problems:\n\n{live}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
