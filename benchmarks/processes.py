"""Where the cores go while a benchmark's requests run: CPU time per process group, from /proc, request by request.

Sample the machine beside a benchmark (Linux; every `--interval-s`, each process's CPU seconds since the last
sample, and each process's name, parent and command line when first seen or renamed), then attribute the samples
that fall inside each request:

    python -m benchmarks.processes sample LOG.jsonl [--interval-s 2]        (beside the runner; Ctrl-C stops)
    python -m benchmarks.processes attribute LOG.jsonl RUN_DIR [RUN_DIR …]
    python -m benchmarks.processes wakeups [--seconds 15]        (context switches per second, by thread name)

A process counts for the nearest of its ancestors (itself included) that is a Serve replica ("Verifier",
"Drafter", … with the model engines it spawned), the benchmark runner (with an in-process engine's processes), or
one of Ray's (Serve's controller and proxy, GCS, raylet, agents, monitors: "Ray"); anything else is "other". A
request's window is its start and latency from the records, placed by the run folder's `started_at` (one-second
resolution) and shrunk by the longest interval at each end; only samples wholly inside it count.

A decode whose threads own every core stalls at its next barrier whenever another thread takes a core, however
briefly, so how often processes wake matters as much as their CPU time: `wakeups` counts each thread's context
switches (voluntary and not) over an interval, summed by process name and thread name.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import time
from collections import defaultdict
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.records import read_meta, read_records

RAY_DAEMONS = ("gcs_server", "raylet")


@dataclass(frozen=True, slots=True)
class Sample:
    """One interval: its end (epoch seconds), its length, and the CPU seconds each pid used in it."""

    t: float
    dt: float
    cpu: dict[int, float]


def stat_fields(path: Path) -> tuple[str, list[str]]:
    """A /proc stat file's command name and the fields after it (field 3, the state, first)."""
    text = path.read_text()
    return text[text.index("(") + 1:text.rindex(")")], text[text.rindex(")") + 2:].split()


def cmdline(pid: int | str) -> str:
    """A process's command line, arguments joined by spaces ("" once it has exited)."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


def snapshot() -> dict[int, tuple[str, int, float]]:
    """Every process's (name, parent pid, CPU seconds since it started)."""
    tick = os.sysconf("SC_CLK_TCK")
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            name, rest = stat_fields(entry / "stat")
        except OSError:  # exited meanwhile
            continue
        out[int(entry.name)] = (name, int(rest[1]), (int(rest[11]) + int(rest[12])) / tick)
    return out


def context_switches() -> dict[tuple[int, int], tuple[str, str, int]]:
    """Per (pid, tid): (process name, thread name, context switches since the thread started)."""
    out = {}
    for task in Path("/proc").glob("[0-9]*/task/[0-9]*"):
        try:
            process, thread = (task.parent.parent / "comm").read_text().strip(), (task / "comm").read_text().strip()
            status = (task / "status").read_text().splitlines()
        except OSError:  # exited meanwhile
            continue
        switches = sum(int(line.split()[1]) for line in status if "ctxt_switches:" in line)
        out[int(task.parent.parent.name), int(task.name)] = (process, thread, switches)
    return out


def wakeups(seconds: float) -> dict[tuple[str, str], float]:
    """Context switches per second over `seconds`, summed by (process name, thread name), most first."""
    before, t0 = context_switches(), time.monotonic()
    time.sleep(seconds)
    after, elapsed = context_switches(), time.monotonic() - t0
    rates: dict[tuple[str, str], float] = defaultdict(float)
    for key, (process, thread, n) in after.items():
        if key in before:
            rates[process, thread] += (n - before[key][2]) / elapsed
    return dict(sorted(rates.items(), key=lambda kv: -kv[1]))


def sample(log: Path, interval_s: float) -> None:
    """Append one JSON line per interval to `log` until interrupted: {"t", "dt", "cpu": {pid: CPU s},
    "new": {pid: [name, parent pid, command line]} for the processes first seen or renamed}."""
    names: dict[int, str] = {}
    before, t_before = snapshot(), time.time()
    with log.open("a", encoding="utf-8") as f:
        while True:
            time.sleep(interval_s)
            now, t_now = snapshot(), time.time()
            used = {pid: round(cpu - before[pid][2], 3) for pid, (_, _, cpu) in now.items()
                    if pid in before and cpu > before[pid][2]}
            new = {pid: [name, ppid, cmdline(pid)] for pid, (name, ppid, _) in now.items() if names.get(pid) != name}
            names.update({pid: name for pid, (name, _, _) in new.items()})
            f.write(json.dumps({"t": t_now, "dt": round(t_now - t_before, 3), "cpu": used, "new": new}) + "\n")
            f.flush()
            before, t_before = now, t_now


def read_log(log: Path) -> tuple[list[Sample], dict[int, tuple[str, int, str]]]:
    """The samples of a log, and each pid's (name, parent pid, command line) as last recorded."""
    samples, procs = [], {}
    for line in log.read_text(encoding="utf-8").splitlines():
        data = json.loads(line)
        samples.append(Sample(data["t"], data["dt"], {int(p): c for p, c in data["cpu"].items()}))
        procs.update({int(p): (n, pp, cmd) for p, (n, pp, cmd) in data["new"].items()})
    return samples, procs


