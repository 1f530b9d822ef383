"""SSR's Selective Parallel Module: a pool of solution strategies and the target's pick of the k best."""

from __future__ import annotations

import re
import string
from collections.abc import Sequence
from dataclasses import dataclass

from cluster.reasoning.types import ChatMessage, StepContext

MATH_POOL: tuple[str, ...] = (
    "Simplify and transform the expressions algebraically before computing anything.",
    "Look for a clever substitution or change of variables that makes the structure obvious.",
    "Place the figure in a coordinate system and compute with coordinates.",
    "Represent points as complex numbers and use their algebra for the geometry.",
    "Use number theory: divisibility, primes, modular arithmetic and parity.",
    "Count systematically: bijections, complementary counting, inclusion-exclusion.",
    "Model the probability carefully: sample space, conditioning, symmetry, linearity of expectation.",
    "Treat it as a functional equation: substitute special values and derive properties.",
    "Find a recursion, an invariant or a monovariant, and argue by induction.",
    "Use synthetic Euclidean geometry: similar triangles, angle chasing, power of a point.",
    "Split the problem into cases and settle each case separately.",
    "Use calculus or classical inequalities (AM-GM, Cauchy-Schwarz) to bound or optimise.",
)
"""The default pool for math (SSR's A–L topics, in our own words); the fallback "unknown" comes after."""

_CODE = re.compile(r"\b([A-Z])\b")


@dataclass(frozen=True, slots=True)
class Strategy:
    """One strategy: its letter and the "Tips:" hint a path gets (None for the fallback: no hint)."""

    code: str
    hint: str | None


class StrategyPool:
    """Strategies lettered A, B, … in order, plus a fallback ("unknown", no hint) with the next letter.

    Raises:
        ValueError: an empty pool or more than 25 strategies (the letters run out).
    """

    def __init__(self, hints: Sequence[str] = MATH_POOL) -> None:
        if not 1 <= len(hints) <= 25:
            raise ValueError(f"a strategy pool needs 1 to 25 strategies, got {len(hints)}")
        letters = string.ascii_uppercase
        self.strategies = tuple(Strategy(letters[i], h) for i, h in enumerate(hints))
        self.fallback = Strategy(letters[len(hints)], None)
        self._by_code = {s.code: s for s in (*self.strategies, self.fallback)}

    def selection_prompt(self, question: str, k: int) -> tuple[list[ChatMessage], str]:
        """Messages and assistant prefill that make the target name the k most promising strategies.

        The prefill ends where the codes begin, so a short greedy reply ("B, E, F") is all it takes
        (max_tokens ≈ 2k).
        """
        menu = "\n".join(f"{s.code}. {s.hint}" for s in self.strategies)
        menu += f"\n{self.fallback.code}. None of these fits / unknown."
        user = (f"{question.strip()}\n\nDo not solve the problem yet. Here are methods that could solve it:\n"
                f"{menu}\n\nChoose the {k} methods most likely to lead to a correct solution. "
                f"Reply with their letters only, separated by commas; a letter may repeat.")
        return [ChatMessage("user", user)], f"The {k} most promising methods are: "

    def selection_context(self, question: str, k: int) -> StepContext:
        """The selection as a step context for `Verifier.target_steps`: the menu replaces the solve instruction
        and there is no prefill (the reply is read from its first line; generate with delimiter "\\n")."""
        messages, prefill = self.selection_prompt(question, k)
        instruction = messages[0].content[len(question.strip()):].strip()
        return StepContext(question, instruction=f"{instruction} Begin your reply with: {prefill.strip()}")

    def parse_selection(self, reply: str, k: int) -> list[Strategy]:
        """The first k strategy letters on the reply's first line, padded with the fallback.

        Only standalone capital letters that name a strategy count; repeats are kept (two paths, one hint).

        Example:
            >>> [s.code for s in StrategyPool().parse_selection("B, E, B.", 4)]
            ['B', 'E', 'B', 'M']
        """
        first_line = reply.strip().split("\n", 1)[0]
        codes = [c for c in _CODE.findall(first_line) if c in self._by_code][:k]
        return [self._by_code[c] for c in codes] + [self.fallback] * (k - len(codes))
