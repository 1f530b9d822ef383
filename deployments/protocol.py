"""HTTP shapes of the ingress: request models and the native / OpenAI-compatible response bodies.

POST /v1/reason takes `{"question": str, "timeout_s": float, <knob>: value, ...}`: every other top-level
field is a ReasoningParams knob (method, threshold, max_step_tokens, ...). POST /v1/chat/completions takes an
OpenAI chat request; its extra top-level fields are knobs too, `max_tokens` /
`max_completion_tokens` set `max_total_tokens`, and `null` values mean "not given" (OpenAI's).
"""

from __future__ import annotations

import time
import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from cluster.errors import InvalidRequestError
from cluster.reasoning.types import ReasoningResult, StopReason

_LENGTH_STOPS = (StopReason.BUDGET, StopReason.MAX_STEPS)


class ReasonRequest(BaseModel):
    """Native request: the question plus optional ReasoningParams knobs at the top level."""

    model_config = ConfigDict(extra="allow", json_schema_extra={"examples": [
        {"question": "What is 12 * 7?", "method": "specreason", "threshold": 7.0}]})

    question: str = Field(description="The problem to reason about.")
    timeout_s: float | None = Field(None, gt=0, description="The client's deadline in seconds (it may only shorten "
                                                            "the server's request_timeout_s; 504 when it passes).")

    def knobs(self) -> dict[str, Any]:
        return dict(self.model_extra or {})


class TextPart(BaseModel):
    """One part of a multi-part message content (only text is served)."""

    type: Literal["text"] = Field(description="Part type; only text.")
    text: str = Field(description="The text.")


class ChatMessageIn(BaseModel):
    """One message of an OpenAI chat request."""

    role: Literal["system", "developer", "user", "assistant", "tool"] = Field(description="Author role.")
    content: str | list[TextPart] | None = Field(None, description="Message text (or text parts).")

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(p.text for p in self.content)
        return self.content or ""


class StreamOptions(BaseModel):
    include_usage: bool = Field(False, description="Send a last chunk with `usage` before [DONE].")


class ChatCompletionRequest(BaseModel):
    """OpenAI chat-completions request; extra top-level fields are ReasoningParams knobs.

    The question is the content of the last message, which must come from the user; earlier
    messages are not part of the reasoning prompt.
    """

    model_config = ConfigDict(extra="allow")

    model: str = Field(description="The served model id (GET /v1/models).")
    messages: list[ChatMessageIn] = Field(description="The conversation; the last message is the question.")
    stream: bool | None = Field(False, description="Send server-sent events, one chunk per reasoning step.")
    stream_options: StreamOptions | None = Field(None, description="Streaming options.")
    max_tokens: int | None = Field(None, gt=0, description="Sets the knob max_total_tokens.")
    max_completion_tokens: int | None = Field(None, gt=0, description="Sets the knob max_total_tokens.")
    n: int | None = Field(None, ge=1, le=1, description="Number of choices; only 1.")
    stop: str | list[str] | None = Field(None, description="Not supported (steps end at step_delimiter).")
    logprobs: bool | None = Field(None, description="Not supported.")
    user: str | None = Field(None, description="End-user id (ignored).")
    timeout_s: float | None = Field(None, gt=0, description="The client's deadline in seconds (it may only shorten "
                                                            "the server's request_timeout_s; 504 when it passes).")

    def question(self) -> str:
        """The last message's text.

        Raises:
            InvalidRequestError: no messages, or the last one is not a user message.
        """
        if not self.messages:
            raise InvalidRequestError("messages is empty; send at least one user message", field="messages")
        last = self.messages[-1]
        if last.role != "user":
            raise InvalidRequestError(f"the last message must have role 'user', not {last.role!r}",
                                      field=f"messages.{len(self.messages) - 1}.role")
        return last.text()

    def knobs(self) -> dict[str, Any]:
        """ReasoningParams overrides carried by the request."""
        if self.stop:
            raise InvalidRequestError("stop is not supported; steps end at step_delimiter", field="stop")
        if self.logprobs:
            raise InvalidRequestError("logprobs is not supported", field="logprobs")
        knobs = {k: v for k, v in (self.model_extra or {}).items() if v is not None}
        budget = self.max_completion_tokens or self.max_tokens
        if budget is not None:
            knobs["max_total_tokens"] = budget
        return knobs


def new_id(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


def reason_body(result: ReasoningResult, request_id: str, model: str) -> dict[str, Any]:
    """POST /v1/reason response: id, model, method, answer, text, stop_reason, steps, stats."""
    return {"id": request_id, "object": "reasoning", "created": int(time.time()), "model": model,
            **result.to_dict()}


def finish_reason(result: ReasoningResult) -> str:
    """OpenAI finish_reason: "length" when a token or step budget ended the reasoning, else "stop"."""
    return "length" if result.stop_reason in _LENGTH_STOPS else "stop"


def usage(result: ReasoningResult, prompt_tokens: int) -> dict[str, int]:
    """prompt_tokens: question tokens (target tokenizer); completion_tokens: tokens of the returned steps."""
    completion = sum(r.num_tokens for r in result.steps)
    return {"prompt_tokens": prompt_tokens, "completion_tokens": completion,
            "total_tokens": prompt_tokens + completion}


def extension(result: ReasoningResult, *, with_steps: bool = True) -> dict[str, Any]:
    """The `specserve` field: answer, method, stop reason, stats (and the step trace)."""
    data = result.to_dict()
    data.pop("text")
    if not with_steps:
        data.pop("steps")
    return data


def chat_completion_body(result: ReasoningResult, request_id: str, model: str, prompt_tokens: int) -> dict[str, Any]:
    """POST /v1/chat/completions response (non-streaming)."""
    return {
        "id": request_id, "object": "chat.completion", "created": int(time.time()), "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": result.text},
                     "logprobs": None, "finish_reason": finish_reason(result)}],
        "usage": usage(result, prompt_tokens),
        "specserve": extension(result),
    }


def chat_chunk(request_id: str, model: str, created: int, delta: dict[str, Any], *,
               finish: str | None = None, specserve: dict[str, Any] | None = None,
               usage_: dict[str, int] | None = None, with_choice: bool = True) -> dict[str, Any]:
    """One `chat.completion.chunk` of a stream."""
    chunk: dict[str, Any] = {"id": request_id, "object": "chat.completion.chunk", "created": created, "model": model,
                             "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]
                             if with_choice else []}
    if specserve is not None:
        chunk["specserve"] = specserve
    if usage_ is not None:
        chunk["usage"] = usage_
    return chunk
