"""Bandit-tuned speculation per round (BanditSpec, ALGORITHMS.md §4): an arm for every step of a request.

A per-request bandit learns from one pull per request, so trying every arm once already costs a request on
each, slow arms included. Here the policy chooses before every round (one step; one synchronous cycle for
lookahead arms) and is rewarded with that round's throughput, so a request makes many pulls.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Protocol

from cluster.errors import BackendError, InvalidRequestError
from cluster.reasoning.methods.baseline import single_model_round
from cluster.reasoning.methods.lookahead import lookahead_round
from cluster.reasoning.methods.specreason import specreason_round
from cluster.reasoning.run import ReasoningRun, StepCallback
from cluster.reasoning.types import Author, ReasoningResult, StopReason
from cluster.reasoning.verifiers import build_step_verifier

if TYPE_CHECKING:
    from cluster.config.schema import ReasoningParams
    from cluster.policies.arms import Arm
    from cluster.reasoning.interfaces import Drafter, Verifier
    from cluster.reasoning.verifiers import Embedder, StepVerifier

ROUND_METHODS = frozenset({"target", "draft", "specreason", "lookahead"})


class ArmPolicy(Protocol):
    """Where a request's rounds get their arms and send their outcomes (the Controller, when served)."""

    async def choose(self) -> Arm | None:
        """The arm for the next round (None: the request's own params)."""

    async def observe(self, arm: str, tokens: int, seconds: float) -> None:
        """One round of `arm` kept `tokens` target-equivalent tokens in `seconds`."""


def round_params(params: ReasoningParams, arm: Arm | None) -> ReasoningParams:
    """`params` under the arm's knobs (None: unchanged).

    Raises:
        InvalidRequestError: naming bandit_granularity: the arm runs a method that is not a step method.
    """
    armed = params if arm is None else params.with_overrides(arm.knobs)
    if armed.method not in ROUND_METHODS:
        name = arm.name if arm else None
        raise InvalidRequestError(f"bandit_granularity: 'step' needs arms of step methods {sorted(ROUND_METHODS)}; "
                                  f"arm {name!r} runs {armed.method!r}", field="bandit_granularity")
    return armed


class _Rounds:
    """Runs one round of any step method on a shared run, with each arm's params and step verifier built once."""

    def __init__(self, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                 embedder: Embedder | None) -> None:
        self.drafter, self.verifier, self.params, self.embedder = drafter, verifier, params, embedder
        self._armed: dict[str, tuple[ReasoningParams, StepVerifier | None]] = {}

    def armed(self, arm: Arm | None) -> tuple[ReasoningParams, StepVerifier | None]:
        """The request's params under the arm's knobs, and their step verifier (lookahead arms only).

        Raises:
            InvalidRequestError: the arm is not a step method, or its step verifier cannot be built.
        """
        key = None if arm is None else arm.name
        if key not in self._armed:
            params = round_params(self.params, arm)
            step_verifier = (build_step_verifier(params, self.verifier, self.embedder)
                             if params.method == "lookahead" else None)
            self._armed[key] = (params, step_verifier)
        return self._armed[key]

    async def run(self, run: ReasoningRun, step_verifier: StepVerifier | None) -> StopReason | None:
        method = run.params.method
        if method == "target" or (method == "draft" and run.degraded):
            return await single_model_round(run, self.verifier.target_step, Author.TARGET)
        if method == "draft":
            try:
                return await single_model_round(run, self.drafter.draft_step, Author.DRAFT)
            except BackendError as e:
                run.degrade(e)
                return None
        if method == "specreason":
            return await specreason_round(run, self.drafter, self.verifier)
        assert step_verifier is not None
        return await lookahead_round(run, self.drafter, self.verifier, step_verifier, pipelined=False)


async def run_bandit_rounds(question: str, drafter: Drafter, verifier: Verifier, params: ReasoningParams,
                            on_step: StepCallback | None = None, *, policy: ArmPolicy,
                            embedder: Embedder | None = None) -> ReasoningResult:
    """Before every round ask `policy` for an arm, run the round with the arm's knobs over `params` (a step of
    target / draft / specreason; a synchronous cycle of lookahead, whatever its `lookahead_mode`), then report
    the tokens of the steps it kept and its wall time. Each step records its arm. The stopping rules, budget and
    degradation of the run are shared by all rounds; the result's method is "bandit_rounds".

    Raises:
        InvalidRequestError: an arm that is not a step method (or a lookahead arm whose verifier cannot be built).
    """
    run = ReasoningRun(question, params, on_step)
    rounds = _Rounds(drafter, verifier, params, embedder)
    while True:
        arm = await policy.choose()
        run.params, step_verifier = rounds.armed(arm)
        run.arm = None if arm is None else arm.name
        kept, t0 = len(run.records), time.perf_counter()
        reason = await rounds.run(run, step_verifier)
        if arm is not None:
            await policy.observe(arm.name, sum(r.num_tokens for r in run.records[kept:]), time.perf_counter() - t0)
        if reason is not None:
            return run.finish("bandit_rounds", reason)
