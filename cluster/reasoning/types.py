"""Typed records of the reasoning core: step outputs, scores, traces, stop reasons and stats."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from enum import StrEnum
from functools import cache
from typing import Any


class Author(StrEnum):
    """Which model wrote a step."""

    DRAFT = "draft"
    TARGET = "target"


class StepOutcome(StrEnum):
    """What happened to a step.

    ACCEPTED: a draft step the target judged good enough and kept.
    REWRITTEN: a draft step the target rejected; the step in the trace is the target's own.
    TARGET: a step written by the target without a draft (target-only, first-n steps, degraded).
    DRAFT: a step written by the draft and never judged (draft-only).
    """

    ACCEPTED = "accepted"
    REWRITTEN = "rewritten"
    TARGET = "target"
    DRAFT = "draft"


class StopReason(StrEnum):
    """Why a reasoning run ended."""

    ANSWER = "answer"          # a step contained a final answer (\\boxed{} or "Answer:")
    EOS = "eos"                # the model ended its turn
    BUDGET = "budget"          # the total token budget was used up
    REPETITION = "repetition"  # the last two steps were identical
    MAX_STEPS = "max_steps"    # the step cap was reached


class FinishReason(StrEnum):
    """Why one generation call ended."""

    STOP = "stop"      # a stop string was produced (it is not part of the text)
    LENGTH = "length"  # the token limit was reached
    EOS = "eos"        # the model produced its end-of-sequence token


@dataclass(frozen=True, slots=True)
class ChatMessage:
    """One chat message."""

    role: str
    content: str


@dataclass(frozen=True, slots=True)
class StepParams:
    """How one step is generated.

    Attributes:
        max_tokens: token cap of the step.
        temperature: 0 means greedy.
        top_p: nucleus sampling mass.
        seed: RNG seed of this step (None = unseeded).
        delimiter: the step delimiter; generation stops there.
        speculative: use the model's token-level speculation, if it has one (SamplingParams.speculative).
    """

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    seed: int | None = None
    delimiter: str = "\n\n"
    speculative: bool = True


@dataclass(frozen=True, slots=True)
class StepContext:
    """The state a step is generated or judged in: the question and the steps accepted so far."""

    question: str
    steps: tuple[str, ...] = ()
    strategy_hint: str | None = None  # optional per-path hint (parallel paths)
    instruction: str | None = None  # replaces the solve instruction (e.g. SSR's strategy selection)
    sample: int = 0  # which independent sample of this state (parallel paths): offsets the sampling seed


@dataclass(frozen=True, slots=True)
class StepOutput:
    """One generated step.

    Attributes:
        text: the step, without the step delimiter.
        num_tokens: tokens generated for it (including a stop token that was cut off).
        finish_reason: why generation ended.
        latency_s: wall time of the call that produced it (shared by a batch).
        spec_rounds / spec_draft_tokens / spec_accepted_tokens: token-level speculation inside the call
            (ReasoningStats has the definitions; 0 without it).
    """

    text: str
    num_tokens: int
    finish_reason: FinishReason
    latency_s: float = 0.0
    spec_rounds: int = 0
    spec_draft_tokens: int = 0
    spec_accepted_tokens: int = 0


@dataclass(frozen=True, slots=True)
class StepScore:
    """A judge's 0–9 verdict on a candidate step.

    Attributes:
        greedy: the most likely digit (0 when the most likely token is not a digit).
        expected: Σ d·p(d) over digit tokens, p renormalised over digits (0 if no digit seen).
        digit_mass: probability mass the judge put on digit tokens (calibration signal).
        latency_s: wall time of the call that produced it (shared by a batch).
    """

    greedy: int
    expected: float
    digit_mass: float
    latency_s: float = 0.0

    def value(self, method: str) -> float:
        """The score used for thresholding: "greedy" or "expected"."""
        return float(self.greedy) if method == "greedy" else self.expected


@dataclass(frozen=True, slots=True)
class EquivalenceScore:
    """A judge's verdict on whether two steps say the same thing, read from its first answer token.

    Attributes:
        aligned: P(aligned) / (P(aligned) + P(unaligned)) over the top tokens (0 when neither appears).
        answer_mass: probability mass the judge put on either answer (calibration signal).
        latency_s: wall time of the call that produced it (shared by a batch).
    """

    aligned: float
    answer_mass: float
    latency_s: float = 0.0


@dataclass(frozen=True, slots=True)
class VerdictScore:
    """A judge's yes / no verdict on whether a whole solution's final answer is correct, read from its first
    answer token (a process-reward-style P(correct) for Best-of-N).

    Attributes:
        correct: P(yes) / (P(yes) + P(no)) over the top tokens (0 when neither appears).
        answer_mass: probability mass the judge put on either answer (calibration signal).
        latency_s: wall time of the call that produced it (shared by a batch).
    """

    correct: float
    answer_mass: float
    latency_s: float = 0.0


@dataclass(frozen=True, slots=True)
class StepRecord:
    """One step of the trace.

    Attributes:
        index: position of the step in the reasoning (0-based).
        text: the step kept in the reasoning.
        author: who wrote `text`.
        outcome: accepted / rewritten / target / draft.
        score: the judge's score of the draft (None when nothing was judged).
        draft_text: the rejected draft, for rewritten steps.
        num_tokens: tokens of `text`.
        arm: the bandit arm of the round that kept the step (bandit_granularity "step"; else None).
        latency_s: seconds the model call that wrote `text` took where the model runs (inside the replica when
            served, so the request's time per phase minus these is orchestration); shared by a batch.
    """

    index: int
    text: str
    author: Author
    outcome: StepOutcome
    score: float | None = None
    draft_text: str | None = None
    num_tokens: int = 0
    arm: str | None = None
    latency_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        """The step as JSON (the shape of `steps[i]` in responses and benchmark records)."""
        return {**asdict(self), "author": self.author.value, "outcome": self.outcome.value}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> StepRecord:
        """The inverse of `to_dict`; keys it does not know are ignored, absent optional ones take their defaults."""
        known = _known(cls, data)
        return cls(**{**known, "author": Author(data["author"]), "outcome": StepOutcome(data["outcome"])})


def token_acceptance_rate(accepted: int, drafted: int) -> float | None:
    """Token-level acceptance rate = accepted / drafted tokens (None before any drafting)."""
    return accepted / drafted if drafted else None


def mean_acceptance_length(accepted: int, rounds: int) -> float | None:
    """Mean acceptance length = 1 + accepted / verification rounds: tokens kept per target pass, its own
    next token included (None before any round)."""
    return 1 + accepted / rounds if rounds else None


@dataclass(slots=True)
class ReasoningStats:
    """Counters of one reasoning run.

    Derived metrics (definitions):
        acceptance_rate α = steps_accepted / steps_drafted (judged drafts kept by the target).
        target_step_share = target-written steps / all steps.
        token_acceptance_rate = spec_accepted_tokens / spec_draft_tokens (token-level speculation inside
            generation: drafted tokens the verifying model accepted; vLLM's draft acceptance rate).
        mean_acceptance_length = 1 + spec_accepted_tokens / spec_rounds (tokens per verification round,
            the verifier's own correction/bonus token included; vLLM's definition).
    The spec_* counters sum over the steps kept in the trace (None-valued rates without speculation).
    """

    steps_drafted: int = 0
    steps_accepted: int = 0
    steps_rewritten: int = 0
    target_steps: int = 0
    draft_tokens: int = 0
    target_tokens: int = 0
    judge_calls: int = 0
    draft_time_s: float = 0.0
    judge_time_s: float = 0.0
    target_time_s: float = 0.0
    wall_time_s: float = 0.0
    degraded_steps: int = 0  # steps the target wrote because the drafter failed
    degraded_reason: str | None = None
    spec_rounds: int = 0           # token-level verification rounds that checked drafted tokens
    spec_draft_tokens: int = 0     # tokens proposed by token-level drafting
    spec_accepted_tokens: int = 0  # of those, tokens accepted
    samples: int = 0  # reasoning paths run: Best-of-N candidates, SSR paths (0 = one path)
    paths_stopped_early: int = 0  # of those, SSR paths that an early stop ended before they answered

    @property
    def acceptance_rate(self) -> float | None:
        return self.steps_accepted / self.steps_drafted if self.steps_drafted else None

    @property
    def token_acceptance_rate(self) -> float | None:
        return token_acceptance_rate(self.spec_accepted_tokens, self.spec_draft_tokens)

    @property
    def mean_acceptance_length(self) -> float | None:
        return mean_acceptance_length(self.spec_accepted_tokens, self.spec_rounds)

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["acceptance_rate"] = self.acceptance_rate
        data["token_acceptance_rate"] = self.token_acceptance_rate
        data["mean_acceptance_length"] = self.mean_acceptance_length
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ReasoningStats:
        """The inverse of `to_dict`: the derived rates and unknown keys are ignored."""
        return cls(**_known(cls, data))


@dataclass(frozen=True, slots=True)
class Candidate:
    """One candidate solution Best-of-N scored: its extracted answer and its score in [0, 1]."""

    answer: str | None
    score: float

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Candidate:
        return cls(data.get("answer"), float(data["score"]))


@dataclass(frozen=True, slots=True)
class ReasoningResult:
    """What a method returns: the answer, the full reasoning text, the step trace and stats.

    `candidates` (best_of_n only): every scored candidate, in the order the scores arrived (the stopping
    rule's order), so a run of fixed N holds the pool any stopping rule can be replayed on.
    """

    method: str
    answer: str | None
    text: str
    steps: tuple[StepRecord, ...]
    stop_reason: StopReason
    stats: ReasoningStats = field(default_factory=ReasoningStats)
    arm: str | None = None  # the bandit arm whose knobs the request ran with (None = no arm)
    candidates: tuple[Candidate, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        return {
            "method": self.method,
            "answer": self.answer,
            "text": self.text,
            "stop_reason": self.stop_reason.value,
            "steps": [s.to_dict() for s in self.steps],
            "stats": self.stats.to_dict(),
            "arm": self.arm,
            "candidates": [asdict(c) for c in self.candidates],
        }


@cache
def _field_names(cls: type) -> frozenset[str]:
    return frozenset(f.name for f in fields(cls))


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    """The items of `data` that name a field of the dataclass `cls`."""
    names = _field_names(cls)
    return {k: v for k, v in data.items() if k in names}
