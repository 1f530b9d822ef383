"""Does the target tell correct steps from wrong ones? Judge prompts scored on hand-written step pairs.

Each case is a problem, the steps so far and a candidate step that is either correct or wrong (a
wrong number, a wrong operation). For each judge prompt the target's score of every candidate is
read from its next-token distribution, and the report gives the scores of good and bad candidates
and the AUC, P[score(good) > score(bad)] (0.5 = the judge cannot tell them apart):

    python -m benchmarks.judge_calibration [key=value …app overrides, e.g. target.backend=vllm]

Prompts: `inline` (specserve's judge, cluster/reasoning/prompts.py), `specreason` (the reference
code's wording), and two yes/no judges (score = 9·P(yes)/(P(yes)+P(no))), one with the candidate
in the assistant turn and one with it quoted in the user turn.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable

from benchmarks.metrics import auc
from cluster.backends import create_backend
from cluster.config import load_config
from cluster.reasoning import prompts
from cluster.reasoning.scoring import score_from_distribution, verdict_from_distribution
from cluster.reasoning.steps import continuation_prefix
from cluster.reasoning.types import ChatMessage, StepContext

CLIPS = ("Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May. "
         "How many clips did Natalia sell altogether in April and May?")
EGGS = "A baker makes 12 cakes a day. Each cake uses 3 eggs. How many eggs does the baker use in 5 days?"
C1, C2 = "In April, Natalia sold 48 clips.", "In May she sold half as many, so 48 / 2 = 24 clips."
E1 = "Each day the baker uses 12 * 3 = 36 eggs."
# (question, steps so far, candidate, candidate is correct)
CASES: list[tuple[str, tuple[str, ...], str, bool]] = [
    (CLIPS, (), C1, True),
    (CLIPS, (), "In April, Natalia sold 96 clips.", False),
    (CLIPS, (C1,), C2, True),
    (CLIPS, (C1,), "In May she sold half as many, so 48 / 2 = 28 clips.", False),
    (CLIPS, (C1,), "In May she sold twice as many, so 48 * 2 = 96 clips.", False),
    (CLIPS, (C1, C2), "Altogether she sold 48 + 24 = 72 clips. The answer is \\boxed{72}.", True),
    (CLIPS, (C1, C2), "Altogether she sold 48 + 24 = 62 clips. The answer is \\boxed{62}.", False),
    (CLIPS, (C1, C2), "Altogether she sold 48 - 24 = 24 clips. The answer is \\boxed{24}.", False),
    (EGGS, (), E1, True),
    (EGGS, (), "Each day the baker uses 12 * 3 = 32 eggs.", False),
    (EGGS, (E1,), "In 5 days the baker uses 36 * 5 = 180 eggs. The answer is \\boxed{180}.", True),
    (EGGS, (E1,), "In 5 days the baker uses 36 * 5 = 150 eggs. The answer is \\boxed{150}.", False),
    (EGGS, (E1,), "In 5 days the baker uses 36 + 5 = 41 eggs. The answer is \\boxed{41}.", False),
]
SPECREASON_INSTRUCTION = (
    "Evaluate the last reasoning step solely based on factual correctness and logical validity. Ignore style, "
    "phrasing, or overall usefulness: only judge whether the step is objectively correct and logically follows "
    "from prior steps. Assign a score from 0 to 9.")
YES_NO = "(every number and calculation right, and logically valid)? Answer Yes or No."
Prompt = tuple[list[ChatMessage], str]


def _reasoning(ctx: StepContext, candidate: str) -> str:
    return continuation_prefix(ctx.steps, "\n\n") + candidate


def specreason_judge(ctx: StepContext, candidate: str) -> Prompt:
    return [prompts.question_message(ctx), ChatMessage("assistant", _reasoning(ctx, candidate) + "\n\n"),
            ChatMessage("user", SPECREASON_INSTRUCTION)], prompts.JUDGE_PREFILL


def yes_no_judge(ctx: StepContext, candidate: str) -> Prompt:
    return [prompts.question_message(ctx), ChatMessage("assistant", _reasoning(ctx, candidate)),
            ChatMessage("user", f"Is the last step of your reasoning above correct {YES_NO}")], ""


def yes_no_quoted_judge(ctx: StepContext, candidate: str) -> Prompt:
    steps = continuation_prefix(ctx.steps, "\n\n").rstrip() or "(no steps yet)"
    return [prompts.question_message(ctx), ChatMessage("assistant", steps),
            ChatMessage("user", f"Proposed next step:\n\n{candidate}\n\nIs this proposed step correct {YES_NO}")], ""


VARIANTS: dict[str, tuple[Callable[[StepContext, str], Prompt], bool]] = {  # name → (prompt, is yes/no)
    "inline": (lambda ctx, cand: prompts.judge(ctx, cand, "\n\n"), False),
    "specreason": (specreason_judge, False),
    "yes_no": (yes_no_judge, True),
    "yes_no_quoted": (yes_no_quoted_judge, True),
}


def yes_no_score(top: tuple[tuple[str, float], ...]) -> float:
    """9 · P(yes) / (P(yes) + P(no)) over the top next tokens, read as Best-of-N's verdict reads them (0 when
    neither appears)."""
    return 9 * verdict_from_distribution(top).correct


async def calibrate(overrides: list[str]) -> dict[str, dict]:
    backend = create_backend(load_config(overrides=overrides).target)
    report = {}
    try:
        for name, (build, yes_no) in VARIANTS.items():
            good, bad = [], []
            for question, steps, candidate, correct in CASES:
                prompt = backend.render_chat(*build(StepContext(question, steps), candidate))
                (dist,) = await backend.next_token_distribution([prompt], 10)
                score = yes_no_score(dist.top) if yes_no else score_from_distribution(dist.top).expected
                (good if correct else bad).append(round(score, 2))
            report[name] = {"good": good, "bad": bad, "auc": round(auc(good, bad), 3)}
    finally:
        await backend.close()
    return report


def main(argv: list[str]) -> int:
    print(json.dumps(asyncio.run(calibrate(argv)), indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
