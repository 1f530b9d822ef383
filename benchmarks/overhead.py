"""Orchestration overhead of the served app: served latency ÷ in-process latency, problem by problem.

Either one benchmark that runs each run both ways — an in-process run and its served twin (`mode: served`, same
knobs and app overrides), `order: paired` so that the two are minutes apart on every problem
(`benchmarks/configs/overhead-paired.yaml`) — or one benchmark config run twice, in-process and served over HTTP
against `specserve up` with the same app config; then pair the records by run and problem:

    python -m benchmarks.overhead RUN_DIR                                   (one benchmark, both ways)
    python -m benchmarks.overhead SERVED_DIR INPROCESS_DIR [INPROCESS_DIR …]

Several in-process folders (e.g. one measured before the served run and one after, which brackets a drifting
machine) are averaged problem by problem. Per run: mean latency of each side, the ratio of the means, the
geometric mean of the per-problem ratios with their range, the per-token time of target steps (target_time_s ÷
target_tokens as the method timed them, the call included), the model seconds of the kept steps (each step's
`latency_s`, timed where the model runs: inside the replica when served, so a served request's latency minus these
is orchestration plus the calls whose output was not kept), how many answers are identical and each side's
accuracy. With greedy decoding both sides should give the same answers; a pair where a request failed is left out
and counted. Each ratio of means, and the overhead of all runs together, comes with a 95% bootstrap interval over
problems (a problem's requests resampled together, as they shared the machine's speed at the time), which says
whether a goal such as ≤ 5% is within what the problems measured. For one benchmark run both ways, the overhead
is also given apart over the problems whose served side went first and those whose in-process side did
(`overhead-paired-served-first.yaml` on alternate problems), which shows whether the order biases it, and the two
combined (√ of their ratios) so that a slowdown of whichever side goes second cancels.
"""

from __future__ import annotations

import argparse
import json
import math
import random
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks.metrics import BOOTSTRAP_RESAMPLES, bootstrap_ratio, percentile_interval
from benchmarks.records import RECORDS_FILE, ProblemRecord, read_meta, read_records


@dataclass(frozen=True, slots=True)
class Overhead:
    """One run's served-vs-in-process comparison over the problems both sides answered.

    Attributes:
        run: run name.
        failed: problems left out because a request failed on either side.
        served_ms_per_target_token / inprocess_ms_per_target_token: summed target step time ÷ summed target
            tokens (None when the run wrote no target tokens).
        served_step_model_s / inprocess_step_model_s: mean of the summed `latency_s` of the kept steps over the
            records that have step timing (None when none has: records from before it).
        identical: pairs whose predicted answers are equal.
        served_correct / inprocess_correct: correct answers over the pairs.
        latencies: (problem id, served s, in-process s) of each pair — a problem both requests of which
            succeeded (in-process: the mean of its measurements).
    """

    run: str
    failed: int
    served_ms_per_target_token: float | None
    inprocess_ms_per_target_token: float | None
    served_step_model_s: float | None
    inprocess_step_model_s: float | None
    identical: int
    served_correct: int
    inprocess_correct: int
    latencies: tuple[tuple[str, float, float], ...]

    @property
    def pairs(self) -> int:
        return len(self.latencies)

    @property
    def ratios(self) -> list[float]:
        """Served ÷ in-process latency, problem by problem."""
        return [s / i for _, s, i in self.latencies]

    @property
    def geomean(self) -> float:
        return math.exp(sum(map(math.log, self.ratios)) / self.pairs)

    @property
    def served_mean_s(self) -> float:
        return sum(s for _, s, _ in self.latencies) / len(self.latencies)

    @property
    def inprocess_mean_s(self) -> float:
        return sum(i for _, _, i in self.latencies) / len(self.latencies)

    @property
    def ratio_of_means(self) -> float:
        return self.served_mean_s / self.inprocess_mean_s

    @property
    def ratio_interval(self) -> tuple[float, float] | None:
        """95% bootstrap interval of the ratio of means, resampling problems."""
        return bootstrap_ratio([(s, i) for _, s, i in self.latencies])


def _by_problem(rows: Sequence[Overhead]) -> dict[str, tuple[float, float]]:
    """Per problem: (served, in-process) seconds summed over every run's pair on it."""
    by_problem: dict[str, tuple[float, float]] = {}
    for row in rows:
        for pid, s, i in row.latencies:
            old_s, old_i = by_problem.get(pid, (0.0, 0.0))
            by_problem[pid] = (old_s + s, old_i + i)
    return by_problem


def overall_interval(rows: Sequence[Overhead]) -> tuple[float, float] | None:
    """95% bootstrap interval of all runs' served ÷ in-process seconds, resampling problems (each with every
    run's pair on it)."""
    return bootstrap_ratio(list(_by_problem(rows).values()))


