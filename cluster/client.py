"""A small Python client of a running specserve app over HTTP (native and OpenAI-compatible routes)."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from cluster.errors import SpecServeError

DEFAULT_MODEL = "specserve"


class SpecServeHTTPError(SpecServeError):
    """A non-2xx answer; the server's OpenAI-style error fields are kept.

    Attributes:
        status: HTTP status code.
        type / param / code: the `error` object's fields (None when absent).
    """

    def __init__(self, status: int, message: str, *, type_: str | None = None, param: str | None = None,
                 code: str | None = None) -> None:
        super().__init__(f"HTTP {status}: {message}" + (f" (param: {param})" if param else ""))
        self.status, self.type, self.param, self.code = status, type_, param, code


def _messages(prompt: str | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


class SpecServeClient:
    """Calls a specserve server.

    Args:
        base_url: e.g. "http://127.0.0.1:8000" (no /v1).
        timeout: seconds per HTTP request (reasoning can take minutes on a CPU).

    Example:
        >>> with SpecServeClient("http://127.0.0.1:8000") as client:  # doctest: +SKIP
        ...     client.reason("What is 12 * 7?", threshold=7)["answer"]
    """

    def __init__(self, base_url: str, timeout: float = 600.0) -> None:
        self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout)

    def __enter__(self) -> SpecServeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._http.close()

    def reason(self, question: str, **knobs: Any) -> dict[str, Any]:
        """POST /v1/reason: answer, text, steps (trace), stats. `knobs` are ReasoningParams fields."""
        return self._post("/v1/reason", {"question": question, **knobs})

    def chat(self, prompt: str | Sequence[dict[str, Any]], *, model: str = DEFAULT_MODEL,
             **knobs: Any) -> dict[str, Any]:
        """POST /v1/chat/completions (a question string or OpenAI messages); the `specserve` field has the stats."""
        return self._post("/v1/chat/completions", {"model": model, "messages": _messages(prompt), **knobs})

    def stream(self, prompt: str | Sequence[dict[str, Any]], *, model: str = DEFAULT_MODEL,
               **knobs: Any) -> Iterator[dict[str, Any]]:
        """Stream a chat completion: yields each `chat.completion.chunk` (one per reasoning step, then the finish).

        Raises:
            SpecServeHTTPError: an error status before the stream, or an error event within it.
        """
        body = {"model": model, "messages": _messages(prompt), "stream": True, **knobs}
        with self._http.stream("POST", "/v1/chat/completions", json=body) as response:
            if response.status_code >= 400:
                response.read()
                raise self._error(response)
            for line in response.iter_lines():
                if not line.startswith("data: "):
                    continue
                data = line[len("data: "):]
                if data == "[DONE]":
                    return
                chunk = json.loads(data)
                if "error" in chunk:
                    err = chunk["error"]
                    raise SpecServeHTTPError(response.status_code, err.get("message", ""), type_=err.get("type"),
                                             param=err.get("param"), code=err.get("code"))
                yield chunk

    def models(self) -> list[dict[str, Any]]:
        """GET /v1/models: the served model(s)."""
        return self._get("/v1/models")["data"]

    def health(self) -> dict[str, Any]:
        """GET /healthz: {"status": "ok" | "degraded" | "unavailable", "components": {...}} (503 raises)."""
        return self._get("/healthz")

    def stats(self) -> dict[str, Any]:
        """GET /v1/stats: the controller's aggregate stats and the defaults in force."""
        return self._get("/v1/stats")

    def _get(self, path: str) -> dict[str, Any]:
        return self._check(self._http.get(path))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._check(self._http.post(path, json=body))

    def _check(self, response: httpx.Response) -> dict[str, Any]:
        if response.status_code >= 400:
            raise self._error(response)
        return response.json()

    @staticmethod
    def _error(response: httpx.Response) -> SpecServeHTTPError:
        try:
            err = response.json().get("error", {})
        except ValueError:
            err = {"message": response.text[:500]}
        if not isinstance(err, dict):
            err = {"message": str(err)}
        return SpecServeHTTPError(response.status_code, err.get("message", ""), type_=err.get("type"),
                                  param=err.get("param"), code=err.get("code"))