def _own_group(name: str, cmd: str) -> str | None:
    if cmd.startswith("ray::ServeReplica:"):
        return cmd.split()[0].split(":")[-1].split(".")[0]  # ray::ServeReplica:<app>:<Deployment>[.<method>]
    if "benchmarks.runner" in cmd:
        return "runner"
    if name.startswith("ray::") or name in RAY_DAEMONS or "/site-packages/ray/" in cmd:
        return "Ray"
    return None


def groups(procs: Mapping[int, tuple[str, int, str]]) -> dict[int, str]:
    """Each pid's group: its own, or that of its nearest ancestor that has one; "other" when none does."""
    def group(pid: int) -> str:
        seen = set()
        while pid in procs and pid not in seen:
            seen.add(pid)
            name, parent, cmd = procs[pid]
            if (own := _own_group(name, cmd)) is not None:
                return own
            pid = parent
        return "other"

    return {pid: group(pid) for pid in procs}


def _inside(samples: Sequence[Sample], start: float, end: float) -> list[Sample]:
    return [s for s in samples if start <= s.t - s.dt and s.t <= end]


def _mean_cores(inside: Sequence[Sample], by_pid: Mapping[int, str]) -> dict[str, float]:
    span = sum(s.dt for s in inside)
    used: dict[str, float] = defaultdict(float)
    for s in inside:
        for pid, cpu in s.cpu.items():
            used[by_pid.get(pid, "other")] += cpu
    return {g: c / span for g, c in used.items()}


def cores(samples: Sequence[Sample], by_pid: Mapping[int, str], start: float, end: float) -> dict[str, float] | None:
    """Mean cores each group used over the samples wholly inside [start, end]; None when there are none."""
    inside = _inside(samples, start, end)
    return _mean_cores(inside, by_pid) if inside else None


def _shown(used: Mapping[str, float]) -> str:
    return ", ".join(f"{g} {c:.3f}" for g, c in sorted(used.items(), key=lambda kv: -kv[1]) if c >= 0.001)


def attribute(log: Path, run_dirs: Sequence[Path]) -> Iterator[str]:
    """A markdown table per run folder: each request's latency and the cores each group used during it; then one
    row per run over all the folders, each request weighted by the seconds sampled inside it."""
    samples, procs = read_log(log)
    by_pid = groups(procs)
    margin = max((s.dt for s in samples), default=0.0)
    cpu_s: dict[str, dict[str, float]] = defaultdict(lambda: defaultdict(float))
    sampled_s: dict[str, float] = defaultdict(float)
    requests: dict[str, int] = defaultdict(int)
    for run_dir in run_dirs:
        t0 = datetime.datetime.fromisoformat(read_meta(run_dir)["started_at"]).timestamp()
        yield f"\n{run_dir.name}\n\n| run | problem | latency (s) | cores by group |\n|---|---|---|---|"
        for r in read_records(run_dir):
            start = t0 + r.started_s
            inside = _inside(samples, start + margin, start + r.latency_s - margin)
            used = _mean_cores(inside, by_pid) if inside else None
            yield f"| {r.run} | {r.problem_id} | {r.latency_s:.1f} | {_shown(used) if used else 'no sample inside'} |"
            if used:
                span = sum(s.dt for s in inside)
                for g, c in used.items():
                    cpu_s[r.run][g] += c * span
                sampled_s[r.run] += span
                requests[r.run] += 1
    yield "\nAll folders, by run\n\n| run | requests sampled | cores by group |\n|---|---|---|"
    for run, span in sampled_s.items():
        yield f"| {run} | {requests[run]} | {_shown({g: c / span for g, c in cpu_s[run].items()})} |"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.processes", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    p_sample = sub.add_parser("sample", help="sample /proc into LOG until interrupted")
    p_attr = sub.add_parser("attribute", help="cores by process group during each request of RUN_DIR(s)")
    p_wake = sub.add_parser("wakeups", help="context switches per second by process and thread name")
    p_wake.add_argument("--seconds", type=float, default=15.0, help="how long to count (default 15)")
    p_wake.add_argument("--top", type=int, default=40, help="rows shown (default 40)")
    for p in (p_sample, p_attr):
        p.add_argument("log", type=Path)
    p_sample.add_argument("--interval-s", type=float, default=2.0, help="sampling period (default 2)")
    p_attr.add_argument("run_dirs", type=Path, nargs="+")
    args = parser.parse_args(argv)
    if args.command == "wakeups":
        rates = wakeups(args.seconds)
        print(f"{sum(rates.values()):.0f} context switches/s in all\n")
        print("| process | thread | per second |\n|---|---|---|")
        for (process, thread), rate in list(rates.items())[:args.top]:
            print(f"| {process} | {thread} | {rate:.0f} |")
        return 0
    if args.command == "sample":
        try:
            sample(args.log, args.interval_s)
        except KeyboardInterrupt:
            pass
        return 0
    if not args.log.is_file():
        parser.error(f"no sampling log at {args.log}")
    for line in attribute(args.log, args.run_dirs):
        print(line)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
