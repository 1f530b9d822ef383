"""What an ingress replica admits: at most `server.max_inflight_requests` requests at once, HTTP bodies of at most
`server.limits.body_bytes`. The excess is refused at once, before any body parsing or model call, so that an
overloaded server answers quickly and the admitted requests keep their latency (bounded queues, bounded memory).

Both ASGI middlewares find the replica's `Admission` and limits through Serve's replica context (the deployment
object's `admission` and `limits` attributes), because Serve copies the FastAPI app before any replica exists.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from ray import serve
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from cluster.errors import OverloadedError, RequestTooLargeError

# Requests that run a model hold a slot; reads (GET: models, stats, health, the OpenAPI document) never do.
ADMITTED_METHODS = frozenset({"POST"})


class Admission:
    """Counts the requests a replica runs and refuses those beyond `limit`.

    Args:
        limit: requests run at once.
        retry_after_s: the Retry-After a refused client gets.
    """

    def __init__(self, limit: int, retry_after_s: int) -> None:
        self.limit = limit
        self.retry_after_s = retry_after_s
        self.in_flight = 0
        self.admitted = 0
        self.refused = 0

    def acquire(self) -> None:
        """Take a slot.

        Raises:
            OverloadedError: every slot is taken.
        """
        if self.in_flight >= self.limit:
            self.refused += 1
            raise OverloadedError(f"server at capacity ({self.limit} requests in flight; "
                                  "server.max_inflight_requests); retry later", self.retry_after_s)
        self.in_flight += 1
        self.admitted += 1

    def release(self) -> None:
        self.in_flight -= 1

    @contextmanager
    def slot(self) -> Iterator[None]:
        """Hold a slot for the duration of the block (raises OverloadedError as `acquire`)."""
        self.acquire()
        try:
            yield
        finally:
            self.release()

    def to_dict(self) -> dict[str, int]:
        return {"in_flight": self.in_flight, "limit": self.limit, "admitted": self.admitted, "refused": self.refused}


def _servable() -> Any:
    return serve.get_replica_context().servable_object


class AdmissionMiddleware:
    """ASGI: a POST holds a slot of the replica's Admission until its response (a stream included) is over;
    without a free slot it gets `reject(OverloadedError)` at once."""

    def __init__(self, app: ASGIApp, reject: Callable[[Exception], Response]) -> None:
        self.app = app
        self.reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope.get("method") not in ADMITTED_METHODS:
            await self.app(scope, receive, send)
            return
        admission: Admission = _servable().admission
        try:
            admission.acquire()
        except OverloadedError as e:
            await self.reject(e)(scope, receive, send)
            return
        try:
            await self.app(scope, receive, send)
        finally:
            admission.release()


class BodyLimitMiddleware:
    """ASGI: reads an HTTP body up to the replica's `limits.body_bytes` and hands it on; a larger one (by its
    Content-Length or by the bytes that arrive) gets `reject(RequestTooLargeError)` (413) unread."""

    def __init__(self, app: ASGIApp, reject: Callable[[Exception], Response]) -> None:
        self.app = app
        self.reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cap = _servable().limits.body_bytes
        too_large = RequestTooLargeError(f"request body over {cap} bytes (server.limits.body_bytes)", field="body")
        length = Headers(scope=scope).get("content-length", "")
        if length.isdigit() and int(length) > cap:
            await self.reject(too_large)(scope, receive, send)
            return
        body, messages = 0, []
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                break
            body += len(message.get("body", b""))
            if body > cap:
                await self.reject(too_large)(scope, receive, send)
                return
            if not message.get("more_body", False):
                break

        async def replay() -> Message:
            return messages.pop(0) if messages else await receive()

        await self.app(scope, replay, send)
