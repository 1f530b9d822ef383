"""Sampling and the verification rules of token-level speculation, on hand-made logits and distributions.

Layout of the verification cases: a draft of k tokens, the target's k + 1 distributions (one per drafted
position plus the bonus position); the result is (accepted drafted tokens, the token after them).
"""

from __future__ import annotations

import pytest
import torch

from cluster.backends.sampling import sample_token, token_probs, verify_greedy, verify_sampled

VOCAB = 4


def one_hot_logits(tokens: list[int]) -> torch.Tensor:
    """Target logits [len(tokens), VOCAB] whose argmax at row i is tokens[i]."""
    logits = torch.zeros(len(tokens), VOCAB)
    logits[torch.arange(len(tokens)), torch.tensor(tokens)] = 5.0
    return logits


@pytest.mark.parametrize(("draft", "target", "expected"), [
    ([1, 2, 3], [1, 2, 3, 0], (3, 0)),  # all accepted, then the bonus token
    ([1, 2, 3], [1, 0, 3, 0], (1, 0)),  # mismatch at position 1: keep 1, then the target's 0
    ([1, 2, 3], [2, 2, 3, 0], (0, 2)),  # first token rejected
    ([], [3], (0, 3)),                  # nothing drafted: a plain target step
], ids=["all-accepted", "mismatch", "first-rejected", "empty-draft"])
def test_verify_greedy_keeps_the_longest_matching_prefix_and_the_correction(draft, target, expected):
    assert verify_greedy(draft, one_hot_logits(target)) == expected


def test_verify_sampled_accepts_everything_when_draft_and_target_agree():
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4]] * 4)
    gen = torch.Generator().manual_seed(0)
    n, token = verify_sampled([3, 0, 2], p[:3], p, gen)
    assert n == 3 and 0 <= token < VOCAB


def test_verify_sampled_rejects_a_token_the_target_never_picks_and_resamples_the_residual():
    q = torch.tensor([[0.0, 1.0, 0.0, 0.0]])           # the draft is sure of token 1
    p = torch.tensor([[0.5, 0.0, 0.5, 0.0], [0.25] * 4])  # the target never picks 1
    gen = torch.Generator().manual_seed(0)
    for _ in range(20):
        n, token = verify_sampled([1], q, p, gen)
        assert n == 0 and token in (0, 2)


def test_verify_sampled_output_follows_the_target_distribution():
    """The first output token (accepted draft or residual draw) is distributed as p, whatever q is."""
    q = torch.tensor([[0.7, 0.1, 0.1, 0.1]])
    p = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25] * 4])
    gen = torch.Generator().manual_seed(1)
    counts = torch.zeros(VOCAB)
    draws = 4000
    for _ in range(draws):
        drafted = int(torch.multinomial(q[0], 1, generator=gen))
        n, token = verify_sampled([drafted], q, p, gen)
        counts[drafted if n else token] += 1
    assert (counts / draws).tolist() == pytest.approx(p[0].tolist(), abs=0.025)


def test_token_probs_renormalises_the_nucleus_and_sample_token_stays_inside_it():
    logits = torch.log(torch.tensor([0.5, 0.3, 0.15, 0.05]))
    probs = token_probs(logits, 1.0, 0.7)
    assert probs.tolist() == pytest.approx([0.625, 0.375, 0.0, 0.0])
    gen = torch.Generator().manual_seed(0)
    assert {sample_token(logits, 1.0, 0.7, gen) for _ in range(200)} == {0, 1}
    assert sample_token(logits, 0.0, 1.0, None) == 0
    batch = token_probs(torch.stack([logits, logits.flip(0)]), 1.0, 0.7)  # [2, vocab]: row by row
    assert batch[1].tolist() == pytest.approx([0.0, 0.0, 0.375, 0.625])
