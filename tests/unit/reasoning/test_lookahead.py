"""Lookahead reasoning against context-scripted drafters and targets, in its sync and async forms.

The scripted models write by position: after n steps the draft writes DRAFT[n] and the target TARGET[n],
whatever the steps say. With the exact-match verifier, a draft is kept iff it equals the target's step at
its position after normalisation (case and whitespace).
"""

from __future__ import annotations

import asyncio
import time

import pytest

from cluster.config.schema import ReasoningParams
from cluster.errors import InvalidRequestError
from cluster.reasoning.methods import get_method
from cluster.reasoning.types import Author, FinishReason, StepOutcome, StopReason
from tests.fakes import BagOfWordsEmbedder, FnDrafter, FnVerifier, step

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
A, B, B_SAME, B_OTHER = "Tom has 3 apples.", "He buys 4 more.", "he  buys 4 MORE.", "He buys 5 more."
C, C_WRONG = "So he has 7 apples.", "So he has 8 apples."
ANSWER, WRONG_ANSWER = "The answer is \\boxed{7}.", "The answer is \\boxed{8}."
SLOW_S = 30.0  # work that must be cancelled, never awaited: a test that waited on it would take this long
MODES = pytest.mark.parametrize("mode", ["sync", "async"])


def by_position(plan: list[str], finish: FinishReason = FinishReason.STOP):
    return lambda ctx, *_: step(plan[min(len(ctx.steps), len(plan) - 1)], finish=finish)


def params(mode: str, **kw) -> ReasoningParams:
    kw.setdefault("step_verifier", "exact")
    return ReasoningParams(method="lookahead", lookahead_mode=mode, **kw)


async def lookahead(drafter, verifier, p: ReasoningParams, **kw):
    return await get_method("lookahead")(QUESTION, drafter, verifier, p, **kw)


def finished_tokens(events, plan) -> int:
    """Tokens of every step a scripted model finished writing (its "done" events)."""
    return sum(len(plan[min(len(s), len(plan) - 1)].split()) for e, s in events if e == "done")


def speculative_tasks() -> list[asyncio.Task]:
    return [t for t in asyncio.all_tasks() if "_AsyncTree" in t.get_coro().__qualname__]


@MODES
async def test_keeps_the_longest_equivalent_prefix_then_the_targets_step(mode):
    """γ=3. Drafts A, B, C_WRONG: A and B match the target (B up to case/space), C_WRONG does not, so the
    trace is A, B (drafts kept), then the target's C in place of C_WRONG; then WRONG_ANSWER loses to ANSWER."""
    drafter = FnDrafter(by_position([A, B, C_WRONG, WRONG_ANSWER]))
    plan = [A, B_SAME, C, ANSWER]
    verifier = FnVerifier(by_position(plan))
    result = await lookahead(drafter, verifier, params(mode, lookahead_depth=3))
    assert [(s.text, s.outcome) for s in result.steps] == [
        (A, StepOutcome.ACCEPTED), (B, StepOutcome.ACCEPTED), (C, StepOutcome.REWRITTEN),
        (ANSWER, StepOutcome.REWRITTEN)]
    assert result.steps[2].draft_text == C_WRONG and result.steps[2].author is Author.TARGET
    assert result.answer == "7" and result.stop_reason is StopReason.ANSWER
    stats = result.stats
    assert (stats.steps_drafted, stats.steps_accepted, stats.steps_rewritten) == (4, 2, 2)
    assert stats.acceptance_rate == 0.5 and stats.judge_calls == 0  # exact match consults no model
    # every step either model finished is counted once, kept or not
    assert stats.target_tokens == finished_tokens(verifier.events, plan)
    assert stats.draft_tokens == finished_tokens(drafter.events, [A, B, C_WRONG, WRONG_ANSWER])


