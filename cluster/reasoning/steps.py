"""Step boundaries, answer extraction and answer comparison."""

from __future__ import annotations

import re
from collections.abc import Sequence

ANSWER_MARKERS = ("boxed", "Answer:", "ANSWER:")
_ANSWER_LINE = re.compile(r"(?:Answer|ANSWER)\s*:\s*(.+)")
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def join_steps(steps: Sequence[str], delimiter: str) -> str:
    """The reasoning text: steps joined by the delimiter."""
    return delimiter.join(steps)


def continuation_prefix(steps: Sequence[str], delimiter: str) -> str:
    """The assistant text a next step continues: the steps so far, each followed by the delimiter."""
    return "".join(s + delimiter for s in steps)


def has_answer(step: str) -> bool:
    """A step that states a final answer ends the reasoning (SpecReason's finish rule)."""
    return any(marker in step for marker in ANSWER_MARKERS)


def _last_boxed(text: str) -> str | None:
    start = text.rfind("\\boxed")
    if start < 0:
        return None
    i = text.find("{", start)
    if i < 0:
        return None
    depth = 0
    for j in range(i, len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return text[i + 1 : j]
    return None


def extract_answer(text: str) -> str | None:
    """The final answer: the last \\boxed{...} (nested braces allowed), else the last "Answer: ..." line.

    Example:
        >>> extract_answer("so 3+4=7.\\n\\nThe answer is \\\\boxed{7}.")
        '7'
    """
    boxed = _last_boxed(text)
    if boxed is not None:
        return boxed.strip()
    lines = _ANSWER_LINE.findall(text)
    if lines:
        return lines[-1].strip().rstrip(".").strip("$ ")
    return None


def normalize_answer(answer: str) -> str:
    """Canonical form for comparison: a number without separators or trailing zeros, else lowercase text."""
    cleaned = answer.replace("\\$", "").replace("$", "").replace("\\%", "").replace("%", "").strip()
    cleaned = re.sub(r"\\text\{([^}]*)\}", r"\1", cleaned)
    numbers = _NUMBER.findall(cleaned)
    if len(numbers) == 1:
        value = numbers[0].replace(",", "")
        if "." in value:
            value = value.rstrip("0").rstrip(".")
        return value
    return " ".join(cleaned.lower().split())


def answer_groups(answers: Sequence[str | None]) -> dict[str, list[int]]:
    """Indices of `answers` grouped by normalised answer, groups in order of first appearance; None is left out.

    Example:
        ["7", None, "7.0", "9"] → {"7": [0, 2], "9": [3]}
    """
    groups: dict[str, list[int]] = {}
    for i, answer in enumerate(answers):
        if answer is not None:
            groups.setdefault(normalize_answer(answer), []).append(i)
    return groups


def answers_match(predicted: str | None, expected: str) -> bool:
    """Whether a predicted answer equals the expected one (numerically when both are numbers)."""
    if predicted is None:
        return False
    a, b = normalize_answer(predicted), normalize_answer(expected)
    try:
        return abs(float(a) - float(b)) < 1e-6
    except ValueError:
        return a == b