def served_first(served: Sequence[ProblemRecord], inprocess: Sequence[ProblemRecord]) -> dict[str, bool]:
    """Per problem on both sides, whether its served requests were sent before its in-process ones (by `seq`,
    the planned order: one benchmark's records, where a problem's requests are all in one part)."""
    first: tuple[dict[str, int], dict[str, int]] = ({}, {})
    for side, records in zip(first, (served, inprocess), strict=True):
        for r in records:
            side[r.problem_id] = min(side.get(r.problem_id, r.seq), r.seq)
    return {pid: seq < first[1][pid] for pid, seq in first[0].items() if pid in first[1]}


def _ms_per_target_token(records: Sequence[ProblemRecord]) -> float | None:
    tokens = sum(r.stats.target_tokens for r in records if r.stats)
    return 1000 * sum(r.stats.target_time_s for r in records if r.stats) / tokens if tokens else None


def _step_model_s(record: ProblemRecord) -> float | None:
    return sum(s.latency_s for s in record.steps) or None  # None: a record from before step timing


def _mean_known(xs: Sequence[float | None]) -> float | None:
    known = [x for x in xs if x is not None]
    return sum(known) / len(known) if known else None


def compare(served: Sequence[ProblemRecord], inprocess: Sequence[ProblemRecord]) -> list[Overhead]:
    """The overhead of every run present on both sides, in the served side's run order. A (run, problem) measured
    more than once in-process counts with its mean latency; its answer is identical and correct only if every
    in-process answer is.

    Raises:
        ValueError: no run and problem in common, or no pair where both requests succeeded.
    """
    inproc: dict[tuple[str, str], list[ProblemRecord]] = {}
    for r in inprocess:
        inproc.setdefault((r.run, r.problem_id), []).append(r)
    runs = list(dict.fromkeys(r.run for r in served if (r.run, r.problem_id) in inproc))
    if not runs:
        raise ValueError("the two folders share no (run, problem): compare runs of one benchmark config")
    out = []
    for run in runs:
        both = [(s, inproc[run, s.problem_id]) for s in served if s.run == run and (run, s.problem_id) in inproc]
        ok = [(s, i) for s, i in both if s.ok and all(r.ok for r in i)]
        if not ok:
            continue
        inproc_s = [sum(r.latency_s for r in i) / len(i) for _, i in ok]
        out.append(Overhead(
            run=run, failed=len(both) - len(ok),
            served_ms_per_target_token=_ms_per_target_token([s for s, _ in ok]),
            inprocess_ms_per_target_token=_ms_per_target_token([r for _, i in ok for r in i]),
            served_step_model_s=_mean_known([_step_model_s(s) for s, _ in ok]),
            inprocess_step_model_s=_mean_known([_mean_known([_step_model_s(r) for r in i]) for _, i in ok]),
            identical=sum(all(r.predicted == s.predicted for r in i) for s, i in ok),
            served_correct=sum(s.correct for s, _ in ok),
            inprocess_correct=sum(all(r.correct for r in i) for _, i in ok),
            latencies=tuple((s.problem_id, s.latency_s, t) for (s, _), t in zip(ok, inproc_s, strict=True))))
    if not out:
        raise ValueError("no problem where both the served and the in-process request succeeded")
    return out


def split_modes(run_dir: Path) -> tuple[list[ProblemRecord], list[ProblemRecord]]:
    """A benchmark that ran runs both ways: (its served records, each renamed to its in-process twin — the
    in-process run with the same knobs and app overrides —, the twins' records).

    Raises:
        ValueError: the folder has no served run with an in-process twin.
    """
    def key(run: dict[str, Any]) -> str:
        return json.dumps([run["knobs"], run["app_overrides"]], sort_keys=True)

    runs = read_meta(run_dir).get("runs", [])
    inprocess = {key(r): r["name"] for r in runs if r.get("mode") == "inprocess"}
    twin = {r["name"]: inprocess[key(r)] for r in runs if r.get("mode") == "served" and key(r) in inprocess}
    if not twin:
        raise ValueError(f"{run_dir} has no served run with an in-process twin (same knobs and app overrides); "
                         "for two separate benchmarks pass the served folder, then the in-process one(s)")
    records = read_records(run_dir)
    return ([replace(r, run=twin[r.run]) for r in records if r.run in twin],
            [r for r in records if r.run in twin.values()])


def _ms(x: float | None) -> str:
    return "—" if x is None else f"{x:.0f}"


def _s(x: float | None) -> str:
    return "—" if x is None else f"{x:.2f}"


def _interval(ci: tuple[float, float] | None) -> str:
    return f"[{ci[0]:.3f}–{ci[1]:.3f}]" if ci else "[—]"


def _ratio(pairs: Sequence[tuple[float, float]]) -> float:
    return sum(s for s, _ in pairs) / sum(i for _, i in pairs)


