"""The ingress's request runner: validation, the method loop over handle-backed roles, deadlines, reports.

Framework-free (no FastAPI): it raises the engine's exceptions and `TimeoutError` for the request
deadline; `deployments.ingress` turns them into statuses.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from ray.serve.handle import DeploymentHandle

from cluster.config.schema import AppArgs, ReasoningParams
from cluster.engine import resolve_params, validate_question
from cluster.errors import BackendError, InvalidRequestError, PromptTooLongError
from cluster.reasoning.methods import get_method
from cluster.reasoning.run import StepCallback
from cluster.reasoning.types import ReasoningResult, StepRecord
from deployments.handles import HandleDrafter, HandleVerifier, call
from deployments.metrics import RequestMetrics

logger = logging.getLogger(__name__)

CONTROL_TIMEOUT_S = 5.0  # deadline of controller and health calls (never on the per-step path)


class StepStream:
    """A running request whose steps arrive as the method keeps them.

    `start()` waits for the first step, so a request that fails before any step raises there (and
    can still get a plain error status); afterwards iterate the steps, then read `result()`.
    """

    def __init__(self, run: Callable[[StepCallback], Awaitable[ReasoningResult]]) -> None:
        self._queue: asyncio.Queue[StepRecord | None] = asyncio.Queue()
        self._task = asyncio.ensure_future(run(self._queue.put))
        self._task.add_done_callback(lambda _: self._queue.put_nowait(None))
        self._first: StepRecord | None = None

    async def start(self) -> None:
        try:
            self._first = await self._queue.get()
        except BaseException:
            self.cancel()
            raise
        if self._first is None:
            self._task.result()  # raises the run's error

    async def __aiter__(self) -> AsyncIterator[StepRecord]:
        item = self._first
        while item is not None:
            yield item
            item = await self._queue.get()

    def result(self) -> ReasoningResult:
        return self._task.result()

    def cancel(self) -> None:
        if not self._task.done():
            self._task.cancel()


class RequestRunner:
    """Runs requests against the Drafter, Verifier and Controller deployments.

    Args:
        drafter / verifier / controller: deployment handles.
        args: the configuration (server deadlines and limits; `reasoning` until the controller answers).
    """

    def __init__(self, drafter: DeploymentHandle, verifier: DeploymentHandle, controller: DeploymentHandle,
                 args: AppArgs) -> None:
        self._server = args.server
        self._handles = {"drafter": drafter, "verifier": verifier}
        self._drafter = HandleDrafter(drafter, args.server.call_timeout_s)
        self._verifier = HandleVerifier(verifier, args.server.call_timeout_s)
        self._controller = controller
        self._defaults: ReasoningParams = args.reasoning
        self._metrics = RequestMetrics()
        self._reports: set[asyncio.Task] = set()

    async def prepare(self, question: str, knobs: dict[str, Any], field: str) -> tuple[str, ReasoningParams]:
        """The stripped question (request field `field`) and the knobs over the defaults in force.

        Raises:
            InvalidRequestError: empty or over-long question, unknown knob, bad value.
        """
        try:
            question = validate_question(question, self._server.max_prompt_chars)
        except InvalidRequestError as e:
            raise InvalidRequestError(str(e), field=field) from e
        return question, resolve_params(await self.defaults(), knobs)

    async def run(self, question: str, params: ReasoningParams, field: str,
                  on_step: StepCallback | None = None) -> ReasoningResult:
        """Run the method under the request deadline; record and report the result.

        Raises:
            TimeoutError: `server.request_timeout_s` passed.
            PromptTooLongError (naming `field`), BackendError: from the roles.
        """
        method = get_method(params.method)
        try:
            result = await asyncio.wait_for(method(question, self._drafter, self._verifier, params, on_step),
                                            self._server.request_timeout_s)
        except PromptTooLongError as e:
            raise PromptTooLongError(e.prompt_tokens, e.max_model_len, field=field) from e
        self._metrics.observe(result)
        task = asyncio.create_task(self._report(result))  # fire-and-forget: off the response path
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)
        return result

    async def stream(self, question: str, params: ReasoningParams, field: str) -> StepStream:
        """Start a run whose steps are delivered as they are kept (see StepStream)."""
        steps = StepStream(lambda on_step: self.run(question, params, field, on_step))
        await steps.start()
        return steps

    async def defaults(self) -> ReasoningParams:
        """The controller's defaults in force; the last ones seen when it cannot be reached."""
        try:
            self._defaults = await call(self._controller.get_defaults.remote(), "controller", CONTROL_TIMEOUT_S)
        except BackendError as e:
            logger.warning("controller unreachable (%s); using the last known defaults", e)
        return self._defaults

    async def stats(self) -> dict[str, Any]:
        """The controller's aggregate stats."""
        return await call(self._controller.get_stats.remote(), "controller", CONTROL_TIMEOUT_S)

    async def prompt_tokens(self, question: str) -> int:
        """Question tokens in the target's tokenizer (0 when the verifier cannot say)."""
        try:
            return await self._verifier.count_tokens(question)
        except BackendError as e:
            logger.warning("could not count prompt tokens: %s", e)
            return 0

    async def health(self) -> dict[str, str]:
        """"ok" or "unavailable: <reason>" per model deployment."""
        async def check(role: str) -> str:
            try:
                await call(self._handles[role].check_health.remote(), role, CONTROL_TIMEOUT_S)
                return "ok"
            except BackendError as e:
                return f"unavailable: {e}"

        roles = list(self._handles)
        return dict(zip(roles, await asyncio.gather(*map(check, roles)), strict=True))

    async def _report(self, result: ReasoningResult) -> None:
        try:
            await call(self._controller.report.remote(result), "controller", CONTROL_TIMEOUT_S)
        except BackendError as e:  # a lost report costs a stats sample, never a request
            logger.warning("could not report to the controller: %s", e)
