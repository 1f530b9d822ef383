"""Token sampling, and the verification rules of token-level speculative decoding (pure tensor functions).

Verification (Leviathan et al. 2023; vLLM's rejection sampler): the draft proposed tokens d_1..d_k from
its distributions q_1..q_k; one target forward pass gives p_1..p_{k+1}. Greedy: keep the longest prefix
where d_i = argmax p_i, then the target's argmax at the first mismatch (or after d_k). Sampled: keep d_i
with probability min(1, p_i(d_i) / q_i(d_i)); at the first rejection draw from norm(max(0, p_i − q_i)),
and after k acceptances draw the bonus token from p_{k+1}. Either way the output is distributed exactly
as the target's own sampling (greedy: identical tokens).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch


def token_probs(logits: torch.Tensor, temperature: float, top_p: float) -> torch.Tensor:
    """The sampling distribution of `logits` [..., vocab] at `temperature` > 0, cut to the top_p nucleus and
    renormalised."""
    probs = torch.softmax(logits.float() / temperature, dim=-1)  # [..., vocab]
    if top_p < 1.0:
        sorted_probs, order = torch.sort(probs, dim=-1, descending=True)
        outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= top_p  # the mass before it reached top_p
        sorted_probs[outside] = 0.0
        probs = torch.zeros_like(probs).scatter_(-1, order, sorted_probs)
        probs /= probs.sum(dim=-1, keepdim=True)
    return probs


def sample_token(logits: torch.Tensor, temperature: float, top_p: float, generator: torch.Generator | None) -> int:
    """Pick the next token from last-position `logits` [vocab]: argmax at temperature 0, else nucleus sampling."""
    if temperature == 0:
        return int(torch.argmax(logits))
    return int(torch.multinomial(token_probs(logits, temperature, top_p), 1, generator=generator))


def verify_greedy(draft: Sequence[int], target_logits: torch.Tensor) -> tuple[int, int]:
    """Greedy verification of `draft` (k tokens) against the target's `target_logits` [k + 1, vocab].

    Returns:
        (accepted drafted tokens n, the target's token after them).

    Example:
        target argmaxes [5, 9, 2] for draft [5, 7]: (1, 9), i.e. keep 5, then the target's 9.
    """
    best = torch.argmax(target_logits, dim=-1).tolist()  # [k + 1]
    n = 0
    while n < len(draft) and draft[n] == best[n]:
        n += 1
    return n, best[n]


def verify_sampled(draft: Sequence[int], q: torch.Tensor, p: torch.Tensor,
                   generator: torch.Generator | None) -> tuple[int, int]:
    """Speculative-sampling verification of `draft` (k tokens drawn from `q` [k, vocab]) against the target's
    sampling distributions `p` [k + 1, vocab] (module docstring).

    Returns:
        (accepted drafted tokens n, the token drawn after them: from the residual at a rejection, else the bonus).
    """
    for i, token in enumerate(draft):
        u = float(torch.rand((), generator=generator))
        if u * float(q[i, token]) < float(p[i, token]):  # u < p/q, i.e. accepted with probability min(1, p/q)
            continue
        residual = torch.clamp(p[i] - q[i], min=0.0)  # [vocab]
        weights = residual if float(residual.sum()) > 0 else p[i]
        return i, int(torch.multinomial(weights, 1, generator=generator))
    return len(draft), int(torch.multinomial(p[len(draft)], 1, generator=generator))
