"""Join the results folders of one benchmark measured in problem chunks into one folder.

A matrix too long for one sitting (50 problems × many runs on 2 CPU cores) is measured chunk by chunk, each
chunk a run of the same config with its own `dataset.select`, every run of a problem in the same chunk:

    python -m benchmarks.runner CONFIG "dataset.select=[0,…,9]"      (then [10,…,19], …)
    python -m benchmarks.combine OUT_DIR PART_DIR PART_DIR …

A run added later to problems already measured (`only=[…]` on a config that gained a run) joins side by side:
with `--runs`, the parts hold the same problems and different runs, and the joined report compares them all.

    python -m benchmarks.combine --runs OUT_DIR MEASURED_DIR ADDED_DIR

`--only RUN` (repeatable) joins just those runs, from the parts that have them: a run measured on some problems
beside runs that were not measured on the others, or, with `--runs`, one run from each of two parts.

Latencies pooled over parts from different machines are only as comparable as the machines, and so are the
per-problem ratios (speedups) of runs joined with `--runs` from parts measured on different machines: the joined
meta.json lists every part (command, machine, start, problems; a joined part by its own parts), its own `machine`
is null when the parts' CPUs differ, and the report prints the parts and names the problems whose runs cross
machines.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.records import meta_cpu, read_meta, read_records, write_meta, write_records

# What must agree between parts: the same benchmark, only the problems differ. Runs are compared as configured
# (name, knobs, app overrides), not as resolved: a default added to ReasoningParams between parts is no change;
# and as a set: parts may list them in another order (which engine a paired part opens first), and the joined
# report keeps the first part's order.
_SAME = ("mode", "concurrency", "order", "baseline", "compare_to")
_SAME_DATASET = ("name", "size", "seed", "options")
_SAME_RUN = ("name", "knobs", "app_overrides")


def _identity(meta: dict[str, Any], *, with_runs: bool = True) -> dict[str, Any]:
    dataset = meta.get("dataset", {})
    same = {**{k: meta.get(k) for k in _SAME}, **{f"dataset.{k}": dataset.get(k) for k in _SAME_DATASET}}
    if not with_runs:
        return same
    runs = sorted(({k: r.get(k) for k in _SAME_RUN} for r in meta.get("runs", [])), key=lambda r: str(r["name"]))
    return {"runs": runs, **same}


def _parts(part: Path, meta: dict[str, Any], problems: list[str]) -> list[dict[str, Any]]:
    """The joined meta's entries for `part`: the part itself, or, if it is a join, its own parts (so a join of
    joins still names every part's machine), each with the problems it holds among `problems`."""
    inner = meta.get("parts") or [{"dir": str(part), "command": meta.get("command"),
                                   "started_at": meta.get("started_at"), "machine": meta.get("machine"),
                                   "git": meta.get("git"), "status": meta.get("status"), "problems": problems}]
    keep = set(problems)
    entries = [{**p, "problems": [pid for pid in p.get("problems", []) if pid in keep]} for p in inner]
    return [p for p in entries if p["problems"]]


def _only_runs(meta: dict[str, Any], only: Sequence[str], part: Path) -> dict[str, Any]:
    """The meta with just the runs named in `only` that the part has (and their engine groups)."""
    if not any(r.get("name") in only for r in meta.get("runs", [])):
        raise ValueError(f"{part} has none of the runs {', '.join(only)}")
    engines = [{**e, "runs": [r for r in e.get("runs", []) if r in only]} for e in meta.get("engines", [])]
    return {**meta, "runs": [r for r in meta.get("runs", []) if r.get("name") in only],
            "engines": [e for e in engines if e["runs"]]}


