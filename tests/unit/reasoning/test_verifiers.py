"""Step verifiers with scripted models: exact match, embedding cosine, LLM equivalence judge, 0–9 score judge."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from cluster.backends.roles import BackendVerifier
from cluster.config.schema import ReasoningParams
from cluster.errors import InvalidRequestError
from cluster.reasoning import prompts
from cluster.reasoning.scoring import equivalence_from_distribution
from cluster.reasoning.types import StepContext
from cluster.reasoning.verifiers import (
    EmbeddingVerifier,
    ExactMatchVerifier,
    LLMJudgeVerifier,
    ScoreVerifier,
    StepPair,
    build_step_verifier,
    same_step,
)
from cluster.reasoning.verifiers.embedding import cosine
from tests.fakes import BagOfWordsEmbedder, FnVerifier, ScriptedBackend, ScriptedVerifier, step

CTX = StepContext("What is 3 + 4?", ("We add the numbers.",))
SAME = StepPair(CTX, "3 + 4 = 7.", " 3+4 =  7. ")
OTHER = StepPair(CTX, "3 + 4 = 8.", "3 + 4 = 7.")


def target_only() -> FnVerifier:
    return FnVerifier(lambda ctx: step("unused"))


def test_same_step_ignores_case_and_whitespace():
    assert same_step("He buys 4 MORE.", "he buys\n4 more.") and not same_step("4 more", "5 more")


async def test_exact_match_verifier():
    verdicts = await ExactMatchVerifier().verify([SAME, OTHER])
    assert [v.accepted for v in verdicts] == [True, False]
    assert [v.score for v in verdicts] == [None, None]  # no model consulted


async def test_embedding_verifier_thresholds_cosine_in_one_batch():
    """Over the vocabulary (7, 8, 9): "= 7." vs "= 7. 8" has cosine 1/√2 ≈ 0.71; identical pairs skip the model."""
    embedder = BagOfWordsEmbedder(["7.", "8", "9"])
    pairs = [SAME, StepPair(CTX, "= 7. 8", "= 7."), StepPair(CTX, "= 9", "= 7.")]
    verdicts = await EmbeddingVerifier(embedder, threshold=0.7).verify(pairs)
    assert [v.accepted for v in verdicts] == [True, True, False]
    assert verdicts[1].score == pytest.approx(2 ** -0.5) and verdicts[2].score == 0.0
    assert embedder.calls == [["= 7. 8", "= 7.", "= 9", "= 7."]]


def test_cosine_of_a_zero_vector_is_zero():
    assert cosine((0.0, 0.0), (1.0, 0.0)) == 0.0 and cosine((1.0, 1.0), (2.0, 2.0)) == pytest.approx(1.0)


@pytest.mark.parametrize("aligned, accepted", [(0.5, True), (0.49, False)], ids=["at-threshold", "below"])
async def test_llm_judge_accepts_on_aligned_probability(aligned, accepted):
    judge = FnVerifier(lambda ctx: step("unused"), aligned=lambda a, b: aligned)
    verdicts = await LLMJudgeVerifier(judge).verify([SAME, OTHER])
    assert verdicts[0].accepted and verdicts[1].accepted is accepted and verdicts[1].score == aligned
    assert judge.equivalence_calls == [[(CTX, OTHER.draft, OTHER.target)]]  # the exact match skipped the judge


async def test_score_verifier_scores_the_draft_only():
    judge = FnVerifier(lambda ctx: step("unused"), score=lambda ctx, cand: 8.0 if "7" in cand else 3.0)
    verdicts = await ScoreVerifier(judge, threshold=7.0).verify([OTHER, StepPair(CTX, "so 7.", "3 + 4 = 7.")])
    assert [(v.accepted, v.score) for v in verdicts] == [(False, 3.0), (True, 8.0)]
    assert judge.score_calls == [[(CTX, OTHER.draft), (CTX, "so 7.")]]


@pytest.mark.parametrize("top, aligned, mass", [
    ([("aligned", 0.6), ("un", 0.2), ("x", 0.2)], 0.75, 0.8),
    ([(" al", 0.3), ("ali", 0.3), ("unal", 0.2), ("[", 0.2)], 0.75, 0.8),
    ([("unaligned", 0.9), ("aligned", 0.1)], 0.1, 1.0),
    ([("maybe", 1.0)], 0.0, 0.0),
], ids=["whole-words", "prefix-tokens", "unaligned", "neither"])
def test_equivalence_read_from_first_answer_tokens(top, aligned, mass):
    score = equivalence_from_distribution(top)
    assert score.aligned == pytest.approx(aligned) and score.answer_mass == pytest.approx(mass)


def test_equivalence_prompt_holds_the_reasoning_and_both_steps():
    messages, prefill = prompts.equivalence(CTX, "step one", "step two", "\n\n")
    assert [m.role for m in messages] == ["user", "assistant", "user"] and prefill == "["
    assert messages[1].content == "We add the numbers."
    assert "Step A: step one" in messages[2].content and "Step B: step two" in messages[2].content
    no_steps, _ = prompts.equivalence(StepContext("Q?"), "a", "b", "\n\n")
    assert [m.role for m in no_steps] == ["user", "user"]


async def test_backend_verifier_judges_equivalence_in_one_forward_pass():
    backend = ScriptedBackend([("aligned", 0.3), ("unaligned", 0.1), ("un", 0.1)])
    scores = await BackendVerifier(backend).equivalence_steps([(CTX, "a", "b"), (CTX, "c", "d")], "\n\n")
    assert [s.aligned for s in scores] == [pytest.approx(0.6)] * 2
    assert len(backend.prompts) == 2 and backend.prompts[0].endswith("<assistant>[")


async def test_backend_verifier_reads_a_solution_verdict_as_p_yes():
    backend = ScriptedBackend([("Yes", 0.6), (" no", 0.2), ("No", 0.2), ("The", 0.1)])
    scores = await BackendVerifier(backend).verdict_solutions([("Q?", "It is \\boxed{4}.")])
    assert [s.correct for s in scores] == [pytest.approx(0.6)] and scores[0].answer_mass == pytest.approx(1.0)
    assert backend.prompts[0].startswith("<user>Q?") and "<assistant>It is \\boxed{4}." in backend.prompts[0]
    assert backend.prompts[0].endswith(f"<user>{prompts.VERDICT_INSTRUCTION}\n<assistant>")


async def test_a_verifier_without_an_equivalence_judge_says_so():
    with pytest.raises(NotImplementedError, match="ScriptedVerifier"):
        await ScriptedVerifier([9.0], [step("x")]).equivalence_steps([(CTX, "a", "b")], "\n\n")


@pytest.mark.parametrize("name, kind, threshold", [
    ("exact", ExactMatchVerifier, None),
    ("embedding", EmbeddingVerifier, 0.95),
    ("llm_judge", LLMJudgeVerifier, 0.5),
    ("score", ScoreVerifier, 6.0),
], ids=["exact", "embedding", "llm_judge", "score"])
def test_build_step_verifier_defaults(name, kind, threshold):
    params = ReasoningParams(step_verifier=name, threshold=6.0)
    verifier = build_step_verifier(params, target_only(), BagOfWordsEmbedder(["x"]))
    assert isinstance(verifier, kind) and getattr(verifier, "threshold", None) == threshold


def test_build_step_verifier_uses_the_configured_threshold():
    params = ReasoningParams(step_verifier="embedding", verifier_threshold=0.85)
    assert build_step_verifier(params, target_only(), BagOfWordsEmbedder(["x"])).threshold == 0.85
    with pytest.raises(InvalidRequestError, match="embedding"):
        build_step_verifier(params, target_only(), None)


@pytest.mark.parametrize("knobs, message", [
    ({"step_verifier": "exact", "verifier_threshold": 0.5}, "takes no threshold"),
    ({"step_verifier": "llm_judge", "verifier_threshold": 1.5}, r"outside \[0, 1\]"),
    ({"step_verifier": "embedding", "verifier_threshold": -2}, r"outside \[-1, 1\]"),
    ({"step_verifier": "score", "verifier_threshold": 10}, r"outside \[0, 9\]"),
    ({"method": "lookahead", "lookahead_width": 2}, "needs temperature > 0"),
    ({"lookahead_width": 4, "lookahead_depth": 4, "temperature": 0.6}, "at most 64"),
    ({"lookahead_depth": 0}, "lookahead_depth"),
    ({"step_verifier": "cosine"}, "step_verifier"),
], ids=["exact-threshold", "judge-range", "cosine-range", "score-range", "greedy-width", "tree-size", "depth",
        "unknown-verifier"])
def test_invalid_lookahead_knobs_name_the_problem(knobs, message):
    with pytest.raises(ValidationError, match=message):
        ReasoningParams(**knobs)
