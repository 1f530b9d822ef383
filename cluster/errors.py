"""Exceptions the engine raises; only the ingress and the CLI turn them into statuses or messages."""

from __future__ import annotations


class SpecServeError(Exception):
    """Base class of every specserve error."""


class ConfigError(SpecServeError):
    """An invalid configuration; the message names the offending key."""


class InvalidRequestError(SpecServeError):
    """A request that cannot be served as asked.

    Attributes:
        field: the request field at fault (dotted path), or None.
    """

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class PromptTooLongError(InvalidRequestError):
    """The prompt (plus the tokens still to generate) does not fit the model's context, or the server's cap."""

    def __init__(self, prompt_tokens: int, max_model_len: int, *, field: str | None = "messages",
                 limit: str = "the model's context") -> None:
        super().__init__(f"prompt has {prompt_tokens} tokens; {limit} is {max_model_len} tokens", field=field)
        self.prompt_tokens = prompt_tokens
        self.max_model_len = max_model_len
        self.limit = limit

    def __reduce__(self):  # keep it picklable: Ray re-raises a replica's exception in the caller
        return type(self), (self.prompt_tokens, self.max_model_len), {"field": self.field, "limit": self.limit}


class RequestTooLargeError(InvalidRequestError):
    """A request body over `server.limits.body_bytes` (HTTP 413)."""


class RequestDeadlineError(SpecServeError, TimeoutError):
    """A request's deadline passed (HTTP 504, gRPC DEADLINE_EXCEEDED); its remaining work is cancelled.

    Attributes:
        by_client: the deadline was the client's own `timeout_s` (shorter than the server's).
    """

    def __init__(self, message: str, *, by_client: bool) -> None:
        super().__init__(message)
        self.by_client = by_client


class OverloadedError(SpecServeError):
    """The server runs as many requests as it admits (HTTP 503 + Retry-After, gRPC RESOURCE_EXHAUSTED).

    Attributes:
        retry_after_s: seconds after which a retry may be admitted.
    """

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class ModelNotFoundError(SpecServeError):
    """A configured model path or name that does not resolve to a model directory."""


class ChecksumMismatchError(SpecServeError):
    """Downloaded model data whose sha256 differs from the expected one."""


class BackendError(SpecServeError):
    """A model backend failed to produce an output."""


class BackendUnavailableError(BackendError):
    """A model backend (or the replica holding it) cannot be reached or timed out."""


class BackendTimeoutError(BackendUnavailableError):
    """A call to a model backend (or the replica holding it) missed its deadline."""
