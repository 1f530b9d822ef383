"""The draft (assistant) model of token-level speculation on the transformers backend, with its own KV prefix cache.

A `Proposal` session follows one sequence being decoded: each round it catches its cache up with the
tokens the target kept, proposes up to k tokens one forward pass each, and at the end leaves its cache
in the assistant's prefix LRU, so the next call on a longer prompt (the next reasoning step) reuses it.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from cluster.backends.kv_cache import PrefixCache
from cluster.backends.sampling import token_probs
from cluster.errors import ConfigError

if TYPE_CHECKING:
    from cluster.config.schema import ModelSpec

logger = logging.getLogger(__name__)


class Assistant:
    """A draft model that proposes tokens for a target with the same vocabulary.

    Args:
        spec: the target's spec; its `speculative` (draft model, num_speculative_tokens), dtype and
            prefix_cache_entries are used.
        target_tokenizer: the target's tokenizer (the draft's vocabulary must equal it).
        vocab_width: the width of the target's logits; the draft's logits are cut or padded to it, so the
            proposal distribution and the target's share one index space.

    Raises:
        ModelNotFoundError: the draft model does not resolve.
        ConfigError: the draft's vocabulary differs from the target's.
    """

    def __init__(self, spec: ModelSpec, target_tokenizer: Any, vocab_width: int) -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer, DynamicCache

        from cluster.modelstore import resolve_model_path

        assert spec.speculative is not None
        model_dir = resolve_model_path(spec.speculative.model)
        if AutoTokenizer.from_pretrained(model_dir, local_files_only=True).get_vocab() != target_tokenizer.get_vocab():
            raise ConfigError(f"speculative.model: {model_dir} does not share the target's tokenizer vocabulary")
        dtype = "auto" if spec.dtype == "auto" else getattr(torch, spec.dtype)
        self.model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=dtype, local_files_only=True).eval()
        config = self.model.config
        self.prefix = PrefixCache(spec.prefix_cache_entries, lambda: DynamicCache(config=config))
        self.k = spec.speculative.num_speculative_tokens
        self.width = vocab_width
        logger.info("token-level speculation: %s proposes %d tokens per round", model_dir, self.k)

    def session(self, prompt_ids: Sequence[int]) -> Proposal:
        """Start proposing for a sequence that begins with `prompt_ids` (its cached prefix is reused)."""
        cache, cached = self.prefix.take(prompt_ids)
        return Proposal(self, cache, list(prompt_ids[:cached]))

    def next_logits(self, ids: Sequence[int], cache: Any) -> torch.Tensor:
        """Feed `ids` after `cache`; the draft's logits for the next token, fitted to the target's width [width]."""
        input_ids = torch.tensor([ids], dtype=torch.long, device=self.model.device)  # [1, new]
        logits = self.model(input_ids=input_ids, past_key_values=cache, use_cache=True, logits_to_keep=1).logits[0, -1]
        if logits.shape[-1] >= self.width:
            return logits[: self.width]
        return torch.nn.functional.pad(logits, (0, self.width - logits.shape[-1]), value=-torch.inf)


class Proposal:
    """The draft's state on one sequence: `fed` are the tokens its cache holds (a prefix of the sequence)."""

    def __init__(self, assistant: Assistant, cache: Any, fed: list[int]) -> None:
        self._assistant = assistant
        self._cache = cache
        self.fed = fed

    def propose(self, seq: Sequence[int], k: int, temperature: float, top_p: float,
                generator: torch.Generator | None) -> tuple[list[int], torch.Tensor | None]:
        """Draft up to `k` tokens after `seq` (greedy at temperature 0, else sampled like the target).

        Returns:
            (the drafted tokens, their proposal distributions q [k, width]; None when greedy).
        """
        self._rewind(seq)
        new, tokens, qs = list(seq[len(self.fed):]), [], []
        for _ in range(k):
            logits = self._assistant.next_logits(new, self._cache)  # [width]
            self.fed += new
            if temperature == 0:
                token = int(torch.argmax(logits))
            else:
                qs.append(token_probs(logits, temperature, top_p))
                token = int(torch.multinomial(qs[-1], 1, generator=generator))
            tokens.append(token)
            new = [token]
        if temperature == 0:
            return tokens, None
        return tokens, torch.stack(qs) if qs else torch.zeros(0, self._assistant.width)

    def close(self, seq: Sequence[int]) -> None:
        """Leave the cache, cut to what `seq` (the final sequence) shares with it, in the prefix LRU."""
        self._rewind(seq)
        self._assistant.prefix.put(self.fed, self._cache)

    def _rewind(self, seq: Sequence[int]) -> None:
        """Drop cached tokens the target did not keep; at least the last token of `seq` is left to feed."""
        n = 0
        limit = min(len(self.fed), len(seq) - 1)
        while n < limit and self.fed[n] == seq[n]:
            n += 1
        self._cache.crop(n - len(self.fed))  # a negative count removes that many positions (0: nothing)
        del self.fed[n:]
