"""The methods against scripted drafters and verifiers: accept, reject, budget, repetition, answers."""

from __future__ import annotations

from dataclasses import replace

import pytest

from cluster.config.schema import ReasoningParams
from cluster.reasoning.methods import get_method
from cluster.reasoning.types import Author, FinishReason, StepOutcome, StopReason
from tests.fakes import ScriptedDrafter, ScriptedVerifier, step

QUESTION = "Tom has 3 apples and buys 4 more. How many apples does he have?"
ACCEPT, REJECT = 8.0, 2.0
DRAFTS = [step("Tom starts with 3 apples."), step("He buys 4, so 3 + 4 = 7."), step("The answer is \\boxed{7}.")]
TARGETS = [step("Tom has 3 apples at first."), step("3 + 4 = 7 apples."), step("So the answer is \\boxed{7}.")]


def params(**kw) -> ReasoningParams:
    return ReasoningParams(**kw)


async def run(method: str, drafter, verifier, **kw):
    return await get_method(method)(QUESTION, drafter, verifier, params(method=method, **kw))


async def test_specreason_accepts_every_draft_above_threshold():
    """All three drafts score 8 ≥ τ=7: the trace is the drafts, the target writes nothing."""
    verifier = ScriptedVerifier([ACCEPT], TARGETS)
    result = await run("specreason", ScriptedDrafter(DRAFTS), verifier, threshold=7)
    assert [s.outcome for s in result.steps] == [StepOutcome.ACCEPTED] * 3
    assert [s.text for s in result.steps] == [d.text for d in DRAFTS]
    assert result.answer == "7" and result.stop_reason is StopReason.ANSWER
    assert result.stats.steps_drafted == 3 and result.stats.steps_accepted == 3
    assert result.stats.judge_calls == 3 and verifier.target_calls == []
    assert result.stats.acceptance_rate == 1.0


async def test_specreason_rewrites_rejected_steps_with_the_target():
    """Scores alternate accept/reject/accept: step 1 is the target's, with the draft kept in the trace."""
    verifier = ScriptedVerifier([ACCEPT, REJECT, ACCEPT], TARGETS)
    result = await run("specreason", ScriptedDrafter(DRAFTS), verifier, threshold=7)
    outcomes = [s.outcome for s in result.steps]
    assert outcomes == [StepOutcome.ACCEPTED, StepOutcome.REWRITTEN, StepOutcome.ACCEPTED]
    rewritten = result.steps[1]
    assert rewritten.author is Author.TARGET and rewritten.text == TARGETS[0].text
    assert rewritten.draft_text == DRAFTS[1].text and rewritten.score == REJECT
    assert result.stats.steps_rewritten == 1 and result.stats.target_steps == 1
    # the target rewrote step 1 from the context holding only step 0
    assert verifier.target_calls[0].steps == (DRAFTS[0].text,)
    # the next draft continues from the target's rewrite
    assert verifier.score_calls[2][0].steps == (DRAFTS[0].text, TARGETS[0].text)


async def test_steps_record_the_latency_of_the_call_that_wrote_them():
    """Accepted steps carry the draft call's seconds, the rewritten step the target call's."""
    drafts = [replace(d, latency_s=0.5) for d in DRAFTS]
    targets = [replace(t, latency_s=2.0) for t in TARGETS]
    verifier = ScriptedVerifier([ACCEPT, REJECT, ACCEPT], targets)
    result = await run("specreason", ScriptedDrafter(drafts), verifier, threshold=7)
    assert [s.latency_s for s in result.steps] == [0.5, 2.0, 0.5]


@pytest.mark.parametrize("score_method, greedy_accepts", [("greedy", True), ("expected", False)],
                         ids=["greedy-digit", "expected-value"])
async def test_score_method_selects_greedy_or_expected(score_method, greedy_accepts):
    """Judge score 7.5 against τ=7.2: the greedy digit (7) rejects, the expected value (7.5) accepts."""
    verifier = ScriptedVerifier([7.5], TARGETS)
    result = await run("specreason", ScriptedDrafter(DRAFTS), verifier, threshold=7.2, score_method=score_method)
    accepted = result.steps[0].outcome is StepOutcome.ACCEPTED
    assert accepted is (not greedy_accepts)


async def test_first_n_steps_are_written_by_the_target():
    verifier = ScriptedVerifier([ACCEPT], TARGETS)
    drafter = ScriptedDrafter(DRAFTS)
    result = await run("specreason", drafter, verifier, first_n_target_steps=2)
    assert [s.author for s in result.steps][:2] == [Author.TARGET, Author.TARGET]
    assert [s.outcome for s in result.steps][2:] == [StepOutcome.ACCEPTED] * 3
    assert drafter.calls[0].steps == (TARGETS[0].text, TARGETS[1].text)


