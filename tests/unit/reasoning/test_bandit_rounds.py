"""Bandit rounds against scripted roles: an arm per round, each round's knobs and reward, learning per step."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from cluster.config.schema import ArmSpec, BanditConfig, ControllerConfig, ReasoningParams
from cluster.errors import InvalidRequestError
from cluster.policies.arms import Arm
from cluster.policies.state import PolicyState
from cluster.reasoning.methods.bandit_rounds import run_bandit_rounds
from cluster.reasoning.types import StepContext, StepOutcome, StepOutput
from tests.fakes import FnDrafter, FnVerifier, step

TARGET = Arm("target-only", {"method": "target"})
SPEC = Arm("spec", {"method": "specreason", "threshold": 5.0})
LOOK = Arm("look", {"method": "lookahead", "lookahead_depth": 2, "step_verifier": "exact", "lookahead_mode": "async"})


class Scripted:
    """Hands out `arms` in order (the last one forever) and records every outcome."""

    def __init__(self, *arms: Arm | None) -> None:
        self.arms, self.seen = list(arms), []

    async def choose(self) -> Arm | None:
        return self.arms.pop(0) if len(self.arms) > 1 else self.arms[0]

    async def observe(self, arm: str, tokens: int, seconds: float) -> None:
        self.seen.append((arm, tokens))


class Local:
    """PolicyState as the arm policy, as the Controller deployment holds it."""

    def __init__(self, *arms: Arm) -> None:
        specs = [ArmSpec(name=a.name, knobs=a.knobs) for a in arms]
        self.state = PolicyState(ControllerConfig(bandit=BanditConfig(arms=specs, radius="heuristic")))

    async def choose(self) -> Arm | None:
        return self.state.choose()

    async def observe(self, arm: str, tokens: int, seconds: float) -> None:
        self.state.observe_throughput(arm, tokens, seconds)


def write(prefix: str, steps: int):
    """Step n after the question is "<prefix> n"; step `steps` states the answer."""
    def fn(ctx: StepContext, *_: Any) -> StepOutput:
        n = len(ctx.steps)
        return step(f"{prefix} so \\boxed{{7}}") if n + 1 >= steps else step(f"{prefix} {n} a b")
    return fn


def run(policy, *, steps: int = 4, drafter=None, verifier=None, **knobs: Any):
    params = ReasoningParams(max_steps=40, **knobs)
    drafter = drafter or FnDrafter(write("draft", steps))
    verifier = verifier or FnVerifier(write("target", steps))
    return asyncio.run(run_bandit_rounds("Q?", drafter, verifier, params, policy=policy)), drafter, verifier


def test_each_round_runs_its_arm_and_reports_the_tokens_it_kept():
    policy = Scripted(TARGET, SPEC, TARGET, SPEC)
    result, drafter, verifier = run(policy)
    assert result.method == "bandit_rounds" and result.answer == "7"
    assert [(s.arm, s.outcome) for s in result.steps] == [
        ("target-only", StepOutcome.TARGET), ("spec", StepOutcome.ACCEPTED),
        ("target-only", StepOutcome.TARGET), ("spec", StepOutcome.ACCEPTED)]
    assert policy.seen == [(s.arm, s.num_tokens) for s in result.steps]
    assert result.stats.steps_drafted == 2 and result.stats.judge_calls == 2 and len(drafter.batches) == 2


def test_a_lookahead_arm_runs_one_synchronous_cycle_per_round():
    same = write("same", 5)  # draft and target write the same steps: exact match keeps every draft
    policy = Scripted(LOOK, TARGET)
    result, _, verifier = run(policy, steps=5, drafter=FnDrafter(same), verifier=FnVerifier(same))
    look = [s for s in result.steps if s.arm == "look"]
    assert [s.outcome for s in look] == [StepOutcome.ACCEPTED, StepOutcome.ACCEPTED, StepOutcome.TARGET]
    assert policy.seen[0] == ("look", sum(s.num_tokens for s in look))  # one reward for the whole cycle
    assert len(verifier.batches[0]) == 3  # the sync cycle's one target batch over γ + 1 prefixes


def test_an_arm_that_is_not_a_step_method_is_refused():
    with pytest.raises(InvalidRequestError) as e:
        run(Scripted(Arm("bon", {"method": "best_of_n", "temperature": 0.7})))
    assert e.value.field == "bandit_granularity"


def test_a_drafter_failure_degrades_the_rest_of_the_request():
    drafter = FnDrafter(write("draft", 4), fail_on=lambda ctx: True)
    result, _, _ = run(Scripted(SPEC), drafter=drafter)
    assert "drafter failed" in result.stats.degraded_reason and result.answer == "7"
    assert all(s.outcome is StepOutcome.TARGET for s in result.steps) and result.stats.degraded_steps == 4


def test_the_bandit_learns_within_one_request():
    fast = FnDrafter(write("draft", 30), delay=lambda ctx: 0.005)  # draft-only rounds take 5 ms,
    slow = FnVerifier(write("target", 30), delay=lambda ctx: 0.05)  # target-only rounds 50 ms
    policy = Local(TARGET, Arm("draft-only", {"method": "draft"}))
    result, _, _ = run(policy, steps=30, drafter=fast, verifier=slow)
    pulls = {name: s.pulls for name, s in policy.state.arm_stats().items()}
    assert sum(pulls.values()) == len(result.steps) == 30
    assert pulls["draft-only"] > 2 * pulls["target-only"]
