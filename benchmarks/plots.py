"""PNG plots of a benchmark (matplotlib, Agg): accuracy vs latency, speedup vs a swept knob, acceptance by position."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never a display (CI and servers have none)
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from benchmarks.metrics import RunSummary  # noqa: E402

ACCURACY_LATENCY = "accuracy_vs_latency.png"
ACCEPTANCE_POSITION = "acceptance_by_position.png"
LABEL_SIZE = 8  # points


def plot_accuracy_latency(summaries: Sequence[RunSummary], path: Path) -> Path | None:
    """Accuracy (Wilson 95% CI) against mean latency, one labelled point per run."""
    points = [s for s in summaries if s.latency_mean is not None and s.accuracy is not None and s.accuracy_ci]
    if not points:
        return None
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    for s in points:
        lo, hi = s.accuracy_ci  # type: ignore[misc]
        yerr = [[max(0.0, s.accuracy - lo)], [max(0.0, hi - s.accuracy)]]  # clamp float noise at 0 and 1
        ax.errorbar(s.latency_mean, s.accuracy, yerr=yerr, fmt="o", capsize=4)
    ax.set(xlabel="mean latency per problem (s)", ylabel="accuracy (Wilson 95% CI)", ylim=(-0.05, 1.05),
           title="Accuracy vs latency")
    ax.set_xlim(left=0)
    ax.grid(alpha=0.3)
    to_points = 72.0 / fig.dpi  # the axes' final limits are set: data → display pixels → typographic points
    anchors = [tuple(xy * to_points) for xy in ax.transData.transform([(s.latency_mean, s.accuracy) for s in points])]
    for s, offset in zip(points, label_offsets(anchors, [s.name for s in points], LABEL_SIZE), strict=True):
        ax.annotate(s.name, (s.latency_mean, s.accuracy), textcoords="offset points", xytext=offset,
                    fontsize=LABEL_SIZE)
    return _save(fig, path)


def label_offsets(anchors: Sequence[tuple[float, float]], labels: Sequence[str],
                  size: float) -> list[tuple[float, float]]:
    """Offsets (in points) that keep point labels apart: each label sits right of and above its point, and moves
    down, then up, a line at a time (three lines at most) until its box clears the labels placed before it
    (anchors in points)."""
    width, height = 0.6 * size, 1.3 * size  # a character's advance and a line, roughly, for matplotlib's sans
    dx = 6.0  # every label starts this far right of its point
    placed: list[tuple[float, float, float, float]] = []
    offsets: list[tuple[float, float]] = []
    for (x, y), label in zip(anchors, labels, strict=True):
        for shift in (0, -1, 1, -2, 2, -3, 3):
            dy = 4.0 + shift * height
            box = (x + dx, y + dy, x + dx + width * len(label), y + dy + height)
            if not any(box[0] < b[2] and b[0] < box[2] and box[1] < b[3] and b[1] < box[3] for b in placed):
                break
        placed.append(box)
        offsets.append((dx, dy))
    return offsets


def swept_knobs(summaries: Sequence[RunSummary],
                overrides: Mapping[str, Sequence[str]] | None = None) -> dict[str, dict[str, list[RunSummary]]]:
    """Numeric knobs swept alone: {knob: {series label: runs sorted by the knob}}.

    A series joins runs that share every other knob and the same app overrides (`overrides`: run name → the
    run's app overrides, from meta.json), so runs that differ in anything else (sync vs async, another verifier,
    token-level speculation) never join one line; only series with ≥ 2 values of the knob are kept.
    """
    overrides = overrides or {}
    out: dict[str, dict[str, list[RunSummary]]] = {}
    for s in summaries:
        extra = tuple(overrides.get(s.name, ()))
        for knob, value in s.knobs.items():
            if isinstance(value, int | float) and not isinstance(value, bool):
                rest = [str(s.knobs.get("method", "?"))]
                rest += [f"{k}={v}" for k, v in sorted(s.knobs.items()) if k not in (knob, "method")]
                out.setdefault(knob, {}).setdefault(" ".join(rest + list(extra)), []).append(s)
    return {knob: sweeps for knob, by_setting in out.items()
            if (sweeps := {label: sorted(rs, key=lambda r: r.knobs[knob]) for label, rs in by_setting.items()
                           if len({r.knobs[knob] for r in rs}) >= 2})}


def plot_speedup_sweep(knob: str, series: dict[str, list[RunSummary]], baseline: str, path: Path) -> Path | None:
    """Speedup vs the baseline (ratio of mean latencies) and the ceiling, against a swept knob."""
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    drawn = False
    for label, runs in series.items():
        pts = [(r.knobs[knob], r.speedups[baseline].mean_ratio, r.ceiling) for r in runs
               if baseline in r.speedups and r.speedups[baseline].mean_ratio is not None]
        if not pts:
            continue
        xs = [p[0] for p in pts]
        ax.plot(xs, [p[1] for p in pts], "o-", label=f"{label}: speedup")
        ceil = [(x, c) for x, _, c in pts if c is not None]
        if ceil:
            ax.plot([x for x, _ in ceil], [c for _, c in ceil], "s--", alpha=0.7, label=f"{label}: ceiling")
        drawn = True
    if not drawn:
        plt.close(fig)
        return None
    ax.axhline(1.0, color="grey", lw=0.8)
    ax.set(xlabel=knob, ylabel=f"speedup vs {baseline} (ratio of mean latencies)", title=f"Speedup vs {knob}")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, path)


def plot_acceptance_position(summaries: Sequence[RunSummary], path: Path) -> Path | None:
    """Acceptance rate per step position (top) and how many drafts were judged there (bottom)."""
    runs = [s for s in summaries if s.by_position]
    if not runs:
        return None
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7.0, 5.6), sharex=True, height_ratios=(2, 1))
    for s in runs:
        xs = [p.position for p in s.by_position]
        top.plot(xs, [p.rate for p in s.by_position], "o-", ms=3, label=s.name)
        bottom.plot(xs, [p.judged for p in s.by_position], "-", label=s.name)
    top.set(ylabel="accepted / judged", ylim=(-0.05, 1.05), title="Draft-step acceptance by step position")
    bottom.set(xlabel="step position (0 = first step)", ylabel="judged drafts")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    top.legend(fontsize=8)
    return _save(fig, path)


def plot_all(summaries: Sequence[RunSummary], run_dir: Path, baseline: str | None,
             overrides: Mapping[str, Sequence[str]] | None = None) -> list[Path]:
    """Every plot that has data, written into `run_dir`; returns the files written (`overrides`: run name → the
    run's app overrides, which tell runs with equal knobs apart)."""
    out = [plot_accuracy_latency(summaries, run_dir / ACCURACY_LATENCY)]
    if baseline:
        for knob, series in swept_knobs(summaries, overrides).items():
            out.append(plot_speedup_sweep(knob, series, baseline, run_dir / f"speedup_vs_{knob}.png"))
    out.append(plot_acceptance_position(summaries, run_dir / ACCEPTANCE_POSITION))
    return [p for p in out if p is not None]


def _save(fig: plt.Figure, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
