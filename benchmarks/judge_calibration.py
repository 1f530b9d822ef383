"""How well the target separates correct from corrupted steps under each judge prompt (0–9 score).

Good steps are the target's own steps on problems it solves; bad steps are the same steps with one
number changed. For each judge prompt the report gives the mean expected score of good and bad steps,
the AUC (P[score(good) > score(bad)]) and the acceptance of each at several thresholds. Run on a seed
the benchmarks do not use, so the choice of prompt is not tuned on the benchmark problems:

    python -m benchmarks.judge_calibration [problems=8] [seed=11] [key=value …app overrides]
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
from collections.abc import Callable
from statistics import mean

from benchmarks.config import DatasetConfig
from benchmarks.datasets import load_gsm_symbolic
from cluster.backends import create_backend
from cluster.backends.roles import BackendVerifier
from cluster.config import load_config
from cluster.reasoning import prompts
from cluster.reasoning.methods.baseline import run_target
from cluster.reasoning.scoring import score_from_distribution
from cluster.reasoning.steps import answers_match, continuation_prefix
from cluster.reasoning.types import ChatMessage, StepContext

_LAST_NUMBER = re.compile(r"(\d+)(?!.*\d)", re.S)
THRESHOLDS = (5.0, 6.0, 6.5, 7.0, 7.5, 8.0)


def corrupt(step: str) -> str | None:
    """The step with its last number changed (+1, or ×2 for one-digit numbers), or None without numbers."""
    m = _LAST_NUMBER.search(step)
    if not m:
        return None
    n = int(m.group(1))
    return step[: m.start()] + str(n * 2 if n < 10 else n + 1) + step[m.end():]


def quoted_judge(ctx: StepContext, candidate: str, delimiter: str) -> tuple[list[ChatMessage], str]:
    """Variant: the steps so far stay in the assistant turn; the candidate is quoted in the user turn."""
    return [
        prompts.question_message(ctx),
        ChatMessage("assistant", continuation_prefix(ctx.steps, delimiter).rstrip() or "(no steps yet)"),
        ChatMessage("user", "Here is a proposed next step:\n\n" + candidate + "\n\n" + prompts.JUDGE_INSTRUCTION
                    .replace("the last step of your reasoning above", "the proposed step")),
    ], prompts.JUDGE_PREFILL


VARIANTS: dict[str, Callable[..., tuple[list[ChatMessage], str]]] = {"inline": prompts.judge, "quoted": quoted_judge}


async def calibrate(n: int, seed: int, overrides: list[str]) -> dict:
    cfg = load_config(overrides=overrides)
    backend = create_backend(cfg.target)
    verifier = BackendVerifier(backend)
    params = cfg.reasoning.with_overrides({"method": "target"})
    scores: dict[str, dict[str, list[float]]] = {v: {"good": [], "bad": []} for v in VARIANTS}
    for problem in load_gsm_symbolic(DatasetConfig(name="gsm_symbolic", size=n, seed=seed)):
        result = await run_target(problem.question, None, verifier, params)  # type: ignore[arg-type]
        if not answers_match(result.answer, problem.answer):
            continue  # only steps of correct solutions count as good
        steps = [r.text for r in result.steps]
        for i, good in enumerate(steps):
            bad = corrupt(good)
            if bad is None:
                continue
            ctx = StepContext(problem.question, tuple(steps[:i]))
            for name, build in VARIANTS.items():
                for kind, cand in (("good", good), ("bad", bad)):
                    prompt = backend.render_chat(*build(ctx, cand, params.step_delimiter))
                    (dist,) = await backend.next_token_distribution([prompt], 10)
                    scores[name][kind].append(score_from_distribution(dist.top).expected)
    await backend.close()
    return {name: summarize(s["good"], s["bad"]) for name, s in scores.items()}


def summarize(good: list[float], bad: list[float]) -> dict:
    pairs = [(g > b) + 0.5 * (g == b) for g in good for b in bad]
    return {
        "n_good": len(good), "n_bad": len(bad),
        "mean_good": mean(good) if good else None, "mean_bad": mean(bad) if bad else None,
        "auc": mean(pairs) if pairs else None,
        "accept_good": {t: mean(g >= t for g in good) for t in THRESHOLDS} if good else {},
        "accept_bad": {t: mean(b >= t for b in bad) for t in THRESHOLDS} if bad else {},
    }


def main(argv: list[str]) -> int:
    kv = dict(a.split("=", 1) for a in argv if a.split("=", 1)[0] in ("problems", "seed"))
    overrides = [a for a in argv if a.split("=", 1)[0] not in ("problems", "seed")]
    report = asyncio.run(calibrate(int(kv.get("problems", 8)), int(kv.get("seed", 11)), overrides))
    print(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
