"""A small Python client of a running specserve app over HTTP (native and OpenAI-compatible routes) or gRPC."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator, Sequence
from typing import Any

import httpx

from cluster.constants import API_KEY_ENV
from cluster.errors import SpecServeError

DEFAULT_MODEL = "specserve"
GRPC_SCHEME = "grpc://"


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


class SpecServeRPCError(SpecServeError):
    """A gRPC call that ended with an error status.

    Attributes:
        code: the grpc.StatusCode.
        details: the server's message (it names the request field at fault, if any).
    """

    def __init__(self, code: Any, details: str) -> None:
        super().__init__(f"gRPC {code.name}: {details}")
        self.code, self.details = code, details


class _GrpcTransport:
    """The SpecServe stub on an insecure channel, with the deadline and metadata of every call."""

    def __init__(self, target: str, timeout: float, metadata: list[tuple[str, str]]) -> None:
        import grpc  # lazy: HTTP-only users never load gRPC or the generated code

        from cluster.grpc.specserve_pb2_grpc import SpecServeStub

        self._rpc_error = grpc.RpcError
        self._channel = grpc.insecure_channel(target)
        self._stub = SpecServeStub(self._channel)
        self._call = {"timeout": timeout, "metadata": metadata}

    def unary(self, method: str, request: Any) -> dict[str, Any]:
        from cluster.grpc.convert import message_dict

        try:
            return message_dict(getattr(self._stub, method)(request, **self._call))
        except self._rpc_error as e:
            raise SpecServeRPCError(e.code(), e.details()) from None

    def stream(self, request: Any) -> Iterator[dict[str, Any]]:
        from cluster.grpc.convert import message_dict

        call = self._stub.ReasonStream(request, **self._call)
        try:
            for message in call:
                yield message_dict(message)
        except self._rpc_error as e:
            raise SpecServeRPCError(e.code(), e.details()) from None
        finally:
            call.cancel()  # a consumer that stops early cancels the server's work

    def close(self) -> None:
        self._channel.close()


def _messages(prompt: str | Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{"role": "user", "content": prompt}] if isinstance(prompt, str) else list(prompt)


class SpecServeClient:
    """Calls a specserve server over HTTP or gRPC; `reason` returns the same result fields over both.

    HTTP has every route; gRPC has `reason`, `reason_stream` and `models` (the others raise SpecServeError).

    Args:
        base_url: "http://127.0.0.1:8000" (no /v1), or "grpc://127.0.0.1:9000" for gRPC.
        timeout: seconds per request (the gRPC deadline); reasoning can take minutes on a CPU.
        api_key: sent as `Authorization: Bearer <key>`; default $SPECSERVE_API_KEY (nothing when unset).
        app: gRPC: the Serve application to call (metadata `application`; needed when Serve runs several).

    Example:
        >>> with SpecServeClient("grpc://127.0.0.1:9000") as client:  # doctest: +SKIP
        ...     client.reason("What is 12 * 7?", threshold=7)["answer"]
    """

    def __init__(self, base_url: str, timeout: float = 600.0, *, api_key: str | None = None,
                 app: str | None = None) -> None:
        api_key = api_key or os.environ.get(API_KEY_ENV) or None
        self._http: httpx.Client | None = None
        self._grpc: _GrpcTransport | None = None
        if base_url.startswith(GRPC_SCHEME):
            metadata = [("application", app)] if app else []
            metadata += [("authorization", f"Bearer {api_key}")] if api_key else []
            self._grpc = _GrpcTransport(base_url.removeprefix(GRPC_SCHEME), timeout, metadata)
        else:
            headers = {"Authorization": f"Bearer {api_key}"} if api_key else None
            self._http = httpx.Client(base_url=base_url.rstrip("/"), timeout=timeout, headers=headers)

    def __enter__(self) -> SpecServeClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        (self._grpc or self._http).close()

    def reason(self, question: str, **knobs: Any) -> dict[str, Any]:
        """POST /v1/reason or the Reason RPC: answer, text, steps (trace), stats. `knobs` are ReasoningParams fields.

        Raises:
            SpecServeHTTPError / SpecServeRPCError: an error status.
            InvalidRequestError: gRPC: a knob the proto lacks or a value of the wrong type.
        """
        if self._grpc is not None:
            from cluster.grpc.convert import request_message

            return self._grpc.unary("Reason", request_message(question, knobs))
        return self._post("/v1/reason", {"question": question, **knobs})

    def reason_stream(self, question: str, **knobs: Any) -> Iterator[dict[str, Any]]:
        """gRPC ReasonStream: yields `{"step": {...}}` per kept step, then `{"result": {...}}` (no steps).

        Raises:
            SpecServeRPCError: an error status (before or between the steps).
        """
        from cluster.grpc.convert import request_message

        yield from self._require_grpc("reason_stream").stream(request_message(question, knobs))

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
        with self._require_http("stream").stream("POST", "/v1/chat/completions", json=body) as response:
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
        """The served model(s): GET /v1/models entries, or the ListModels RPC's `{id, draft, target}`."""
        if self._grpc is not None:
            from cluster.grpc.specserve_pb2 import ListModelsRequest

            return self._grpc.unary("ListModels", ListModelsRequest())["models"]
        return self._get("/v1/models")["data"]

    def health(self) -> dict[str, Any]:
        """GET /healthz: {"status": "ok" | "degraded" | "unavailable", "components": {...}} (503 raises)."""
        return self._get("/healthz")

    def stats(self) -> dict[str, Any]:
        """GET /v1/stats: the controller's aggregate stats and the defaults in force."""
        return self._get("/v1/stats")

    def _require_http(self, name: str) -> httpx.Client:
        if self._http is None:
            raise SpecServeError(f"{name} is served over HTTP only; use an http:// URL")
        return self._http

    def _require_grpc(self, name: str) -> _GrpcTransport:
        if self._grpc is None:
            raise SpecServeError(f"{name} is served over gRPC only; use a {GRPC_SCHEME} URL")
        return self._grpc

    def _get(self, path: str) -> dict[str, Any]:
        return self._check(self._require_http(f"GET {path}").get(path))

    def _post(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        return self._check(self._require_http(f"POST {path}").post(path, json=body))

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
