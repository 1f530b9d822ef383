"""Reading a 0–9 judge score from a next-token distribution (SpecReason's greedy and average scores)."""

from __future__ import annotations

from collections.abc import Sequence

from cluster.reasoning.types import StepScore


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
