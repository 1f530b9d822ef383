"""Reading judge verdicts from a next-token distribution: SpecReason's 0–9 score (greedy and average) and
Lookahead Reasoning's aligned / unaligned equivalence answer."""

from __future__ import annotations

from collections.abc import Sequence

from cluster.reasoning.types import EquivalenceScore, StepScore


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


def _answer_of(token: str) -> str | None:
    """Which judge answer a token begins ("aligned" / "unaligned"), or None."""
    t = token.strip().strip("[]").lower()
    for answer in ("aligned", "unaligned"):
        if t and (answer.startswith(t) or t.startswith(answer)):
            return answer
    return None


def equivalence_from_distribution(top: Sequence[tuple[str, float]], latency_s: float = 0.0) -> EquivalenceScore:
    """Turn an equivalence judge's top first answer tokens into an EquivalenceScore.

    A token counts for the answer it begins ("al" → aligned, "un" → unaligned); aligned is
    P(aligned) renormalised over the two answers (0 when neither appears).

    Example:
        >>> equivalence_from_distribution([("aligned", 0.6), ("un", 0.2), ("x", 0.2)]).aligned
        0.75
    """
    mass = {"aligned": 0.0, "unaligned": 0.0}
    for text, prob in top:
        if (answer := _answer_of(text)) is not None:
            mass[answer] += prob
    total = mass["aligned"] + mass["unaligned"]
    return EquivalenceScore(mass["aligned"] / total if total > 0 else 0.0, total, latency_s)
