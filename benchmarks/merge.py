"""Replace some problems' records of a run with those of a redo run, into a new results folder.

For a run some of whose problems were timed while the machine was disturbed: redo just those problems
(`dataset.select=[…]`, same config otherwise), then merge. The merged meta.json keeps the base run's and
names the redo's command and problems (`redone`), which the report prints.

    python -m benchmarks.merge BASE_DIR REDO_DIR OUT_DIR
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from benchmarks.records import read_meta, read_records, write_meta, write_records


def merge_runs(base: Path, redo: Path, out: Path) -> list[str]:
    """Write `out` (records and meta) = `base` with every (run, problem) record that `redo` has replaced by it.

    Returns:
        The redone problem ids.

    Raises:
        ValueError: the redo holds a (run, problem) the base does not, or `out` already exists.
    """
    if out.exists():
        raise ValueError(f"{out} exists; choose a new folder")
    redone = {(r.run, r.problem_id): r for r in read_records(redo)}
    base_records = read_records(base)
    missing = sorted(set(redone) - {(r.run, r.problem_id) for r in base_records})
    if missing:
        raise ValueError(f"the redo has records the base run lacks: {missing}")
    out.mkdir(parents=True)
    write_records(out, [redone.get((r.run, r.problem_id), r) for r in base_records])
    problems = sorted({pid for _, pid in redone})
    meta = read_meta(base)
    meta["redone"] = {"problems": problems, "command": read_meta(redo).get("command", "?"), "from": str(redo)}
    write_meta(out, meta)
    return problems


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