async def test_budget_stops_the_run():
    """Steps of 50 tokens against a 120-token budget: the third step exhausts it."""
    long_steps = [step(f"step {i} without an answer", tokens=50) for i in range(5)]
    result = await run("specreason", ScriptedDrafter(long_steps), ScriptedVerifier([ACCEPT], TARGETS),
                       max_total_tokens=120, max_step_tokens=50)
    assert result.stop_reason is StopReason.BUDGET
    assert len(result.steps) == 3 and result.answer is None


async def test_step_cap_is_clipped_to_the_remaining_budget():
    drafter = ScriptedDrafter([step("a b c", tokens=90)])
    verifier = ScriptedVerifier([ACCEPT], TARGETS)
    seen = []

    class Spy(ScriptedDrafter):
        async def draft_steps(self, ctxs, p):
            seen.append(p.max_tokens)
            return await drafter.draft_steps(ctxs, p)

    await get_method("specreason")(QUESTION, Spy([]), verifier,
                                   params(max_total_tokens=100, max_step_tokens=64, max_steps=2))
    assert seen == [64, 10]


@pytest.mark.parametrize(("temperature", "sent"), [(5e-324, 0.0), (1e-6, 0.0), (0.7, 0.7)],
                         ids=["subnormal-is-greedy", "tiny-is-greedy", "sampled"])
async def test_tiny_temperatures_generate_greedily(temperature, sent):
    """A subnormal temperature overflowed the sampler (found by benchmarks/fuzz.py): below 1e-5 steps are greedy."""
    seen = []

    class Spy(ScriptedDrafter):
        async def draft_steps(self, ctxs, p):
            seen.append(p.temperature)
            return await ScriptedDrafter(DRAFTS).draft_steps(ctxs, p)

    await get_method("specreason")(QUESTION, Spy([]), ScriptedVerifier([ACCEPT], TARGETS),
                                   params(temperature=temperature, max_steps=1))
    assert seen == [sent]


async def test_repeated_steps_stop_the_run():
    same = [step("I keep saying the same thing.")]
    result = await run("draft", ScriptedDrafter(same), ScriptedVerifier([ACCEPT], TARGETS))
    assert result.stop_reason is StopReason.REPETITION and len(result.steps) == 2


async def test_eos_stops_the_run():
    eos = [step("Nothing more to say", finish=FinishReason.EOS)]
    result = await run("target", ScriptedDrafter(DRAFTS), ScriptedVerifier([ACCEPT], eos))
    assert result.stop_reason is StopReason.EOS


async def test_answer_line_is_detected():
    answer = [step("Answer: 42")]
    result = await run("target", ScriptedDrafter(DRAFTS), ScriptedVerifier([ACCEPT], answer))
    assert result.stop_reason is StopReason.ANSWER and result.answer == "42"


async def test_target_baseline_never_drafts():
    drafter, verifier = ScriptedDrafter(DRAFTS), ScriptedVerifier([ACCEPT], TARGETS)
    result = await run("target", drafter, verifier)
    assert drafter.calls == [] and verifier.score_calls == []
    assert all(s.outcome is StepOutcome.TARGET for s in result.steps)
    assert result.stats.target_tokens == sum(t.num_tokens for t in TARGETS)


async def test_draft_baseline_never_calls_the_target():
    drafter, verifier = ScriptedDrafter(DRAFTS), ScriptedVerifier([ACCEPT], TARGETS)
    result = await run("draft", drafter, verifier)
    assert verifier.score_calls == [] and verifier.target_calls == []
    assert all(s.outcome is StepOutcome.DRAFT for s in result.steps) and result.answer == "7"


async def test_drafter_failure_degrades_to_target_only():
    """The drafter fails on its second call: step 0 was accepted, the rest are the target's."""
    verifier = ScriptedVerifier([ACCEPT], TARGETS)
    result = await run("specreason", ScriptedDrafter(DRAFTS, fail_at=1), verifier)
    assert result.steps[0].outcome is StepOutcome.ACCEPTED
    assert all(s.outcome is StepOutcome.TARGET for s in result.steps[1:])
    assert result.stats.degraded_steps == len(result.steps) - 1 > 0
    assert "drafter failed" in result.stats.degraded_reason
    assert result.answer == "7"


async def test_step_callback_sees_every_step_in_order():
    seen = []

    async def on_step(record):
        seen.append(record.index)

    result = await get_method("specreason")(QUESTION, ScriptedDrafter(DRAFTS), ScriptedVerifier([REJECT], TARGETS),
                                            params(), on_step)
    assert seen == list(range(len(result.steps)))


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="valid: .*specreason"):
        get_method("nope")
