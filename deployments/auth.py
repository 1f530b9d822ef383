"""The optional API key: `Authorization: Bearer <key>` on HTTP (header) and gRPC (metadata).

The key is read from the environment variable named by `server.api_key_env` when the ingress replica
starts (in Kubernetes, from a Secret); it never appears in config files, and it is never logged.
No key in the environment means no authentication. /healthz is always open.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Callable

from ray import serve
from starlette.datastructures import Headers
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from cluster.errors import SpecServeError

logger = logging.getLogger(__name__)

OPEN_PATHS = frozenset({"/healthz"})


class AuthenticationError(SpecServeError):
    """A request without the server's API key (HTTP 401, gRPC UNAUTHENTICATED)."""


class ApiKeyAuth:
    """Checks Authorization values against the server's key (constant-time); no key = every request passes.

    Args:
        key: the API key, or None to disable authentication.
    """

    def __init__(self, key: str | None) -> None:
        self._key = key.encode() if key else None

    @classmethod
    def from_env(cls, env_name: str | None) -> ApiKeyAuth:
        """The key in $`env_name` (unset or empty: authentication off, with a warning)."""
        key = os.environ.get(env_name, "").strip() if env_name else ""
        if key:
            logger.info("API key from $%s required on every route but /healthz", env_name)
        else:
            logger.warning("no API key in $%s: requests are not authenticated", env_name)
        return cls(key or None)

    def check(self, authorization: str | None) -> None:
        """Pass, or raise AuthenticationError for a missing, malformed or wrong `Bearer <key>`."""
        if self._key is None:
            return
        scheme, _, token = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(token.strip().encode(), self._key):
            raise AuthenticationError("missing or invalid API key; send 'Authorization: Bearer <key>'")


class ApiKeyMiddleware:
    """ASGI middleware: every HTTP route but OPEN_PATHS needs the ingress replica's API key.

    The key lives on the replica's deployment object (its `auth` attribute), reached through Serve's
    replica context because Serve copies the FastAPI app before any replica exists.

    Args:
        app: the wrapped ASGI app.
        reject: the response to a request that fails the check.
    """

    def __init__(self, app: ASGIApp, reject: Callable[[AuthenticationError], Response]) -> None:
        self.app = app
        self.reject = reject

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "").removeprefix(scope.get("root_path", ""))
        if scope["type"] == "http" and path not in OPEN_PATHS:
            auth: ApiKeyAuth = serve.get_replica_context().servable_object.auth
            try:
                auth.check(Headers(scope=scope).get("authorization"))
            except AuthenticationError as e:
                await self.reject(e)(scope, receive, send)
                return
        await self.app(scope, receive, send)
