"""What a running Ray app costs a model that decodes beside it on the same CPU cores.

Decodes with the target model in this process (the backend and settings of the app config) while the processes of
a running `specserve up` (the launcher and everything it started: Ray's daemons, Serve's actors, the replicas and
their engines) are, in turn:

- `frozen`: stopped with SIGSTOP, as if the app were not there (memory stays, CPU use is nil);
- `running`: running, every thread at nice 0 in SCHED_OTHER (how `specserve up` starts them by default);
- `nice19`: every thread at nice 19;
- `idle`: every thread in the SCHED_IDLE class (runs only when nothing else wants the core);
- `mainidle`: as `running`, except the main thread of each Ray worker process (`ray::…`: Serve's controller and
  proxy, the replicas, Ray's agents), which wakes every 10 ms to check for signals, in SCHED_IDLE.

Each round runs every condition once, in a shuffled order, so the machine's drift falls on all of them alike. Per
condition: ms per generated token, its ratio to `frozen` paired by round, and the app's own CPU use while it ran.
Afterwards the app is left `running`.

    specserve up …                                        # the app beside which to measure (any models)
    python -m benchmarks.coresidence [--rounds 6] [--tokens 64] [key=value …]

Linux only (/proc). Putting the app's threads back to nice 0 / SCHED_OTHER needs CAP_SYS_NICE (root); without it,
measure `--conditions frozen,running`.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import signal
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from statistics import geometric_mean, mean, median

from benchmarks.processes import cmdline, stat_fields
from cluster.backends import SamplingParams, create_backend
from cluster.config import load_config

CONDITIONS = ("frozen", "running", "nice19", "idle", "mainidle")
PROMPT = "Count from 1 to 1000 in words, separated by commas: one, two, three,"


def _stat_fields(pid: int | str) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (field 3, the state, first)."""
    return stat_fields(Path(f"/proc/{pid}/stat"))[1]


def app_processes(marker: str = "specserve up") -> list[int]:
    """The pid of the one process whose command line contains `marker`, followed by all its descendants.

    Raises:
        RuntimeError: no such process, or more than one.
    """
    parents: dict[int, int] = {}
    roots = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            parents[int(entry)] = int(_stat_fields(entry)[1])
            if marker in cmdline(entry):
                roots.append(int(entry))
        except (OSError, IndexError, ValueError):
            continue
    if len(roots) != 1:
        raise RuntimeError(f"expected one running process with {marker!r} in its command line, found {roots or 'none'}")
    family = [roots[0]]
    for pid in family:  # grows while it is walked: breadth first
        family += [child for child, parent in parents.items() if parent == pid]
    return family


def _is_ray_worker(pid: int) -> bool:
    """Whether `pid` is a Ray worker process (command name `ray::…`); False once it has exited."""
    try:
        return stat_fields(Path(f"/proc/{pid}/stat"))[0].startswith("ray::")
    except OSError:
        return False


def _threads(pid: int) -> list[int]:
    try:
        return [int(t) for t in os.listdir(f"/proc/{pid}/task")]
    except OSError:
        return []


def apply(pids: Sequence[int], condition: str, stop_timeout_s: float = 5.0) -> None:
    """Put every thread of `pids` in `condition` (one of CONDITIONS); processes that have exited are skipped.

    SIGSTOP is delivered asynchronously, so `frozen` returns only once every process reports itself stopped.

    Raises:
        TimeoutError: a process still runs `stop_timeout_s` after SIGSTOP.
    """
    if condition not in CONDITIONS:
        raise ValueError(f"unknown condition {condition!r}; valid: {list(CONDITIONS)}")
    for pid in pids:
        ray_worker = condition == "mainidle" and _is_ray_worker(pid)
        for tid in _threads(pid):
            try:
                if condition == "idle" or (ray_worker and tid == pid):
                    os.sched_setscheduler(tid, os.SCHED_IDLE, os.sched_param(0))
                else:
                    os.sched_setscheduler(tid, os.SCHED_OTHER, os.sched_param(0))
                    os.setpriority(os.PRIO_PROCESS, tid, 19 if condition == "nice19" else 0)
            except ProcessLookupError:
                continue
        try:
            os.kill(pid, signal.SIGSTOP if condition == "frozen" else signal.SIGCONT)
        except ProcessLookupError:
            continue
    if condition == "frozen":
        _wait_stopped(pids, stop_timeout_s)


