"""Where benchmark requests go: an in-process Engine, or a served app through `cluster.client`."""

from __future__ import annotations

import abc
import asyncio
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from cluster.config.schema import AppArgs
    from cluster.reasoning.types import ReasoningResult


class EngineLike(Protocol):
    """What the runner needs of `cluster.engine.Engine` (tests inject fakes with this shape)."""

    async def reason(self, question: str, overrides: dict[str, Any] | None = None) -> ReasoningResult: ...

    async def close(self) -> None: ...


class ClientLike(Protocol):
    """What the runner needs of `cluster.client.SpecServeClient`."""

    def reason(self, question: str, **knobs: Any) -> dict[str, Any]: ...


EngineFactory = Callable[["AppArgs"], EngineLike]
ClientFactory = Callable[[str, float], ClientLike]
AppLauncher = Callable[["AppArgs"], AbstractContextManager[str]]  # serves an app config; yields its base URL


class Reasoner(abc.ABC):
    """Answers one question with one run's knobs; the runner times each call."""

    @abc.abstractmethod
    async def reason(self, question: str, knobs: Mapping[str, Any]) -> dict[str, Any]:
        """Answer `question`.

        Returns:
            A dict shaped like `ReasoningResult.to_dict()` (method, answer, text, stop_reason, steps, stats).

        Raises:
            Whatever the engine or client raises; the runner records it against the problem.
        """

    async def describe(self) -> dict[str, Any]:
        """What the reasoner can tell about the system behind it, for meta.json (default: nothing)."""
        return {}

    async def close(self) -> None:
        """Release what the reasoner holds (models, connections)."""


class EngineReasoner(Reasoner):
    """Requests to an Engine in this process (loaded once for all the runs that share its config)."""

    def __init__(self, engine: EngineLike) -> None:
        self.engine = engine

    async def reason(self, question: str, knobs: Mapping[str, Any]) -> dict[str, Any]:
        return (await self.engine.reason(question, dict(knobs))).to_dict()

    async def close(self) -> None:
        await self.engine.close()


def default_client_factory(url: str, timeout: float) -> ClientLike:
    from cluster.client import SpecServeClient  # lazy: only served mode needs the client

    return SpecServeClient(url, timeout=timeout)


class ServedReasoner(Reasoner):
    """Requests to a served app by URL, `concurrency` at a time, one blocking client per worker thread.

    Args:
        url: base URL of the app.
        timeout: client timeout of one request, in seconds.
        concurrency: worker threads (requests in flight at once).
        client_factory: builds a client for a thread (default: `cluster.client.SpecServeClient`).
    """

    def __init__(self, url: str, timeout: float, concurrency: int,
                 client_factory: ClientFactory | None = None) -> None:
        self._factory = client_factory or default_client_factory
        self._url, self._timeout = url, timeout
        self._local = threading.local()
        self._clients: list[ClientLike] = []
        self._lock = threading.Lock()
        self._executor = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="bench-client")

    def _client(self) -> ClientLike:
        client = getattr(self._local, "client", None)
        if client is None:
            client = self._local.client = self._factory(self._url, self._timeout)
            with self._lock:
                self._clients.append(client)
        return client

    def _call(self, question: str, knobs: dict[str, Any]) -> dict[str, Any]:
        return self._client().reason(question, **knobs)

    async def reason(self, question: str, knobs: Mapping[str, Any]) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self._call, question, dict(knobs))

    def _describe(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for name in ("health", "stats"):  # optional client methods (GET /healthz, /v1/stats)
            fn = getattr(self._client(), name, None)
            if not callable(fn):
                continue
            try:
                out[name] = fn()
            except Exception as e:  # provenance only: a server that cannot say is recorded as such
                out[name] = {"error": f"{type(e).__name__}: {e}"}
        return out

    async def describe(self) -> dict[str, Any]:
        return await asyncio.get_running_loop().run_in_executor(self._executor, self._describe)

    async def close(self) -> None:
        self._executor.shutdown(wait=True)
        for client in self._clients:
            close = getattr(client, "close", None)
            if callable(close):
                close()
