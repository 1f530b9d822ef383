"""Chat templating, token counting and prompt validation over a Hugging Face tokenizer (both backends)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cluster.errors import InvalidRequestError, PromptTooLongError
from cluster.reasoning.types import ChatMessage


class ChatTokenizer:
    """The prompt side of a backend.

    Args:
        tokenizer: a transformers tokenizer with a chat template.
        max_model_len: the context length prompts are checked against.
    """

    def __init__(self, tokenizer: Any, max_model_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len

    def render(self, messages: Sequence[ChatMessage], assistant_prefix: str | None = None) -> str:
        """Apply the chat template with a generation prompt; `assistant_prefix` is appended to it verbatim.

        Appending to the generation prompt equals vLLM's `continue_final_message` for ChatML templates and
        also keeps what a template's generation prompt adds (e.g. an opening `<think>`).
        """
        dicts = [{"role": m.role, "content": m.content} for m in messages]
        text = self.tokenizer.apply_chat_template(dicts, add_generation_prompt=True, tokenize=False)
        return text + (assistant_prefix or "")

    def encode(self, text: str) -> list[int]:
        """Token ids of `text`, no special tokens added."""
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def prompt_ids(self, prompt: str, *, room: int = 1) -> list[int]:
        """Token ids of a prompt that leaves at least `room` tokens of context free.

        Raises:
            InvalidRequestError: empty prompt.
            PromptTooLongError: the prompt leaves fewer than `room` tokens free.
        """
        ids = self.encode(prompt)
        if not ids:
            raise InvalidRequestError("empty prompt", field="messages")
        if len(ids) + room > self.max_model_len:
            raise PromptTooLongError(len(ids), self.max_model_len)
        return ids