async def test_sync_cycle_writes_every_prefix_in_one_target_batch():
    """γ=3: one target call per cycle; the first holds the γ+1 draft prefixes."""
    drafter = FnDrafter(by_position([A, B, C_WRONG, WRONG_ANSWER]))
    verifier = FnVerifier(by_position([A, B_SAME, C, ANSWER]))
    await lookahead(drafter, verifier, params("sync", lookahead_depth=3))
    assert [c.steps for c in verifier.batches[0]] == [(), (A,), (A, B), (A, B, C_WRONG)]
    # cycle 2 after (A, B, C): the draft's answer ends the reasoning, so only the root prefix needs a target step
    assert [c.steps for c in verifier.batches[1]] == [(A, B, C)]
    assert len(verifier.batches) == 2


async def test_sync_cycle_that_keeps_all_drafts_adds_the_targets_next_step():
    """γ=2, both drafts kept: the target's step after them (same batch) follows as a TARGET step."""
    drafter = FnDrafter(by_position([A, B, C, WRONG_ANSWER]))
    verifier = FnVerifier(by_position([A, B, C, ANSWER]))
    result = await lookahead(drafter, verifier, params("sync", lookahead_depth=2))
    assert [s.outcome for s in result.steps] == [StepOutcome.ACCEPTED, StepOutcome.ACCEPTED, StepOutcome.TARGET,
                                                 StepOutcome.REWRITTEN]
    assert result.steps[2].text == C and result.answer == "7"


async def test_async_starts_target_steps_as_soon_as_draft_prefixes_exist():
    """The root's target step is slow; the targets after every deeper draft prefix start before it ends."""
    drafter = FnDrafter(by_position([A, B, C, WRONG_ANSWER]))
    verifier = FnVerifier(by_position([A, B, C, ANSWER]), delay=lambda ctx: 0.2 if not ctx.steps else 0.0)
    await lookahead(drafter, verifier, params("async", lookahead_depth=3))
    order = verifier.events
    assert order.index(("start", (A, B, C))) < order.index(("done", ()))


async def test_async_rejection_cancels_the_superseded_subtree():
    """γ=4. B_OTHER (position 1) is rejected: the target steps after every prefix holding it, and the drafting
    under it, are in flight (slow) and must be cancelled, never awaited; none of them finishes. The other
    target steps take 50 ms, so the work under B_OTHER has started by the time B_OTHER is judged."""
    drafter = FnDrafter(by_position([A, B_OTHER, C, ANSWER]), delay=lambda ctx: SLOW_S if B_OTHER in ctx.steps else 0)
    verifier = FnVerifier(by_position([A, B, C, ANSWER]), delay=lambda ctx: SLOW_S if B_OTHER in ctx.steps else 0.05)
    t0 = time.perf_counter()
    result = await lookahead(drafter, verifier, params("async", lookahead_depth=4))
    assert time.perf_counter() - t0 < SLOW_S / 3
    assert [(s.text, s.outcome) for s in result.steps] == [
        (A, StepOutcome.ACCEPTED), (B, StepOutcome.REWRITTEN), (C, StepOutcome.ACCEPTED),
        (ANSWER, StepOutcome.ACCEPTED)]
    for model in (verifier, drafter):
        superseded = {s for e, s in model.events if e == "start" and B_OTHER in s}
        assert superseded and {c.steps for c in model.cancelled} == superseded
        assert not any(e == "done" and B_OTHER in s for e, s in model.events)
    assert speculative_tasks() == []


async def test_async_run_end_cancels_work_still_in_flight():
    """max_steps=2 stops the run after two kept drafts while the deeper target steps (slow) are still running."""
    drafter = FnDrafter(by_position([A, B, C, ANSWER]))
    verifier = FnVerifier(by_position([A, B, C, ANSWER]), delay=lambda ctx: SLOW_S if len(ctx.steps) >= 2 else 0.05)
    result = await lookahead(drafter, verifier, params("async", lookahead_depth=3, max_steps=2))
    assert result.stop_reason is StopReason.MAX_STEPS
    started = {s for e, s in verifier.events if e == "start" and len(s) >= 2}
    assert started and {c.steps for c in verifier.cancelled} == started
    assert speculative_tasks() == []


