"""ChatTokenizerBackend, the part the transformers and vLLM backends share, over a stub tokenizer."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from cluster.backends.base import ChatTokenizerBackend, Generation, SamplingParams, TokenDistribution
from cluster.errors import InvalidRequestError
from cluster.reasoning.types import ChatMessage, FinishReason


class _CharTokenizer:
    """One token per character; the chat template joins `role: content` lines."""

    def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
        return [ord(c) for c in text]

    def apply_chat_template(self, messages: list[dict[str, str]], add_generation_prompt: bool, tokenize: bool) -> str:
        return "".join(f"{m['role']}: {m['content']}\n" for m in messages) + "assistant: "


class _EchoBackend(ChatTokenizerBackend):
    async def _generate(self, prompts: list[str], params: list[SamplingParams]) -> list[Generation]:
        self._stats.batch_sizes.append(len(prompts))
        if self._spec_stats is not None:
            self._spec_stats.observe_round(3, 2)
        return [Generation(text=p, num_tokens=0, finish_reason=FinishReason.LENGTH) for p in prompts]

    async def next_token_distribution(self, prompts: Sequence[str], top_k: int = 10) -> list[TokenDistribution]:
        return []


async def test_prompt_side_checks_and_counter_copies():
    backend = _EchoBackend(_CharTokenizer(), 64, speculative=False)
    assert backend.max_model_len == 64 and backend.count_tokens("abc") == 3
    assert backend.render_chat([ChatMessage("user", "hi")], "So") == "user: hi\nassistant: So"
    with pytest.raises(InvalidRequestError):
        await backend.generate(["a", "b"], [SamplingParams(4)])
    assert [g.text for g in await backend.generate(("a", "b"), (SamplingParams(4),) * 2)] == ["a", "b"]
    stats = backend.stats()
    stats.batch_sizes.append(9)
    assert backend.stats().batch_sizes == [2] and backend.spec_decode_stats() is None


async def test_speculative_backend_keeps_spec_decode_stats():
    backend = _EchoBackend(_CharTokenizer(), 64, speculative=True)
    await backend.generate(["a"], [SamplingParams(4)])
    stats = backend.spec_decode_stats()
    assert stats is not None and (stats.num_drafts, stats.draft_tokens, stats.accepted_tokens) == (1, 3, 2)
    stats.observe_round(3, 3)
    assert backend.spec_decode_stats().num_drafts == 1
