"""The ingress's request runner: validation, the method loop over handle-backed roles, deadlines, reports.

Framework-free (no FastAPI): it raises the engine's exceptions and RequestDeadlineError for the request
deadline; `deployments.ingress` turns them into statuses.
"""

from __future__ import annotations

import asyncio
import dataclasses
import functools
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, NamedTuple

from ray import serve
from ray.serve.context import _get_global_client
from ray.serve.handle import DeploymentHandle
from ray.serve.schema import DeploymentStatus

from cluster.config.schema import AppArgs, ReasoningParams
from cluster.engine import check_params, resolve_params, uses_embedder, validate_question
from cluster.errors import BackendError, InvalidRequestError, PromptTooLongError, RequestDeadlineError
from cluster.policies.arms import Arm
from cluster.policies.truncnorm import ScorePrior, TruncNormal
from cluster.reasoning.methods import get_method
from cluster.reasoning.methods.bandit_rounds import round_params, run_bandit_rounds
from cluster.reasoning.run import StepCallback
from cluster.reasoning.types import ReasoningResult, StepRecord
from deployments.handles import HandleDrafter, HandleEmbedder, HandleVerifier, HealthMonitor, Remote, call
from deployments.metrics import RequestMetrics

logger = logging.getLogger(__name__)

CONTROL_TIMEOUT_S = 5.0  # deadline of controller and health calls (never on the per-step path)


# Deployment changes someone asked for: a replica stopped for them is not a fault.
_DELIBERATE = frozenset({"CONFIG_UPDATE_STARTED", "DELETING"})


def _all_healthy(app_name: str) -> bool:
    """Whether Serve's controller reports every deployment of `app_name` HEALTHY: a small protobuf, where
    `serve.status()` builds the details of every replica and proxy (~70 ms of CPU per call on a 2-core host,
    ~4% of a core at one probe per 2 s). Serve marks a deployment UNHEALTHY when it stops a failed replica."""
    # Serve's own client (private; serve.status() uses it too): its public API has no lighter status read.
    overview = _get_global_client().get_serve_status(app_name)
    return bool(overview.deployment_statuses) and all(
        d.status == DeploymentStatus.HEALTHY for d in overview.deployment_statuses)


async def failed_deployments() -> set[str]:
    """Deployments of this replica's application with no running replica, unless a redeploy or a deletion
    stopped it (those drain their requests), according to Serve's controller. The replica states are read
    only when a deployment is not HEALTHY."""
    app_name = serve.get_replica_context().app_name
    if await asyncio.to_thread(_all_healthy, app_name):
        return set()
    status = await asyncio.to_thread(serve.status)
    app = status.applications.get(app_name)
    if app is None or app.status == "DELETING":
        return set()
    return {name for name, d in app.deployments.items()
            if d.replica_states.get("RUNNING", 0) == 0 and d.status_trigger not in _DELIBERATE}


class ControllerArms:
    """The Controller as the bandit's arm policy: one choice per request, or per round (`ArmPolicy` of
    run_bandit_rounds).

    `choose` asks the Controller (None, so the request's own params, when it cannot be reached); `observe` waits
    until the Controller has the round's outcome, so the request's next choice already counts it (a round-trip
    of milliseconds against rounds of seconds).
    """

    def __init__(self, controller: DeploymentHandle) -> None:
        self._controller = controller

    async def choose(self) -> Arm | None:
        try:
            arm = await call(self._controller.choose_arm.remote(), "controller", CONTROL_TIMEOUT_S)
        except BackendError as e:
            logger.warning("controller unreachable (%s); running without a bandit arm", e)
            return None
        return None if arm is None else Arm.from_dict(arm)

    async def observe(self, arm: str, tokens: int, seconds: float) -> None:
        try:
            await call(self._controller.observe_round.remote(arm, tokens, seconds), "controller", CONTROL_TIMEOUT_S)
        except BackendError as e:  # a lost outcome costs the bandit a sample, never a request
            logger.warning("could not report a round to the controller: %s", e)


