"""The ModelBackend ABC: batched step generation, next-token distributions, token counts, templating."""

from __future__ import annotations

import abc
from collections.abc import Sequence
from dataclasses import dataclass, field

from cluster.reasoning.types import ChatMessage, FinishReason


@dataclass(frozen=True, slots=True)
class SamplingParams:
    """How one generation call samples.

    Attributes:
        max_tokens: the most tokens to generate (> 0).
        temperature: 0 means greedy.
        top_p: nucleus sampling mass (1.0 = off).
        stop: stop strings; the text ends before the first one produced, which is not returned.
        seed: per-call RNG seed for reproducible sampling (None = backend default).
    """

    max_tokens: int
    temperature: float = 0.0
    top_p: float = 1.0
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class Generation:
    """The result of one generation call.

    Attributes:
        text: generated text, cut before the first stop string.
        num_tokens: tokens generated (a stop string's tokens included).
        finish_reason: stop string, token limit or end of sequence.
        prompt_tokens: tokens in the prompt.
        cached_tokens: prompt tokens served from the prefix/KV cache rather than recomputed.
    """

    text: str
    num_tokens: int
    finish_reason: FinishReason
    prompt_tokens: int = 0
    cached_tokens: int = 0


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


class ModelBackend(abc.ABC):
    """One loaded model, shared by all requests of a process or replica.

    Every method is safe to call concurrently from one event loop; implementations serialise or
    batch internally. Prompts are plain text already rendered with `render_chat`; implementations
    reuse the KV/prefix cache of earlier calls whose prompts share a prefix with the new one, so a
    growing reasoning prefix is not re-encoded step after step.
    """

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

    async def check_health(self) -> None:
        """Raise if the engine cannot serve (used by replica health checks). Default: healthy."""

    async def close(self) -> None:
        """Release the engine's resources. Default: nothing to release."""