def order_balanced(served_first: Sequence[tuple[float, float]], inprocess_first: Sequence[tuple[float, float]],
                   resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0) -> tuple[float, tuple[float, float]]:
    """√(r₁ · r₂), r = Σ served ÷ Σ in-process seconds over the problems (served, in-process) whose served side
    went first (r₁) or second (r₂): a slowdown of whichever side goes second, by one factor either way, cancels.
    With its 95% percentile-bootstrap interval, each group resampled apart (fixed seed)."""
    rng = random.Random(seed)
    draws = [math.sqrt(_ratio(rng.choices(served_first, k=len(served_first)))
                       * _ratio(rng.choices(inprocess_first, k=len(inprocess_first))))
             for _ in range(resamples)]
    return math.sqrt(_ratio(served_first) * _ratio(inprocess_first)), percentile_interval(draws)


def _percent(ci: tuple[float, float] | None) -> str:
    return f" (95% CI {100 * (ci[0] - 1):+.1f}% to {100 * (ci[1] - 1):+.1f}%)" if ci else ""


def _by_order(by_problem: dict[str, tuple[float, float]], first: dict[str, bool]) -> str:
    """The overhead over the problems (`_by_problem`) where the served side went first, over those where it went
    second, and balanced for the order when there are both."""
    groups = {flag: [v for pid, v in by_problem.items() if first.get(pid) is flag] for flag in (True, False)}
    parts = [f"{label} on {len(pairs)} problem{'s' if len(pairs) != 1 else ''} "
             f"{100 * (_ratio(pairs) - 1):+.1f}%{_percent(bootstrap_ratio(pairs))}"
             for label, pairs in (("served first", groups[True]), ("in-process first", groups[False])) if pairs]
    if groups[True] and groups[False]:
        balanced, ci = order_balanced(groups[True], groups[False])
        parts.append(f"balanced for the order (√ of the two ratios) **{100 * (balanced - 1):+.1f}%**{_percent(ci)}")
    return "By the side sent first on a problem: " + "; ".join(parts) + "."


def table(rows: Sequence[Overhead], first: dict[str, bool] | None = None) -> str:
    """A markdown table of `rows`, with the latency-weighted overhead of all runs together below it, and split by
    the side sent first on each problem when `first` (`served_first`) is given."""
    lines = ["| run | pairs | served mean (s) | in-process mean (s) | ratio of means [95% CI] | geomean [min–max] | "
             "target ms/token served / in-process | kept steps' model s served / in-process | answers identical | "
             "accuracy served / in-process |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        failed = f" ({r.failed} failed)" if r.failed else ""
        lines.append(f"| {r.run} | {r.pairs}{failed} | {r.served_mean_s:.2f} | {r.inprocess_mean_s:.2f} | "
                     f"**{r.ratio_of_means:.3f}** {_interval(r.ratio_interval)} | "
                     f"{r.geomean:.3f} [{min(r.ratios):.2f}–{max(r.ratios):.2f}] | "
                     f"{_ms(r.served_ms_per_target_token)} / {_ms(r.inprocess_ms_per_target_token)} | "
                     f"{_s(r.served_step_model_s)} / {_s(r.inprocess_step_model_s)} | "
                     f"{r.identical}/{r.pairs} | {r.served_correct}/{r.pairs} / {r.inprocess_correct}/{r.pairs} |")
    by_problem = _by_problem(rows)
    served, inproc = (sum(side) for side in zip(*by_problem.values(), strict=True))
    interval = overall_interval(rows)
    ci = (f" (95% CI over problems, bootstrap: {100 * (interval[0] - 1):+.1f}% to {100 * (interval[1] - 1):+.1f}%)"
          if interval else "")
    lines.append(f"\nAll runs: served {served:.1f} s, in-process {inproc:.1f} s → overhead "
                 f"**{100 * (served / inproc - 1):+.1f}%**{ci}.")
    if first:
        lines.append(_by_order(by_problem, first))
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.overhead", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("served", type=Path, help="results folder of the served run, or of one benchmark that "
                                                  "ran its runs both ways")
    parser.add_argument("inprocess", type=Path, nargs="*", help="results folder(s) of the in-process run")
    args = parser.parse_args(argv)
    for folder in (args.served, *args.inprocess):
        if not (folder / RECORDS_FILE).is_file():
            parser.error(f"{folder} holds no {RECORDS_FILE}: not a results folder")
    first = None  # two benchmarks' seqs do not compare
    try:
        if args.inprocess:
            rows = compare(read_records(args.served), [r for d in args.inprocess for r in read_records(d)])
        else:
            served, inprocess = split_modes(args.served)
            rows, first = compare(served, inprocess), served_first(served, inprocess)
    except ValueError as e:
        parser.error(str(e))
    print(table(rows, first))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