@MODES
async def test_width_keeps_the_equivalent_alternative(mode):
    """W=2: the first alternative at position 0 is wrong, the second matches the target's step and is kept."""
    def write(ctx, k):
        return step([f"Tom has {k + 2} apples.", A][k % 2] if not ctx.steps else [B, C, ANSWER][len(ctx.steps) - 1])

    drafter = FnDrafter(write)
    verifier = FnVerifier(by_position([A, B, C, ANSWER]))
    result = await lookahead(drafter, verifier, params(mode, lookahead_depth=2, lookahead_width=2, temperature=0.6))
    assert result.steps[0].text == A and result.steps[0].outcome is StepOutcome.ACCEPTED
    assert len({p.seed for p in drafter.params[:2]}) == 2  # the alternatives sample with different seeds
    if mode == "sync":  # 1 + W + W² prefixes in the cycle's one target batch
        assert len(verifier.batches[0]) == 7


@MODES
async def test_a_target_step_cut_by_the_token_cap_validates_no_draft(mode):
    drafter = FnDrafter(by_position([A, ANSWER]))
    verifier = FnVerifier(by_position([A], finish=FinishReason.LENGTH))
    result = await lookahead(drafter, verifier, params(mode, lookahead_depth=2, max_steps=1))
    assert result.steps[0].outcome is StepOutcome.REWRITTEN and result.steps[0].author is Author.TARGET


@MODES
async def test_drafter_failure_degrades_to_target_only(mode):
    drafter = FnDrafter(by_position([A, B, C, ANSWER]), fail_on=lambda ctx: len(ctx.steps) >= 1)
    verifier = FnVerifier(by_position([A, B, C, ANSWER]))
    result = await lookahead(drafter, verifier, params(mode, lookahead_depth=3))
    assert "drafter failed" in result.stats.degraded_reason and result.answer == "7"
    target_only = [s for s in result.steps if s.outcome is StepOutcome.TARGET]
    assert target_only and result.stats.degraded_steps == len(target_only)
    assert all(s.outcome is StepOutcome.TARGET for s in result.steps[result.steps.index(target_only[0]):])
    assert speculative_tasks() == []


async def test_first_n_steps_are_written_by_the_target():
    drafter = FnDrafter(by_position([A, B, C, ANSWER]))
    verifier = FnVerifier(by_position([A, B, C, ANSWER]))
    result = await lookahead(drafter, verifier, params("async", first_n_target_steps=1))
    assert result.steps[0].outcome is StepOutcome.TARGET and drafter.batches[0][0].steps == (A,)


@pytest.mark.parametrize("threshold, kept", [(0.6, True), (0.8, False)], ids=["above", "below"])
async def test_llm_judge_threshold_decides(threshold, kept):
    """The judge says P(aligned) = 0.7 for B_OTHER vs B; identical steps never reach it."""
    drafter = FnDrafter(by_position([A, B_OTHER, C, ANSWER]))
    verifier = FnVerifier(by_position([A, B, C, ANSWER]), aligned=lambda a, b: 0.7)
    result = await lookahead(drafter, verifier, params("sync", step_verifier="llm_judge",
                                                       verifier_threshold=threshold, lookahead_depth=2))
    assert (result.steps[1].outcome is StepOutcome.ACCEPTED) is kept and result.steps[1].score == 0.7
    judged = [(a, b) for call in verifier.equivalence_calls for _, a, b in call]
    assert (B_OTHER, B) in judged and all(a != b for a, b in judged)
    assert result.stats.judge_calls == len(judged)


async def test_embedding_verifier_needs_an_embedder():
    drafter, verifier = FnDrafter(by_position([A])), FnVerifier(by_position([A]))
    with pytest.raises(InvalidRequestError, match="embedding"):
        await lookahead(drafter, verifier, params("sync", step_verifier="embedding"))
    embedder = BagOfWordsEmbedder(["tom", "buys", "4", "5", "more."])
    drafter = FnDrafter(by_position([A, B_OTHER, C, ANSWER]))
    verifier = FnVerifier(by_position([A, B, C, ANSWER]))
    result = await lookahead(drafter, verifier, params("sync", step_verifier="embedding", verifier_threshold=0.6),
                             embedder=embedder)
    assert result.steps[1].outcome is StepOutcome.ACCEPTED  # cos(B_OTHER, B) = 2/3 over this vocabulary
    assert embedder.calls and result.answer == "7"
