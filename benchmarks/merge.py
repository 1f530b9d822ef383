"""Replace some problems' records of a run with those of a redo run, or add those it lacks, into a new folder.

For a run some of whose problems were timed while the machine was disturbed: redo just those problems
(`dataset.select=[…]`, same config otherwise), then merge. For a run cut short: redo the requests it did not
send (`dataset.select=[…]`, `only=[…]`), then merge; a record the base lacks is added when its run and problem
are among the base's configured ones. The redo's records of problems the base was not configured for are left
out, so one redo can fill in several chunks. The merged meta.json keeps the base run's and names the redo's command,
problems and added records (`redone`), which the report prints; its status is the base's, or "complete" once
every configured run has every problem (the base's status is kept in `redone`).

    python -m benchmarks.merge BASE_DIR REDO_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from benchmarks.records import read_meta, read_records, write_meta, write_records


def merge_runs(base: Path, redo: Path, out: Path) -> list[str]:
    """Write `out` (records and meta) = `base` with every (run, problem) record that `redo` has replaced by it,
    and the redo's records of configured (run, problem)s the base lacks appended; the redo's records of problems
    the base was not configured for are left out.

    Returns:
        The redone problem ids.

    Raises:
        ValueError: the redo holds no record of the base's problems, or one for a run the base lacks and was not
            configured for, or `out` already exists.
    """
    if out.exists():
        raise ValueError(f"{out} exists; choose a new folder")
    meta = read_meta(base)
    base_records = read_records(base)
    planned, have = _planned(meta), {(r.run, r.problem_id) for r in base_records}
    configured = set(meta.get("dataset", {}).get("problem_ids", [])) or {pid for _, pid in have}
    redone = {(r.run, r.problem_id): r for r in read_records(redo) if r.problem_id in configured}
    if not redone:
        raise ValueError(f"the redo {redo} has no records of the base run's problems")
    added = [key for key in redone if key not in have]
    unknown = sorted(key for key in added if key not in planned)
    if unknown:
        raise ValueError(f"the redo has records the base run lacks and was not configured for: {unknown}")
    records = [redone.get((r.run, r.problem_id), r) for r in base_records] + [redone[key] for key in added]
    out.mkdir(parents=True)
    write_records(out, records)
    problems = sorted({pid for _, pid in redone})
    meta["redone"] = {"problems": problems, "added": [f"{run} on {pid}" for run, pid in added],
                      "base_status": meta.get("status"), "command": read_meta(redo).get("command", "?"),
                      "from": str(redo)}
    meta["records"], meta["errors"] = len(records), sum(not r.ok for r in records)
    if planned and planned <= {(r.run, r.problem_id) for r in records}:
        meta["status"] = "complete"
    write_meta(out, meta)
    return problems


def _planned(meta: dict[str, Any]) -> set[tuple[str, str]]:
    """Every (run, problem) the base run was configured to send (empty when its meta does not say)."""
    runs = [r["name"] for r in meta.get("runs", [])]
    return {(run, pid) for run in runs for pid in meta.get("dataset", {}).get("problem_ids", [])}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.merge", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("base", type=Path, help="the full run's results folder")
    parser.add_argument("redo", type=Path, help="the redo's results folder")
    parser.add_argument("out", type=Path, help="new folder for the merged records and meta")
    args = parser.parse_args(argv)
    problems = merge_runs(args.base, args.redo, args.out)
    print(f"{args.out}: {len(problems)} problems redone ({', '.join(problems)}); "
          f"render with `python -m benchmarks.report {args.out}`")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
