"""Reading judge verdicts from a next-token distribution: SpecReason's 0–9 score (greedy and average),
Lookahead Reasoning's aligned / unaligned equivalence answer and Best-of-N's yes / no solution verdict."""

from __future__ import annotations

from collections.abc import Sequence

from cluster.reasoning.types import EquivalenceScore, StepScore, VerdictScore


def score_from_distribution(top: Sequence[tuple[str, float]], latency_s: float = 0.0) -> StepScore:
    """Turn the judge's top next tokens into a StepScore.

    greedy: the most likely token as a digit, 0 when it is not a digit.
    expected: Σ d·p(d) over the digit tokens among `top`, with p renormalised over those digits
    (0 when no digit appears).

    Example:
        >>> score_from_distribution([("9", 0.6), ("8", 0.3), ("x", 0.1)]).expected
        8.666666666666666
    """
    digits: dict[int, float] = {}
    for text, prob in top:
        t = text.strip()
        if len(t) == 1 and t.isdigit():
            digits[int(t)] = digits.get(int(t), 0.0) + prob
    first = top[0][0].strip() if top else ""
    greedy = int(first) if len(first) == 1 and first.isdigit() else 0
    mass = sum(digits.values())
    expected = sum(d * p for d, p in digits.items()) / mass if mass > 0 else 0.0
    return StepScore(greedy=greedy, expected=expected, digit_mass=mass, latency_s=latency_s)


def _answer_of(token: str, answers: tuple[str, str]) -> str | None:
    """Which of `answers` a token begins ("un" → "unaligned", "Yes" → "yes"), or None."""
    t = token.strip().strip("[]").lower()
    for answer in answers:
        if t and (answer.startswith(t) or t.startswith(answer)):
            return answer
    return None


def _two_way(top: Sequence[tuple[str, float]], answers: tuple[str, str]) -> tuple[float, float]:
    """(P(first answer) renormalised over the two, their total mass) from the judge's top first tokens."""
    mass = dict.fromkeys(answers, 0.0)
    for text, prob in top:
        if (answer := _answer_of(text, answers)) is not None:
            mass[answer] += prob
    total = mass[answers[0]] + mass[answers[1]]
    return (mass[answers[0]] / total if total > 0 else 0.0), total


def equivalence_from_distribution(top: Sequence[tuple[str, float]], latency_s: float = 0.0) -> EquivalenceScore:
    """Turn an equivalence judge's top first answer tokens into an EquivalenceScore.

    A token counts for the answer it begins ("al" → aligned, "un" → unaligned); aligned is
    P(aligned) renormalised over the two answers (0 when neither appears).

    Example:
        >>> equivalence_from_distribution([("aligned", 0.375), ("un", 0.125), ("x", 0.5)]).aligned
        0.75
    """
    aligned, total = _two_way(top, ("aligned", "unaligned"))
    return EquivalenceScore(aligned, total, latency_s)


def verdict_from_distribution(top: Sequence[tuple[str, float]], latency_s: float = 0.0) -> VerdictScore:
    """Turn a solution judge's top first answer tokens into a VerdictScore: P(yes) renormalised over yes / no
    (a token counts for the answer it begins or extends, case and spaces ignored: "Y", " yes", "No."; 0 when
    neither appears).

    Example:
        >>> verdict_from_distribution([("Yes", 0.5), (" yes", 0.25), ("No", 0.125), ("The", 0.125)]).correct
        0.8571428571428571
    """
    correct, total = _two_way(top, ("yes", "no"))
    return VerdictScore(correct, total, latency_s)