def _wait_stopped(pids: Sequence[int], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    for pid in pids:
        while True:
            try:
                if _stat_fields(pid)[0] in "TtZX":
                    break
            except OSError:
                break  # exited
            if time.monotonic() > deadline:
                raise TimeoutError(f"process {pid} did not stop within {timeout_s} s of SIGSTOP")
            time.sleep(0.005)


def cpu_seconds(pids: Sequence[int]) -> float:
    """User + system CPU seconds the processes have used so far."""
    ticks = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass(frozen=True, slots=True)
class Summary:
    """One condition over all rounds.

    Attributes:
        condition: its name.
        mean_ms / median_ms: ms per generated token.
        geomean / low / high: geometric mean, minimum and maximum of the per-round ratios to the base condition.
        app_cpu: the app's CPU use while this condition decoded, in cores (mean over rounds).
    """

    condition: str
    mean_ms: float
    median_ms: float
    geomean: float
    low: float
    high: float
    app_cpu: float


def summarise(ms: dict[str, list[float]], app_cpu: dict[str, list[float]], base: str = "frozen") -> list[Summary]:
    """Per condition, with ratios to `base` paired by round (round i of each list)."""
    out = []
    for condition, values in ms.items():
        ratios = [v / b for v, b in zip(values, ms[base], strict=True)]
        out.append(Summary(condition, mean(values), median(values), geometric_mean(ratios), min(ratios), max(ratios),
                           mean(app_cpu[condition])))
    return out


def table(rows: Sequence[Summary], base: str = "frozen") -> str:
    """A markdown table of `summarise`'s rows."""
    lines = [f"| app's processes | ms/token mean | median | ÷ {base} (geomean [min–max]) | app's CPU (cores) |",
             "|---|---|---|---|---|"]
    lines += [f"| {r.condition} | {r.mean_ms:.1f} | {r.median_ms:.1f} | **{r.geomean:.3f}** [{r.low:.2f}–{r.high:.2f}] "
              f"| {r.app_cpu:.3f} |" for r in rows]
    return "\n".join(lines)


async def measure(overrides: Sequence[str], conditions: Sequence[str], rounds: int, tokens: int, seed: int,
                  marker: str) -> list[Summary]:
    """Load the target, find the app, run the rounds; the app is left `running` however it ends."""
    backend = create_backend(load_config(overrides=overrides).target)
    params = [SamplingParams(max_tokens=tokens, temperature=0.0)]
    ms: dict[str, list[float]] = {c: [] for c in conditions}
    app_cpu: dict[str, list[float]] = {c: [] for c in conditions}
    try:
        await backend.generate([PROMPT], [SamplingParams(max_tokens=8, temperature=0.0)])  # warm-up
        pids = app_processes(marker)
        rng = random.Random(seed)
        try:
            for r in range(rounds):
                order = list(conditions)
                rng.shuffle(order)
                for condition in order:
                    apply(pids, condition)
                    await asyncio.sleep(2.0)  # let the app settle into the condition
                    cpu0, t0 = cpu_seconds(pids), time.perf_counter()
                    (gen,) = await backend.generate([PROMPT], params)
                    seconds = time.perf_counter() - t0
                    ms[condition].append(1000 * seconds / max(gen.num_tokens, 1))
                    app_cpu[condition].append((cpu_seconds(pids) - cpu0) / seconds)
                    print(f"round {r} {condition:7s} {ms[condition][-1]:7.1f} ms/token ({gen.num_tokens} tokens), "
                          f"app {app_cpu[condition][-1]:.3f} cores", flush=True)
        finally:
            apply(pids, "running")
    finally:
        await backend.close()
    return summarise(ms, app_cpu, base=conditions[0])


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.coresidence", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the app config (e.g. target.backend=vllm)")
    parser.add_argument("--conditions", default=",".join(CONDITIONS),
                        help="comma-separated, the first is the base of the ratios (default: %(default)s)")
    parser.add_argument("--rounds", type=int, default=6)
    parser.add_argument("--tokens", type=int, default=64, help="tokens decoded per measurement")
    parser.add_argument("--seed", type=int, default=0, help="seed of the shuffled order")
    parser.add_argument("--marker", default="specserve up", help="text in the command line of the app's launcher")
    args = parser.parse_args(argv)
    conditions = [c.strip() for c in args.conditions.split(",") if c.strip()]
    unknown = sorted(set(conditions) - set(CONDITIONS))
    if unknown or len(conditions) < 2 or args.rounds < 1 or args.tokens < 1:
        parser.error(f"--conditions: two or more of {list(CONDITIONS)} (unknown: {unknown}); --rounds and --tokens ≥ 1")
    rows = asyncio.run(measure(args.overrides, conditions, args.rounds, args.tokens, args.seed, args.marker))
    print(table(rows, base=conditions[0]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
