"""Bandit arms: named combinations of per-request knobs (BanditSpec's hyperparameter configurations S_i)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm: a name and the request knobs it sets.

    `knobs` are overrides of the request's `ReasoningParams` (e.g. {"method": "specreason",
    "threshold": 7.0}); the controller applies them with `ReasoningParams.with_overrides`, so the
    schema validates every knob. Treat `knobs` as read-only. Arms hash by name.
    """

    name: str
    knobs: dict[str, Any] = field(default_factory=dict, hash=False)

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "knobs": dict(self.knobs)}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Arm:
        return cls(str(data["name"]), dict(data.get("knobs", {})))


NO_SPECULATION = Arm("no-speculation", {"method": "target"})
"""The target writes every step: the baseline any speculation arm has to beat."""


def check_arms(arms: Sequence[Arm]) -> tuple[Arm, ...]:
    """The arms as a tuple, after checking there is at least one and the names are unique.

    Raises:
        ValueError: no arms, or a duplicate name.
    """
    if not arms:
        raise ValueError("a bandit needs at least one arm")
    names = [a.name for a in arms]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"duplicate arm names: {duplicates}")
    return tuple(arms)