class Prepared(NamedTuple):
    """A request ready to run: the stripped question, its params and its tokens in the target's tokenizer."""

    question: str
    params: ReasoningParams
    prompt_tokens: int


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
        embedder: handle of the Embedder deployment (None = no embedding model configured).
    """

    def __init__(self, drafter: DeploymentHandle, verifier: DeploymentHandle, controller: DeploymentHandle,
                 args: AppArgs, embedder: DeploymentHandle | None = None) -> None:
        self._server = args.server
        self._target = args.target
        server = args.server
        remotes = [Remote(drafter, "drafter", "Drafter", server.call_timeout_s),
                   Remote(verifier, "verifier", "Verifier", server.call_timeout_s)]
        self._drafter, self._verifier = HandleDrafter(remotes[0]), HandleVerifier(remotes[1])
        self._embedder = None
        if embedder is not None:
            remotes.append(Remote(embedder, "embedder", "Embedder", server.call_timeout_s))
            self._embedder = HandleEmbedder(remotes[-1])
        self._monitor = HealthMonitor(remotes, failed_deployments, server.health_probe_interval_s)
        self._models = remotes[:2]  # what /healthz reports
        self._embedder_ready = False
        self._controller = controller
        self._arm_policy = ControllerArms(controller)
        self._defaults: ReasoningParams = args.reasoning
        self._metrics = RequestMetrics()
        self._reports: set[asyncio.Task] = set()
        bandit = args.controller.bandit
        self._arms = {a.name: dict(a.knobs) for a in bandit.arms} if bandit else {}
        self._arm_keys = {k for knobs in self._arms.values() for k in knobs}
        self._arms_use_embedder = any(k.get("step_verifier") == "embedding" for k in self._arms.values())

    async def prepare(self, question: str, knobs: dict[str, Any], field: str) -> Prepared:
        """The stripped question (request field `field`), the knobs over the defaults in force and the
        question's target tokens, checked against `server.limits` before any model runs.

        Raises:
            InvalidRequestError: empty or over-long question (PromptTooLongError: in tokens), unknown knob or
                arm, bad value, a knob over its cap, token_speculation false on an engine-wide speculating target.
        """
        self._monitor.ensure_started()
        limits = self._server.limits
        try:
            question = validate_question(question, limits.prompt_chars)
        except InvalidRequestError as e:
            raise InvalidRequestError(str(e), field=field) from e
        defaults = await self.defaults()
        params = await self._with_arm(defaults, resolve_params(defaults, knobs), knobs)
        check_params(params, limits, self._target)
        tokens = await self._verifier.count_tokens(question)
        if tokens > limits.prompt_tokens:
            raise PromptTooLongError(tokens, limits.prompt_tokens, field=field, limit="server.limits.prompt_tokens")
        return Prepared(question, params, tokens)

    async def _with_arm(self, defaults: ReasoningParams, params: ReasoningParams,
                        knobs: dict[str, Any]) -> ReasoningParams:
        """The params with an arm's knobs under the request's own knobs.

        The rule: a request that sets `arm` (or whose defaults do) pins that arm; a request that sets any knob
        some arm sets (e.g. method, threshold) keeps its knobs and gets no arm; every other request is the
        bandit's: with `bandit_granularity` "request" it gets the bandit's arm and is one pull (its outcome is
        reported as a reward); with "step" the bandit chooses an arm for every round (`run_bandit_rounds`).
        """
        if not self._arms:
            if params.arm is not None:
                raise InvalidRequestError("arm: no bandit arms are configured (controller.bandit)", field="arm")
            if params.bandit_granularity == "step":
                raise InvalidRequestError("bandit_granularity: no bandit arms are configured (controller.bandit)",
                                          field="bandit_granularity")
            return params
        name, by_bandit = params.arm, False
        if name is None:
            if self._arm_keys & knobs.keys():
                return params
            if params.bandit_granularity == "step":
                for arm_name, arm_knobs in self._arms.items():
                    round_params(params, Arm(arm_name, arm_knobs))  # every arm must run as rounds: 400 if not
                params._bandit_rounds = True
                return params
            chosen = await self._arm_policy.choose()
            if chosen is None:
                return params
            name, by_bandit = chosen.name, True
        if name not in self._arms:
            raise InvalidRequestError(f"arm: unknown arm {name!r}; valid: {sorted(self._arms)}", field="arm")
        armed = resolve_params(defaults, {**self._arms[name], **knobs, "arm": name})
        if by_bandit:
            armed._bandit_pull = True
        return armed

    async def run(self, question: str, params: ReasoningParams, field: str,
                  on_step: StepCallback | None = None, timeout_s: float | None = None) -> ReasoningResult:
        """Run the method under the request deadline; record and report the result.

        Args:
            timeout_s: the client's deadline; it may only shorten `server.request_timeout_s`.

        Raises:
            RequestDeadlineError: the deadline passed (its remaining work is cancelled).
            PromptTooLongError (naming `field`), BackendError: from the roles.
        """
        method = get_method(params.method)
        if params._bandit_rounds:
            embeds = self._arms_use_embedder or params.step_verifier == "embedding"
            method = functools.partial(run_bandit_rounds, policy=self._arm_policy,
                                       embedder=await self._ready_embedder() if embeds else None)
        elif uses_embedder(method, params):
            method = functools.partial(method, embedder=await self._ready_embedder())
        bandit_arm = params.arm if params._bandit_pull else None
        fits: list[TruncNormal] = []
        if params.method == "best_of_n":
            method = functools.partial(method, prior=await self._score_prior(), on_fit=fits.append)
        deadline, by_client = self._server.request_timeout_s, False
        if timeout_s is not None and timeout_s < deadline:
            deadline, by_client = timeout_s, True
        try:
            result = await asyncio.wait_for(method(question, self._drafter, self._verifier, params, on_step), deadline)
        except TimeoutError:
            source = "the request's timeout_s" if by_client else "server.request_timeout_s"
            raise RequestDeadlineError(f"request deadline of {deadline:g}s ({source}) passed",
                                       by_client=by_client) from None
        except PromptTooLongError as e:
            raise PromptTooLongError(e.prompt_tokens, e.max_model_len, field=field, limit=e.limit) from e
        if params.arm is not None:
            result = dataclasses.replace(result, arm=params.arm)
        self._metrics.observe(result)
        report = self._report(result, bandit_arm, fits[0] if fits else None)
        task = asyncio.create_task(report)  # fire-and-forget: off the response path
        self._reports.add(task)
        task.add_done_callback(self._reports.discard)
        return result

    async def _ready_embedder(self) -> HandleEmbedder | None:
        """The embedder, once its deployment has confirmed a model (None when none is configured).

        Raises:
            InvalidRequestError: naming step_verifier: the deployment has no model.
        """
        if self._embedder is not None and not self._embedder_ready:
            await self._embedder.check_ready()
            self._embedder_ready = True
        return self._embedder

    async def stream(self, question: str, params: ReasoningParams, field: str,
                     timeout_s: float | None = None) -> StepStream:
        """Start a run whose steps are delivered as they are kept (see StepStream)."""
        steps = StepStream(lambda on_step: self.run(question, params, field, on_step, timeout_s))
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

    async def health(self) -> dict[str, str]:
        """"ok" or "unavailable: <reason>" per model deployment (marked down, or its health check fails)."""
        async def check(remote: Remote) -> str:
            try:
                await remote.check_health(CONTROL_TIMEOUT_S)
                return "ok"
            except BackendError as e:
                return f"unavailable: {e}"

        roles = [r.role for r in self._models]
        return dict(zip(roles, await asyncio.gather(*map(check, self._models)), strict=True))

    async def _score_prior(self) -> ScorePrior | None:
        """OptScale's prior from the controller; None (MLE) when it cannot be reached."""
        try:
            return await call(self._controller.get_score_prior.remote(), "controller", CONTROL_TIMEOUT_S)
        except BackendError as e:
            logger.warning("controller unreachable (%s); best_of_n fits without a prior", e)
            return None

    async def _report(self, result: ReasoningResult, bandit_arm: str | None = None,
                      fit: TruncNormal | None = None) -> None:
        try:
            await call(self._controller.report.remote(result, bandit_arm, fit), "controller", CONTROL_TIMEOUT_S)
        except BackendError as e:  # a lost report costs a stats sample, never a request
            logger.warning("could not report to the controller: %s", e)
