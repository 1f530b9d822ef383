"""The ModelBackend ABC (batched step generation, next-token distributions, token counts, templating) and
ChatTokenizerBackend, the part of it that the transformers and vLLM backends share."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from cluster.backends.tokenizer import ChatTokenizer
from cluster.errors import InvalidRequestError
from cluster.reasoning.types import ChatMessage, FinishReason, mean_acceptance_length, token_acceptance_rate


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How one generation call samples.

    Attributes:
        max_tokens: the most tokens to generate (> 0).
        temperature: 0 means greedy.
        top_p: nucleus sampling mass (1.0 = off).
        stop: stop strings; the text ends before the first one produced, which is not returned.
        seed: per-call RNG seed for reproducible sampling (None = backend default).
        speculative: use the backend's token-level speculation when it has one (transformers: per call;
            vLLM speculates per engine and ignores this).
    """

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None
    speculative: bool = True


@dataclass(frozen=True, slots=True)
class Generation:
    """The result of one generation call.

    Attributes:
        text: generated text, cut before the first stop string.
        num_tokens: tokens generated (a stop string's tokens included).
        finish_reason: stop string, token limit or end of sequence.
        prompt_tokens: tokens in the prompt.
        cached_tokens: prompt tokens served from the prefix/KV cache rather than recomputed.
        spec_rounds: token-level speculation: verification rounds that checked drafted tokens (0 without it).
        spec_draft_tokens: tokens the draft proposed.
        spec_accepted_tokens: drafted tokens the target accepted.
    """

    text: str
    num_tokens: int
    finish_reason: FinishReason
    prompt_tokens: int = 0
    cached_tokens: int = 0
    spec_rounds: int = 0
    spec_draft_tokens: int = 0
    spec_accepted_tokens: int = 0


@dataclass(frozen=True, slots=True)
class TokenDistribution:
    """The most likely next tokens after a prompt, from one forward pass.

    Attributes:
        top: (decoded token text, probability) pairs, most likely first.
        prompt_tokens: tokens in the prompt.
        cached_tokens: prompt tokens served from the prefix/KV cache.
    """

    top: tuple[tuple[str, float], ...]
    prompt_tokens: int = 0
    cached_tokens: int = 0


@dataclass(slots=True)
class BackendStats:
    """Cumulative counters of a backend, for metrics and benchmarks."""

    prompt_tokens: int = 0
    cached_tokens: int = 0
    generated_tokens: int = 0
    forward_calls: int = 0
    batch_sizes: list[int] = field(default_factory=list)


@dataclass(slots=True)
class SpecDecodeStats:
    """Token-level speculative decoding counters of a backend, cumulative (vLLM's definitions).

    Derived metrics:
        acceptance_rate = accepted_tokens / draft_tokens (draft tokens only).
        mean_acceptance_length = 1 + accepted_tokens / num_drafts (tokens per verification round,
            the target's own bonus/correction token included).

    Attributes:
        num_drafts: verification rounds that checked drafted tokens.
        draft_tokens: tokens the draft proposed.
        accepted_tokens: drafted tokens the target accepted.
        accepted_histogram: index j counts the rounds that accepted exactly j drafted tokens.
    """

    num_drafts: int = 0
    draft_tokens: int = 0
    accepted_tokens: int = 0
    accepted_histogram: list[int] = field(default_factory=list)

    @property
    def acceptance_rate(self) -> float | None:
        return token_acceptance_rate(self.accepted_tokens, self.draft_tokens)

    @property
    def mean_acceptance_length(self) -> float | None:
        return mean_acceptance_length(self.accepted_tokens, self.num_drafts)

    def observe_request(self, histogram: Sequence[int], draft_tokens: int) -> None:
        """Add one request's counts: `histogram[j]` rounds accepted j drafted tokens."""
        self.accepted_histogram.extend([0] * (len(histogram) - len(self.accepted_histogram)))
        for j, count in enumerate(histogram):
            self.accepted_histogram[j] += count
            self.accepted_tokens += j * count
        self.num_drafts += sum(histogram)
        self.draft_tokens += draft_tokens

    def observe_positions(self, num_drafts: int, draft_tokens: int, accepted_per_pos: Sequence[int]) -> None:
        """Add counts in vLLM's per-iteration form: `accepted_per_pos[i]` rounds accepted at least i + 1 tokens."""
        at_least = [num_drafts, *accepted_per_pos, 0]
        self.observe_request([at_least[j] - at_least[j + 1] for j in range(len(at_least) - 1)], draft_tokens)

    def observe_round(self, draft_tokens: int, accepted: int) -> None:
        """Add one verification round that accepted `accepted` of `draft_tokens` drafted tokens."""
        self.observe_request([0] * accepted + [1], draft_tokens)

    def since(self, earlier: SpecDecodeStats) -> SpecDecodeStats:
        """The counts added after `earlier` (a copy of these counters taken before)."""
        hist = [n - (earlier.accepted_histogram[j] if j < len(earlier.accepted_histogram) else 0)
                for j, n in enumerate(self.accepted_histogram)]
        return SpecDecodeStats(self.num_drafts - earlier.num_drafts, self.draft_tokens - earlier.draft_tokens,
                               self.accepted_tokens - earlier.accepted_tokens, hist)

    def copy(self) -> SpecDecodeStats:
        return SpecDecodeStats(self.num_drafts, self.draft_tokens, self.accepted_tokens,
                               list(self.accepted_histogram))


