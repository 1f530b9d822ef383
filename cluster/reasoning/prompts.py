"""Chat messages for step continuation, the 0–9 step judge (SpecReason's utility prompt), the step-equivalence
judge (Lookahead Reasoning's aligned / unaligned question) and the solution verdict (Best-of-N's yes / no)."""

from __future__ import annotations

from cluster.reasoning.steps import continuation_prefix, join_steps
from cluster.reasoning.types import ChatMessage, StepContext

SOLVE_INSTRUCTION = (
    "Solve the problem step by step. Separate the steps with a blank line. "
    "Finish with the final answer written as \\boxed{answer}."
)
JUDGE_INSTRUCTION = (
    "Evaluate the last step of your reasoning above for factual correctness and logical validity only "
    "(not style or completeness). Rate it with a single digit from 0 (wrong) to 9 (certainly correct)."
)
JUDGE_PREFILL = "I think the quality score is: "
EQUIVALENCE_INSTRUCTION = (
    "Here are two candidates for the next step of the reasoning above. Do they state the same thing, with the "
    "same calculations and the same results? Reply [aligned] if they do and [unaligned] if they do not; if you "
    "are unsure, reply [unaligned]."
)
EQUIVALENCE_PREFILL = "["
VERDICT_INSTRUCTION = "Check the solution above. Is its final answer correct? Reply Yes or No."


def question_message(ctx: StepContext) -> ChatMessage:
    """The user turn that poses the problem (with a per-path strategy hint when present)."""
    hint = f"\nTips: {ctx.strategy_hint}" if ctx.strategy_hint else ""
    instruction = SOLVE_INSTRUCTION if ctx.instruction is None else ctx.instruction
    return ChatMessage("user", f"{ctx.question.strip()}\n\n{instruction}{hint}".rstrip())


def continuation(ctx: StepContext, delimiter: str) -> tuple[list[ChatMessage], str]:
    """Messages and assistant prefix that make a model write the next step after `ctx.steps`."""
    return [question_message(ctx)], continuation_prefix(ctx.steps, delimiter)


def judge(ctx: StepContext, candidate: str, delimiter: str) -> tuple[list[ChatMessage], str]:
    """Messages and assistant prefill that make a model rate `candidate` (the step after `ctx.steps`).

    The assistant turn holds the reasoning so far plus the candidate, so the judge prompt shares its
    prefix with the target's continuation prompt and the prefix cache serves it.
    """
    reasoning = continuation_prefix(ctx.steps, delimiter) + candidate
    return [
        question_message(ctx),
        ChatMessage("assistant", reasoning),
        ChatMessage("user", JUDGE_INSTRUCTION),
    ], JUDGE_PREFILL


def equivalence(ctx: StepContext, step_a: str, step_b: str, delimiter: str) -> tuple[list[ChatMessage], str]:
    """Messages and assistant prefill that make a model answer whether `step_a` and `step_b` (two candidates for
    the step after `ctx.steps`) are equivalent: its next token begins "aligned" or "unaligned"."""
    messages = [question_message(ctx)]
    if ctx.steps:
        messages.append(ChatMessage("assistant", join_steps(ctx.steps, delimiter)))
    candidates = f"{EQUIVALENCE_INSTRUCTION}\n\nStep A: {step_a.strip()}\n\nStep B: {step_b.strip()}"
    return [*messages, ChatMessage("user", candidates)], EQUIVALENCE_PREFILL


def verdict(question: str, solution: str) -> tuple[list[ChatMessage], str]:
    """Messages that make a model answer whether `solution` (a whole solution to `question`) ends with the
    correct answer: its next token begins "Yes" or "No"."""
    return [
        question_message(StepContext(question)),
        ChatMessage("assistant", solution),
        ChatMessage("user", VERDICT_INSTRUCTION),
    ], ""
