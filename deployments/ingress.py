"""Ingress deployment: the HTTP routes and the gRPC servicer, and the only place where errors become statuses.

Routes: POST /v1/reason (native), POST /v1/chat/completions (OpenAI-compatible, SSE with
`stream: true`), GET /v1/models, GET /v1/stats, GET /healthz, and FastAPI's /openapi.json and /docs.
RPCs (cluster/grpc/specserve.proto, through Serve's gRPC proxy): Reason, ReasonStream, ListModels.
Every HTTP error body is OpenAI-style `{"error": {"message", "type", "param", "code"}}`:
invalid input 400 (422 never), missing API key 401, unknown model 404, body over the cap 413, server full
503 `overloaded` with Retry-After, verifier failure 503, deadline 504, anything unexpected 500 with a
generic message (the traceback goes to the replica log only). gRPC statuses follow the same
classification (GRPC_CODES); over-long prompts and a full server are RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import grpc
from fastapi import FastAPI, Request, status
from fastapi.exceptions import HTTPException, RequestValidationError
from fastapi.responses import JSONResponse, StreamingResponse
from ray import serve
from ray.serve.grpc_util import RayServegRPCContext
from ray.serve.handle import DeploymentHandle
from starlette.exceptions import HTTPException as StarletteHTTPException

from cluster.config.schema import AppArgs, ReasoningParams
from cluster.errors import (
    BackendError,
    BackendTimeoutError,
    InvalidRequestError,
    OverloadedError,
    PromptTooLongError,
    RequestTooLargeError,
    SpecServeError,
)
from cluster.grpc import convert
from cluster.grpc import specserve_pb2 as pb
from deployments import protocol
from deployments.admission import Admission, AdmissionMiddleware, BodyLimitMiddleware
from deployments.auth import ApiKeyAuth, ApiKeyMiddleware, AuthenticationError
from deployments.runner import RequestRunner, StepStream

logger = logging.getLogger(__name__)

app = FastAPI(title="specserve", summary="Speculative reasoning: draft steps, target verification.")


def _error(code: int, message: str, type_: str, param: str | None = None, err_code: str | None = None) -> dict:
    return {"status": code, "error": {"message": message, "type": type_, "param": param, "code": err_code}}


def classify(exc: BaseException) -> dict[str, Any]:
    """{"status": int, "error": {...}} for an exception."""
    if isinstance(exc, StarletteHTTPException):
        detail = exc.detail if isinstance(exc.detail, dict) else {"message": str(exc.detail), "type": "http_error"}
        return {"status": exc.status_code, "error": {"param": None, "code": None, **detail}}
    if isinstance(exc, AuthenticationError):
        return _error(status.HTTP_401_UNAUTHORIZED, str(exc), "authentication_error", None, "invalid_api_key")
    if isinstance(exc, OverloadedError):
        return _error(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), "service_unavailable", None, "overloaded")
    if isinstance(exc, RequestTooLargeError):
        return _error(status.HTTP_413_CONTENT_TOO_LARGE, str(exc), "invalid_request_error", exc.field,
                      "request_too_large")
    if isinstance(exc, InvalidRequestError):
        code = "prompt_too_long" if isinstance(exc, PromptTooLongError) else "invalid_value"
        return _error(status.HTTP_400_BAD_REQUEST, str(exc), "invalid_request_error", exc.field, code)
    if isinstance(exc, BackendTimeoutError):
        return _error(status.HTTP_504_GATEWAY_TIMEOUT, str(exc), "timeout", None, "backend_timeout")
    if isinstance(exc, BackendError):
        return _error(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc), "service_unavailable", None, "backend_error")
    if isinstance(exc, TimeoutError):  # RequestDeadlineError; `client_deadline` when the client's timeout_s passed
        by_client = getattr(exc, "by_client", False)
        return _error(status.HTTP_504_GATEWAY_TIMEOUT, str(exc) or "request deadline exceeded", "timeout", None,
                      "client_deadline" if by_client else "request_timeout")
    logger.error("unexpected %s: %s", type(exc).__name__, exc, exc_info=exc)
    return _error(status.HTTP_500_INTERNAL_SERVER_ERROR, "internal error; see the server log", "server_error")


def _respond(exc: BaseException) -> JSONResponse:
    body = classify(exc)
    code = body.pop("status")
    headers = {"WWW-Authenticate": "Bearer"} if code == status.HTTP_401_UNAUTHORIZED else None
    if isinstance(exc, OverloadedError):
        headers = {"Retry-After": str(exc.retry_after_s)}
    return JSONResponse(status_code=code, content=body, headers=headers)


# Before serve.ingress copies the app; the last added runs first: authentication, admission, body size.
app.add_middleware(BodyLimitMiddleware, reject=_respond)
app.add_middleware(AdmissionMiddleware, reject=_respond)
app.add_middleware(ApiKeyMiddleware, reject=_respond)

GRPC_CODES = {
    status.HTTP_400_BAD_REQUEST: grpc.StatusCode.INVALID_ARGUMENT,
    status.HTTP_401_UNAUTHORIZED: grpc.StatusCode.UNAUTHENTICATED,
    status.HTTP_404_NOT_FOUND: grpc.StatusCode.NOT_FOUND,
    status.HTTP_503_SERVICE_UNAVAILABLE: grpc.StatusCode.UNAVAILABLE,
    status.HTTP_504_GATEWAY_TIMEOUT: grpc.StatusCode.DEADLINE_EXCEEDED,
}


def grpc_status(exc: BaseException) -> tuple[grpc.StatusCode, str]:
    """(code, details) for an exception: `classify` mapped through GRPC_CODES; the field at fault is named."""
    body = classify(exc)
    err = body["error"]
    code = grpc.StatusCode.RESOURCE_EXHAUSTED if err["code"] in ("prompt_too_long", "overloaded") else \
        GRPC_CODES.get(body["status"], grpc.StatusCode.INTERNAL)
    return code, err["message"] + (f" (field: {err['param']})" if err["param"] else "")


def _set_status(context: RayServegRPCContext, exc: BaseException) -> None:
    code, details = grpc_status(exc)
    context.set_code(code)
    context.set_details(details)


@app.exception_handler(RequestValidationError)
async def _on_validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
    """Body validation (FastAPI's 422) as a 400 naming the first offending field."""
    problems, params = [], []
    for e in exc.errors():
        loc = ".".join(str(p) for p in e.get("loc", ()) if p != "body")
        if e.get("type") == "json_invalid":
            problems.append(f"malformed JSON: {e.get('ctx', {}).get('error', e['msg'])}")
        else:
            params.append(loc or None)
            problems.append(f"{loc or 'body'}: {e['msg']}")
    return _respond(InvalidRequestError("; ".join(problems), field=params[0] if params else None))


@app.exception_handler(StarletteHTTPException)
@app.exception_handler(SpecServeError)
@app.exception_handler(TimeoutError)
@app.exception_handler(Exception)  # last resort: Starlette sends this body, then re-raises into the log
async def _on_error(request: Request, exc: Exception) -> JSONResponse:
    return _respond(exc)


def _metadata(context: RayServegRPCContext, key: str) -> str | None:
    return next((v for k, v in context.invocation_metadata() if k == key), None)


def _sse(data: dict[str, Any] | str) -> str:
    return f"data: {data if isinstance(data, str) else json.dumps(data)}\n\n"


@dataclass(frozen=True, slots=True)
class _ChunkMeta:
    """Fields every chunk of one streamed chat completion repeats."""

    request_id: str
    model: str
    created: int
    delimiter: str
    include_usage: bool
    prompt_tokens: int


@serve.deployment(name="Ingress")
@serve.ingress(app)
class IngressDeployment:
    """HTTP and gRPC front of the app: authenticates and validates requests, runs each through a RequestRunner.

    Args:
        drafter / verifier / controller: handles of the other deployments.
        args: the validated configuration.
        embedder: handle of the Embedder deployment (None = no embedding model configured).
    """

    def __init__(self, drafter: DeploymentHandle, verifier: DeploymentHandle, controller: DeploymentHandle,
                 args: AppArgs, embedder: DeploymentHandle | None = None) -> None:
        self.auth = ApiKeyAuth.from_env(args.server.api_key_env)  # read by ApiKeyMiddleware too
        self.admission = Admission(args.server.max_inflight_requests, args.server.retry_after_s)  # and these by
        self.limits = args.server.limits  # AdmissionMiddleware and BodyLimitMiddleware
        self._runner = RequestRunner(drafter, verifier, controller, args, embedder)
        self._model = args.server.served_model_name
        self._models = {"draft": args.draft.path, "target": args.target.path}

    @app.post("/v1/reason")
    async def reason(self, body: protocol.ReasonRequest) -> dict[str, Any]:
        """Answer a question: answer, text, stop_reason, steps (the trace) and stats."""
        question, params, _ = await self._runner.prepare(body.question, body.knobs(), "question")
        result = await self._runner.run(question, params, "question", timeout_s=body.timeout_s)
        return protocol.reason_body(result, protocol.new_id("reason"), self._model)

    @app.post("/v1/chat/completions", response_model=None)
    async def chat_completions(self, body: protocol.ChatCompletionRequest) -> dict[str, Any] | StreamingResponse:
        """OpenAI-compatible chat completion; the last (user) message is the question."""
        if body.model != self._model:
            raise HTTPException(status.HTTP_404_NOT_FOUND, {
                "message": f"model {body.model!r} does not exist; this server serves {self._model!r}",
                "type": "invalid_request_error", "param": "model", "code": "model_not_found"})
        if len(body.messages) > self.limits.messages:
            raise InvalidRequestError(f"{len(body.messages)} messages; this server allows at most "
                                      f"{self.limits.messages} (server.limits.messages)", field="messages")
        field = f"messages.{len(body.messages) - 1}.content"
        question, params, prompt_tokens = await self._runner.prepare(body.question(), body.knobs(), field)
        request_id = protocol.new_id("chatcmpl")
        if body.stream:  # a failure before the first step → a plain JSON error
            steps = await self._runner.stream(question, params, field, timeout_s=body.timeout_s)
            meta = _ChunkMeta(request_id, self._model, int(time.time()), params.step_delimiter,
                              bool(body.stream_options and body.stream_options.include_usage), prompt_tokens)
            return StreamingResponse(self._events(steps, meta), media_type="text/event-stream")
        result = await self._runner.run(question, params, field, timeout_s=body.timeout_s)
        return protocol.chat_completion_body(result, request_id, self._model, prompt_tokens)

    @app.get("/v1/models")
    async def models(self) -> dict[str, Any]:
        """The served model (OpenAI list shape); its `specserve` field names the draft and target."""
        return {"object": "list", "data": [{"id": self._model, "object": "model", "created": 0,
                                            "owned_by": "specserve", "specserve": self._models}]}

    @app.get("/v1/stats")
    async def stats(self) -> dict[str, Any]:
        """Live aggregate stats from the controller, the request defaults in force, and this ingress replica's
        admission counters (`ingress`: in_flight, limit, admitted, refused)."""
        return {**await self._runner.stats(), "ingress": self.admission.to_dict()}

    @app.get("/healthz")
    async def healthz(self) -> JSONResponse:
        """200 "ok"; 200 "degraded" when only the drafter is down; 503 "unavailable" without a verifier."""
        components = await self._runner.health()
        state, code = "ok", status.HTTP_200_OK
        if components["verifier"] != "ok":
            state, code = "unavailable", status.HTTP_503_SERVICE_UNAVAILABLE
        elif any(v != "ok" for v in components.values()):
            state = "degraded"
        return JSONResponse(status_code=code, content={"status": state, "components": components})

    async def Reason(self, request: pb.ReasonRequest, grpc_context: RayServegRPCContext) -> pb.ReasonResponse:
        """gRPC: as POST /v1/reason."""
        try:
            with self.admission.slot():
                question, params = await self._prepare_rpc(request, grpc_context)
                result = await self._runner.run(question, params, "question")
        except Exception as e:
            _set_status(grpc_context, e)
            return pb.ReasonResponse()
        return convert.reason_response(result, protocol.new_id("reason"), self._model, int(time.time()))

    async def ReasonStream(self, request: pb.ReasonRequest,
                           grpc_context: RayServegRPCContext) -> AsyncIterator[pb.ReasonStreamResponse]:
        """gRPC: one message per kept step, then the result (answer, text, stats; no steps).

        An error ends the stream with its status (the steps already sent stand); a cancelled call
        (client gone, deadline passed) cancels the request's remaining work.
        """
        steps: StepStream | None = None
        try:
            with self.admission.slot():
                question, params = await self._prepare_rpc(request, grpc_context)
                steps = await self._runner.stream(question, params, "question")
                async for step in steps:
                    yield pb.ReasonStreamResponse(step=convert.step_message(step))
                yield pb.ReasonStreamResponse(result=convert.reason_response(
                    steps.result(), protocol.new_id("reason"), self._model, int(time.time()), with_steps=False))
        except Exception as e:
            _set_status(grpc_context, e)
            raise  # a streaming call ends with the status set above only when the method raises
        finally:
            if steps is not None:
                steps.cancel()

    async def ListModels(self, request: pb.ListModelsRequest,
                         grpc_context: RayServegRPCContext) -> pb.ListModelsResponse:
        """gRPC: as GET /v1/models."""
        try:
            self.auth.check(_metadata(grpc_context, "authorization"))
        except AuthenticationError as e:
            _set_status(grpc_context, e)
            return pb.ListModelsResponse()
        return pb.ListModelsResponse(models=[pb.Model(id=self._model, **self._models)])

    async def _prepare_rpc(self, request: pb.ReasonRequest,
                           context: RayServegRPCContext) -> tuple[str, ReasoningParams]:
        self.auth.check(_metadata(context, "authorization"))
        question, params, _ = await self._runner.prepare(request.question, convert.request_knobs(request),
                                                         "question")
        return question, params

    async def _events(self, steps: StepStream, meta: _ChunkMeta) -> AsyncIterator[str]:
        """One chunk per kept step (delta = delimiter + step text, so the deltas join to `text`), then
        the finish chunk (finish_reason, `specserve` stats), the usage chunk if asked, and [DONE]."""
        def chunk(delta: dict[str, Any], **kw: Any) -> str:
            return _sse(protocol.chat_chunk(meta.request_id, meta.model, meta.created, delta, **kw))

        try:
            async for step in steps:
                delta = {"role": "assistant", "content": step.text} if step.index == 0 else {
                    "content": meta.delimiter + step.text}
                yield chunk(delta, specserve={"step": step.to_dict()})
            result = steps.result()
            yield chunk({}, finish=protocol.finish_reason(result),
                        specserve=protocol.extension(result, with_steps=False))
            if meta.include_usage:
                usage = protocol.usage(result, meta.prompt_tokens)
                yield chunk({}, usage_=usage, with_choice=False)
        except Exception as e:  # headers are sent: the error travels as an event (the OpenAI SDK raises on it)
            body = classify(e)
            body.pop("status")
            yield _sse(body)
        finally:
            steps.cancel()
        yield _sse("[DONE]")