def combine_runs(parts: Sequence[Path], out: Path, *, by_runs: bool = False,
                 only: Sequence[str] | None = None) -> list[str]:
    """Write `out` (records and meta) = the records of every part, which must hold disjoint problems of one
    benchmark; or, `by_runs`, the same problems and disjoint runs of it. `only` keeps just those runs, from the
    parts that have them. The joined meta is named after `out` and records the combine command; each part
    keeps its own.

    Returns:
        The joined problem ids, in the dataset's order.

    Raises:
        ValueError: fewer than two parts, parts of different benchmarks (the differing key is named), a problem
            in two parts (`by_runs`: a run in two parts, or parts with other problems), a run of `only` that no
            part has or a part with none of them, or `out` already exists.
    """
    if len(parts) < 2:
        raise ValueError("combine needs at least two parts")
    if out.exists():
        raise ValueError(f"{out} exists; choose a new folder")
    metas = [read_meta(p) for p in parts]
    if only:
        have = {r.get("name") for m in metas for r in m.get("runs", [])}
        if missing := [name for name in only if name not in have]:
            raise ValueError(f"no part has run {', '.join(missing)}")
        metas = [_only_runs(meta, only, part) for part, meta in zip(parts, metas, strict=True)]
    first = _identity(metas[0], with_runs=not by_runs)
    for part, meta in zip(parts[1:], metas[1:], strict=True):
        differ = sorted(k for k, v in _identity(meta, with_runs=not by_runs).items() if v != first[k])
        if differ:
            raise ValueError(f"{part} is not a part of the same benchmark as {parts[0]}: {', '.join(differ)} differ")
    records, owner, measured, entries = [], {}, [], []
    for part, meta in zip(parts, metas, strict=True):
        mine = [r for r in read_records(part) if not only or r.run in only]
        problems = list(dict.fromkeys(r.problem_id for r in mine))
        if by_runs and measured and set(problems) != set(measured[0]):
            raise ValueError(f"{part} measured other problems than {parts[0]}: {problems} vs {measured[0]}")
        for key in dict.fromkeys(r.run for r in mine) if by_runs else problems:
            if key in owner:
                raise ValueError(f"{'run' if by_runs else 'problem'} {key} is in both {owner[key]} and {part}")
            owner[key] = part
        records += mine
        measured.append(problems)
        entries += _parts(part, meta, problems)
    out.mkdir(parents=True)
    write_records(out, records)
    full_order = [pid for m in metas for pid in m.get("dataset", {}).get("problem_ids", [])]
    order = {pid: i for i, pid in enumerate(dict.fromkeys(full_order))}
    problems = sorted({pid for pids in measured for pid in pids}, key=lambda pid: order.get(pid, len(order)))
    options = [*(["--runs"] if by_runs else []), *(f"--only {name}" for name in only or [])]
    command = " ".join(["python -m benchmarks.combine", *options, str(out), *map(str, parts)])
    joined_meta = {k: [x for m in metas for x in m.get(k, [])] for k in ("runs", "engines")} if by_runs else {}
    one_cpu = len({meta_cpu(e) for e in entries}) == 1
    meta = {**metas[0], **joined_meta, "machine": metas[0].get("machine") if one_cpu else None,
            "name": out.name, "command": command, "parts": entries, "records": len(records),
            "errors": sum(m.get("errors") or 0 for m in metas),
            "status": "complete" if all(m.get("status") == "complete" for m in metas) else "incomplete parts",
            "dataset": {**metas[0].get("dataset", {}), "problem_ids": problems, "select": None}}
    write_meta(out, meta)
    return problems


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.combine", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("out", type=Path, help="new folder for the joined records and meta")
    parser.add_argument("parts", type=Path, nargs="+", help="the chunks' results folders")
    parser.add_argument("--runs", action="store_true",
                        help="the parts hold the same problems and different runs: join them side by side")
    parser.add_argument("--only", action="append", metavar="RUN",
                        help="join only this run, from the parts that have it (repeatable; default: every run)")
    args = parser.parse_args(argv)
    problems = combine_runs(args.parts, args.out, by_runs=args.runs, only=args.only)
    print(f"{args.out}: {len(problems)} problems from {len(args.parts)} parts; "
          f"render with `python -m benchmarks.report {args.out}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
