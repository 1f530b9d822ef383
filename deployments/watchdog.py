"""Detects a wedged model engine: a backend call that has run longer than `stall_timeout_s`.

The model deployments run every backend call inside `track()` and call `check()` from Serve's periodic
`check_health`; a failing check makes Serve replace the replica. (An engine that blocks the replica's event
loop altogether fails the health check by its own timeout, `health_check_timeout_s`.)
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Iterator
from contextlib import contextmanager

from cluster.errors import BackendError


class CallWatchdog:
    """Start times of the backend calls in flight.

    Args:
        stall_timeout_s: a call running longer than this means the engine is wedged.
    """

    def __init__(self, stall_timeout_s: float) -> None:
        self.stall_timeout_s = stall_timeout_s
        self._started: dict[int, float] = {}
        self._ids = itertools.count()

    @contextmanager
    def track(self) -> Iterator[None]:
        """Count the block as one backend call in flight."""
        call = next(self._ids)
        self._started[call] = time.monotonic()
        try:
            yield
        finally:
            del self._started[call]

    def check(self) -> None:
        """Raise BackendError when the oldest call in flight has run longer than `stall_timeout_s`."""
        if self._started:
            age = time.monotonic() - min(self._started.values())
            if age > self.stall_timeout_s:
                raise BackendError(f"engine wedged: a backend call has run {age:.0f}s "
                                   f"(stall_timeout_s = {self.stall_timeout_s:g})")
