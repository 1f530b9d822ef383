"""Pluggable step verifiers (exact match, embedding cosine, LLM equivalence judge, 0–9 score judge);
`build_step_verifier` selects one from the request's knobs."""

from __future__ import annotations

from typing import TYPE_CHECKING

from cluster.errors import InvalidRequestError
from cluster.reasoning.verifiers.base import ExactMatchVerifier, StepPair, StepVerifier, Verdict, same_step
from cluster.reasoning.verifiers.embedding import DEFAULT_COSINE_THRESHOLD, Embedder, EmbeddingVerifier
from cluster.reasoning.verifiers.judges import DEFAULT_ALIGNED_THRESHOLD, LLMJudgeVerifier, ScoreVerifier

if TYPE_CHECKING:
    from cluster.config.schema import ReasoningParams
    from cluster.reasoning.interfaces import Verifier

VERIFIERS = ("exact", "embedding", "llm_judge", "score")


def build_step_verifier(params: ReasoningParams, judge: Verifier, embedder: Embedder | None = None) -> StepVerifier:
    """The verifier `params.step_verifier` names, with `params.verifier_threshold` or that verifier's default.

    Args:
        params: the request's knobs.
        judge: the model behind "llm_judge" and "score" (the target's Verifier role).
        embedder: the sentence-embedding model behind "embedding".

    Raises:
        ValueError: unknown verifier name.
        InvalidRequestError: "embedding" asked for where no embedding model is loaded.
    """
    name, threshold = params.step_verifier, params.verifier_threshold
    if name == "exact":
        return ExactMatchVerifier()
    if name == "embedding":
        if embedder is None:
            raise InvalidRequestError("step_verifier 'embedding' needs a sentence-embedding model, and none is "
                                      "loaded here", field="step_verifier")
        return EmbeddingVerifier(embedder, DEFAULT_COSINE_THRESHOLD if threshold is None else threshold)
    if name == "llm_judge":
        return LLMJudgeVerifier(judge, DEFAULT_ALIGNED_THRESHOLD if threshold is None else threshold,
                                params.step_delimiter)
    if name == "score":
        return ScoreVerifier(judge, params.threshold if threshold is None else threshold, params.score_method,
                             params.step_delimiter)
    raise ValueError(f"Unknown step verifier {name!r}; valid: {list(VERIFIERS)}")


__all__ = ["DEFAULT_ALIGNED_THRESHOLD", "DEFAULT_COSINE_THRESHOLD", "VERIFIERS", "Embedder", "EmbeddingVerifier",
           "ExactMatchVerifier", "LLMJudgeVerifier", "ScoreVerifier", "StepPair", "StepVerifier", "Verdict",
           "build_step_verifier", "same_step"]
