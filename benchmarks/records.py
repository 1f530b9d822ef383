"""Benchmark records: one JSON line per problem × run, plus the run folder's meta.json.

A record holds everything the report recomputes from: the run and its knobs, the problem, the
expected and predicted answers, the client-side latency, the engine's full stats and the step
trace (author, outcome, judge score, tokens and text of every step).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TextIO

from cluster.reasoning.types import Candidate, ReasoningStats, StepRecord

SCHEMA_VERSION = 1
RECORDS_FILE = "records.jsonl"
META_FILE = "meta.json"


@dataclass(frozen=True, slots=True)
class ProblemRecord:
    """The outcome of one run on one problem.

    Attributes:
        run: run name.
        knobs: the run's request knobs, as configured.
        problem_id / question / expected: the problem.
        predicted: the engine's extracted answer (None when it gave none or the request failed).
        correct: `answers_match(predicted, expected)`; False for failed requests.
        latency_s: wall time of the request as the runner saw it (client side, includes HTTP in served mode).
        seq: position of the request in the planned order.
        started_s: start of the request, seconds after the benchmark started.
        error: "<ExceptionType>: message" for a failed request, else None.
        method / stop_reason / text: from the result.
        arm: the controller's bandit arm the request ran with (served, with arms configured), else None.
        stats: the engine's ReasoningStats (None for a failed request).
        steps: the step trace.
        candidates: best_of_n's scored candidates (answer, score), in scoring order; () for other methods.
    """

    run: str
    knobs: dict[str, Any]
    problem_id: str
    question: str
    expected: str
    predicted: str | None
    correct: bool
    latency_s: float
    seq: int
    started_s: float
    error: str | None = None
    method: str | None = None
    arm: str | None = None
    stop_reason: str | None = None
    text: str | None = None
    stats: ReasoningStats | None = None
    steps: tuple[StepRecord, ...] = ()
    candidates: tuple[Candidate, ...] = ()

    @property
    def ok(self) -> bool:
        return self.error is None

    def to_json(self) -> dict[str, Any]:
        data = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("stats", "steps", "candidates")}
        data["stats"] = None if self.stats is None else self.stats.to_dict()
        data["steps"] = [s.to_dict() for s in self.steps]
        data["candidates"] = [{"answer": c.answer, "score": c.score} for c in self.candidates]
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ProblemRecord:
        stats = data.get("stats")
        return cls(
            run=data["run"], knobs=dict(data.get("knobs") or {}), problem_id=str(data["problem_id"]),
            question=data.get("question", ""), expected=str(data["expected"]), predicted=data.get("predicted"),
            correct=bool(data["correct"]), latency_s=float(data["latency_s"]), seq=int(data.get("seq", 0)),
            started_s=float(data.get("started_s", 0.0)), error=data.get("error"), method=data.get("method"),
            arm=data.get("arm"), stop_reason=data.get("stop_reason"), text=data.get("text"),
            stats=None if stats is None else ReasoningStats.from_dict(stats),
            steps=tuple(StepRecord.from_dict(s) for s in data.get("steps") or ()),
            candidates=tuple(Candidate.from_dict(c) for c in data.get("candidates") or ()),
        )


class RecordWriter:
    """Appends records to records.jsonl, one flushed line each, so a crashed run keeps what it measured."""

    def __init__(self, run_dir: Path) -> None:
        self.path = run_dir / RECORDS_FILE
        self._file: TextIO = self.path.open("a", encoding="utf-8")

    def write(self, record: ProblemRecord) -> None:
        self._file.write(json.dumps(record.to_json(), ensure_ascii=False) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()


def write_records(run_dir: Path, records: Iterable[ProblemRecord]) -> None:
    """Append `records` to the records.jsonl of `run_dir`."""
    writer = RecordWriter(run_dir)
    try:
        for record in records:
            writer.write(record)
    finally:
        writer.close()


def read_records(run_dir: Path) -> list[ProblemRecord]:
    """Every record of a run folder, in file (completion) order.

    Raises:
        FileNotFoundError: no records.jsonl in `run_dir`.
        ValueError: a line that is not a record (names the line number).
    """
    records = []
    with (run_dir / RECORDS_FILE).open(encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                records.append(ProblemRecord.from_json(json.loads(line)))
            except (KeyError, TypeError, ValueError) as e:
                raise ValueError(f"{run_dir / RECORDS_FILE}:{n}: not a benchmark record ({e})") from e
    return records


def write_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    """Write meta.json atomically (a temp file renamed over the old one)."""
    tmp = run_dir / (META_FILE + ".tmp")
    tmp.write_text(json.dumps(meta, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    tmp.replace(run_dir / META_FILE)


def read_meta(run_dir: Path) -> dict[str, Any]:
    """meta.json of a run folder, or {} when there is none (records alone still render)."""
    path = run_dir / META_FILE
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def meta_cpu(meta: dict[str, Any]) -> str:
    """The CPU a run (or a joined meta's part) ran on, "?" when not recorded."""
    return str((meta.get("machine") or {}).get("cpu", "?"))
