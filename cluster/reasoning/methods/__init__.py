"""Reasoning methods, one module each; `get_method` selects one by name."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from cluster.reasoning.methods.baseline import run_draft, run_target
from cluster.reasoning.methods.best_of_n import run_best_of_n
from cluster.reasoning.methods.lookahead import run_lookahead
from cluster.reasoning.methods.specreason import run_specreason
from cluster.reasoning.methods.ssr import run_ssr
from cluster.reasoning.types import ReasoningResult

MethodFn = Callable[..., Awaitable[ReasoningResult]]

METHODS: dict[str, MethodFn] = {
    "target": run_target,
    "draft": run_draft,
    "specreason": run_specreason,
    "lookahead": run_lookahead,
    "best_of_n": run_best_of_n,
    "ssr": run_ssr,
}


def get_method(name: str) -> MethodFn:
    """The method called `name`.

    Raises:
        ValueError: unknown name (the message lists the valid ones).
    """
    try:
        return METHODS[name]
    except KeyError:
        raise ValueError(f"Unknown method {name!r}; valid: {sorted(METHODS)}") from None


__all__ = ["METHODS", "MethodFn", "get_method"]
