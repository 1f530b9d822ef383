"""SSR against scripted roles: strategy selection, lockstep batches, early stops and aggregation.

Layout: the selection reply names strategies "B, A, B"; each path's draft answers with a per-hint answer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from pydantic import ValidationError

from cluster.config.schema import ReasoningParams
from cluster.reasoning.methods import get_method
from cluster.reasoning.strategies import MATH_POOL
from cluster.reasoning.types import StepContext, StepOutput
from tests.fakes import FnDrafter, FnVerifier, step

HINT_A, HINT_B = MATH_POOL[0], MATH_POOL[1]


def target(ctx: StepContext) -> StepOutput:
    return step("B, A, B") if ctx.instruction is not None else step("target says \\boxed{5}")


def params(**ssr: Any) -> ReasoningParams:
    return ReasoningParams(method="ssr", max_steps=3, ssr={"k": 3, **ssr})


def run(p: ReasoningParams, answers: dict[str | None, str], score: float = 9.0):
    def draft(ctx: StepContext, k: int) -> StepOutput:
        return step(f"so \\boxed{{{answers[ctx.strategy_hint]}}}") if ctx.steps else step("think")
    drafter, verifier = FnDrafter(draft), FnVerifier(target, score=lambda ctx, cand: score)
    return asyncio.run(get_method("ssr")("Q?", drafter, verifier, p)), drafter, verifier


def test_paths_follow_the_selection_and_majority_wins():
    result, drafter, verifier = run(params(), {HINT_A: "7", HINT_B: "9"})
    assert result.method == "ssr" and result.answer == "9" and result.stats.samples == 3
    assert result.stats.paths_stopped_early == 0
    assert [c.strategy_hint for c in drafter.batches[0]] == [HINT_B, HINT_A, HINT_B]
    assert all(len(b) == 3 for b in drafter.batches) and all(len(b) == 3 for b in verifier.score_calls)


def test_first_answer_stops_the_rest():
    def draft(ctx: StepContext, k: int) -> StepOutput:  # path A answers at once, B paths think first
        return step("\\boxed{7}") if ctx.strategy_hint == HINT_A or ctx.steps else step("think")
    drafter, verifier = FnDrafter(draft), FnVerifier(target)
    stopped = asyncio.run(get_method("ssr")("Q?", drafter, verifier, params(early_stop="first_answer")))
    assert len(drafter.batches) == 1 and stopped.answer == "7" and stopped.stats.samples == 3
    assert stopped.stats.paths_stopped_early == 2
    drafter = FnDrafter(draft)
    agreed = asyncio.run(get_method("ssr")("Q?", drafter, FnVerifier(target), params(early_stop="two_agree")))
    assert [len(b) for b in drafter.batches] == [3, 2] and agreed.stats.paths_stopped_early == 0


def test_rejected_drafts_are_rewritten_in_one_target_batch():
    result, _, verifier = run(params(), {HINT_A: "7", HINT_B: "9"}, score=1.0)
    assert result.answer == "5" and result.stats.steps_rewritten == 3
    assert [len(b) for b in verifier.batches] == [1, 3]  # selection, then one batch for all paths


def test_a_drafter_failure_turns_every_path_target_only():
    def draft(ctx: StepContext, k: int) -> StepOutput:
        return step("think")
    drafter = FnDrafter(draft, fail_on=lambda ctx: bool(ctx.steps))  # the second round's drafts fail
    result = asyncio.run(get_method("ssr")("Q?", drafter, FnVerifier(target), params()))
    assert result.answer == "5" and "drafter failed" in result.stats.degraded_reason
    assert result.stats.steps_accepted == 3 and result.stats.degraded_steps == 3  # one target step per path
    assert len(drafter.batches) == 2


def test_unparseable_selection_pads_with_the_fallback():
    def draft(ctx: StepContext, k: int) -> StepOutput:
        return step("\\boxed{1}")
    verifier = FnVerifier(lambda ctx: step("no idea") if ctx.instruction is not None else step("x"))
    drafter = FnDrafter(draft)
    asyncio.run(get_method("ssr")("Q?", drafter, verifier, params(k=2)))
    assert [c.strategy_hint for c in drafter.batches[0]] == [None, None]


def test_unguided_paths_skip_the_selection_and_differ_only_by_their_samples():
    p = ReasoningParams(method="ssr", max_steps=3, temperature=0.7, ssr={"k": 3, "guided": False})
    result, drafter, verifier = run(p, {None: "4"})
    assert result.answer == "4" and result.stats.samples == 3
    assert verifier.batches == []  # no selection call; every draft accepted
    assert [(c.strategy_hint, c.sample) for c in drafter.batches[0]] == [(None, 0), (None, 1), (None, 2)]


def test_guided_paths_with_a_repeated_strategy_are_different_samples():
    _, drafter, _ = run(params(), {HINT_A: "7", HINT_B: "9"})
    assert [c.sample for c in drafter.batches[0]] == [0, 1, 2]


def test_unguided_greedy_paths_are_refused():
    with pytest.raises(ValidationError, match="unguided ssr paths need temperature > 0"):
        ReasoningParams(method="ssr", ssr={"guided": False})