class ModelBackend(abc.ABC):
    """One loaded model, shared by all requests of a process or replica.

    Every method is safe to call concurrently from one event loop; implementations serialise or
    batch internally. Prompts are plain text already rendered with `render_chat`; implementations
    reuse the KV/prefix cache of earlier calls whose prompts share a prefix with the new one, so a
    growing reasoning prefix is not re-encoded step after step.
    """

    #: The engine itself merges concurrent calls into shared forward passes (continuous batching), so a
    #: caller should hand each call over at once rather than batch calls first.
    merges_concurrent_calls: bool = False

    @property
    @abc.abstractmethod
    def max_model_len(self) -> int:
        """The context length in tokens (prompt + generated)."""

    @abc.abstractmethod
    def render_chat(self, messages: Sequence[ChatMessage], assistant_prefix: str | None = None) -> str:
        """Render messages with the model's chat template.

        Args:
            messages: the conversation; the last message is not an assistant message.
            assistant_prefix: when not None, open an assistant turn and continue it with this text
                (like vLLM's `continue_final_message`).

        Returns:
            The prompt text.
        """

    @abc.abstractmethod
    def count_tokens(self, text: str) -> int:
        """Number of tokens of `text` (no special tokens added)."""

    @abc.abstractmethod
    async def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Generation]:
        """Generate a continuation of each prompt (one call, batched where the engine allows).

        Returns:
            One Generation per prompt, in order.

        A prompt that leaves room for fewer than `max_tokens` new tokens has `max_tokens` clamped to what
        fits (the generation then ends with LENGTH).

        Raises:
            PromptTooLongError: a prompt leaves no room for a single new token (prompt ≥ `max_model_len`).
            BackendError: the engine failed.
        """

    @abc.abstractmethod
    async def next_token_distribution(self, prompts: Sequence[str], top_k: int = 10) -> list[TokenDistribution]:
        """The `top_k` most likely next tokens after each prompt, from one forward pass (no sampling).

        Raises:
            PromptTooLongError: a prompt exceeds `max_model_len`.
            BackendError: the engine failed.
        """

    def stats(self) -> BackendStats:
        """Cumulative counters; backends that keep none return zeros."""
        return BackendStats()

    def spec_decode_stats(self) -> SpecDecodeStats | None:
        """Cumulative token-level speculation counters, or None when the model does not speculate."""
        return None

    async def check_health(self) -> None:
        """Raise if the engine cannot serve (used by replica health checks). Default: healthy."""

    async def close(self) -> None:
        """Release the engine's resources. Default: nothing to release."""


class ChatTokenizerBackend(ModelBackend):
    """A ModelBackend that templates and counts with a ChatTokenizer and keeps its own counters.

    Subclasses implement `_generate` (called with as many params as prompts), `next_token_distribution`,
    and add to `_stats` and `_spec_stats` as they run.

    Args:
        tokenizer: the model's transformers tokenizer (with a chat template).
        max_model_len: the context length in tokens.
        speculative: whether the model speculates (then `_spec_stats` is kept).
    """

    def __init__(self, tokenizer: Any, max_model_len: int, *, speculative: bool) -> None:
        self._chat = ChatTokenizer(tokenizer, max_model_len)
        self._stats = BackendStats()
        self._spec_stats = SpecDecodeStats() if speculative else None

    @property
    def max_model_len(self) -> int:
        return self._chat.max_model_len

    def render_chat(self, messages: Sequence[ChatMessage], assistant_prefix: str | None = None) -> str:
        return self._chat.render(messages, assistant_prefix)

    def count_tokens(self, text: str) -> int:
        return len(self._chat.encode(text))

    async def generate(self, prompts: Sequence[str], params: Sequence[SamplingParams]) -> list[Generation]:
        if len(prompts) != len(params):
            raise InvalidRequestError(f"{len(prompts)} prompts but {len(params)} sampling params")
        return await self._generate(list(prompts), list(params))

    @abc.abstractmethod
    async def _generate(self, prompts: list[str], params: list[SamplingParams]) -> list[Generation]:
        """`generate`, once `prompts` and `params` are checked to have the same length."""

    def stats(self) -> BackendStats:
        s = self._stats
        return BackendStats(s.prompt_tokens, s.cached_tokens, s.generated_tokens, s.forward_calls,
                            list(s.batch_sizes))

    def spec_decode_stats(self) -> SpecDecodeStats | None:
        return None if self._spec_stats is None else self._spec_stats.copy()
