"""The gRPC API through Serve's gRPC proxy: a stock grpcio stub, a reflection-based generic client, the Python
client and the CLI; bad input, a failing verifier and deadlines as gRPC statuses.

Layout: one tiny-model app for the module whose target fails or stalls only for questions carrying a
marker (tests/integration/faulty_backends.py). The stall holds the target's batch queue for SLOW_S, so
the deadline tests come last, followed by a check that the app serves again.
"""

from __future__ import annotations

import json
import time

import grpc
import httpx
import pytest
from google.protobuf import descriptor_pool, json_format, message_factory
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from ray import serve

from benchmarks.local_app import tiny_app_config
from cluster import cli
from cluster.client import GRPC_SCHEME, SpecServeClient, SpecServeRPCError
from cluster.config.schema import AppArgs
from cluster.errors import SpecServeError
from cluster.grpc import SERVICE, SERVICER_FUNCTION
from cluster.grpc import specserve_pb2 as pb
from cluster.grpc import specserve_pb2_grpc as pb_grpc
from cluster.grpc.convert import message_dict
from deployments.launcher import grpc_options, urls
from tests.integration.conftest import run_tiny_app, wait_for_grpc_route
from tests.integration.faulty_backends import FAIL_MARKER, SLOW_MARKER, SLOW_S, faulty_target

pytestmark = pytest.mark.integration

APP = "specserve-grpc"
MODEL = "specserve-tiny"
META = (("application", APP),)
QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"
CALL_TIMEOUT_S = 2.0
Code = grpc.StatusCode


def test_launcher_grpc_options():
    """`specserve up` serves the servicer with reflection on server.grpc_port; grpc_port=None turns gRPC off."""
    args = {"draft": {"path": "d"}, "target": {"path": "t"}}
    options = grpc_options(AppArgs.model_validate({**args, "server": {"grpc_port": 9123}}))
    assert options.port == 9123 and options.grpc_servicer_functions == [SERVICER_FUNCTION] and options.enable_reflection
    assert [f.__name__ for f in options.grpc_servicer_func_callable] == ["add_SpecServeServicer_to_server"]
    assert urls(AppArgs.model_validate(args))["grpc"] == "127.0.0.1:9000"
    off = AppArgs.model_validate({**args, "server": {"grpc_port": None}})
    assert grpc_options(off) is None and "grpc" not in urls(off)


@pytest.fixture(scope="module")
def channel(serve_instance, tiny_model_dirs) -> grpc.Channel:
    run_tiny_app(tiny_app_config(tiny_model_dirs, APP, call_timeout_s=CALL_TIMEOUT_S),
                 target_backend_factory=faulty_target)
    with grpc.insecure_channel(serve_instance.grpc_target) as ch:
        wait_for_grpc_route(ch, APP)
        yield ch
    serve.delete(APP)


@pytest.fixture()
def stub(channel) -> pb_grpc.SpecServeStub:
    return pb_grpc.SpecServeStub(channel)


def call(stub: pb_grpc.SpecServeStub, rpc: str, request: pb.ReasonRequest, timeout: float = 60) -> list:
    """The messages of a Reason (one) or ReasonStream (all) call."""
    if rpc == "Reason":
        return [stub.Reason(request, metadata=META, timeout=timeout)]
    return list(stub.ReasonStream(request, metadata=META, timeout=timeout))


# ---- stock grpcio stub -----------------------------------------------------------------------------------

def test_reason(stub):
    response = stub.Reason(pb.ReasonRequest(question=QUESTION), metadata=META, timeout=60)
    assert response.method == "specreason" and response.model == MODEL and response.id.startswith("reason-")
    assert 1 <= len(response.steps) <= 4
    assert response.text == "\n\n".join(s.text for s in response.steps)
    stats = response.stats
    assert stats.steps_drafted == stats.steps_accepted + stats.steps_rewritten >= 1
    assert {s.outcome for s in response.steps} <= {"accepted", "rewritten"}


def test_reason_matches_the_http_route(stub, serve_instance):
    """Both transports run the same loop: the same greedy request gives the same trace."""
    over_grpc = message_dict(stub.Reason(pb.ReasonRequest(question=QUESTION, max_steps=3), metadata=META, timeout=60))
    over_http = httpx.post(f"{serve_instance.url}/v1/reason", json={"question": QUESTION, "max_steps": 3},
                           timeout=60).json()
    for key in ("method", "answer", "text", "stop_reason"):
        assert over_grpc[key] == over_http[key], key
    # the same steps; each one's model-call seconds are measured anew by each request
    assert all(s.pop("latency_s") > 0 for body in (over_grpc, over_http) for s in body["steps"])
    assert over_grpc["steps"] == over_http["steps"]


def test_reason_stream_one_message_per_step_then_result(stub):
    *steps, last = stub.ReasonStream(pb.ReasonRequest(question=QUESTION, max_steps=3), metadata=META, timeout=60)
    assert steps and all(m.WhichOneof("event") == "step" for m in steps)
    assert [m.step.index for m in steps] == list(range(len(steps)))
    assert last.WhichOneof("event") == "result"
    result = last.result
    assert not result.steps and result.text == "\n\n".join(m.step.text for m in steps)
    assert result.stats.steps_drafted >= 1 and result.stop_reason


def test_list_models(stub, tiny_model_dirs):
    models = stub.ListModels(pb.ListModelsRequest(), metadata=META, timeout=10).models
    assert [(m.id, m.draft, m.target) for m in models] == [(MODEL, str(tiny_model_dirs.draft),
                                                            str(tiny_model_dirs.target))]


# ---- reflection-based generic client -----------------------------------------------------------------------

def test_reflection_lists_the_service_and_calls_it(channel):
    """Discover the service by reflection, build its message classes from the served descriptors, call Reason."""
    database = ProtoReflectionDescriptorDatabase(channel)
    assert SERVICE in database.get_services()
    method = descriptor_pool.DescriptorPool(database).FindServiceByName(SERVICE).methods_by_name["Reason"]
    request_cls = message_factory.GetMessageClass(method.input_type)
    response_cls = message_factory.GetMessageClass(method.output_type)
    reason = channel.unary_unary(f"/{SERVICE}/{method.name}", request_serializer=request_cls.SerializeToString,
                                 response_deserializer=response_cls.FromString)
    request = json_format.ParseDict({"question": QUESTION, "method": "target", "maxSteps": 1}, request_cls())
    response = json_format.MessageToDict(reason(request, metadata=META, timeout=60))
    assert response["method"] == "target" and len(response["steps"]) == 1


# ---- Python client and CLI -----------------------------------------------------------------------------------

def test_python_client_over_grpc(serve_instance):
    with SpecServeClient(GRPC_SCHEME + serve_instance.grpc_target, timeout=60, app=APP) as client:
        result = client.reason(QUESTION, method="target", max_steps=1)
        assert result["stats"]["target_steps"] == 1 and {"id", "answer", "text", "steps"} <= set(result)
        events = list(client.reason_stream(QUESTION, max_steps=2))
        assert set(events[-1]) == {"result"} and all(set(e) == {"step"} for e in events[:-1])
        assert client.models()[0]["id"] == MODEL
        with pytest.raises(SpecServeRPCError) as err:
            client.reason(QUESTION, threshold=99)
        assert err.value.code == Code.INVALID_ARGUMENT and "threshold" in err.value.details
        with pytest.raises(SpecServeError, match="HTTP only"):
            client.health()


def test_cli_reason_over_grpc(serve_instance, capsys):
    argv = ["reason", "--grpc", serve_instance.grpc_target, "--app", APP, "--json", QUESTION, "method=target",
            "max_steps=1"]
    assert cli.main(argv) == 0
    assert json.loads(capsys.readouterr().out)["stats"]["target_steps"] == 1


# ---- statuses ------------------------------------------------------------------------------------------------

BAD_REQUESTS = [
    (pb.ReasonRequest(question=QUESTION, method="oracle"), Code.INVALID_ARGUMENT, "method"),
    (pb.ReasonRequest(question=QUESTION, threshold=12), Code.INVALID_ARGUMENT, "threshold"),
    (pb.ReasonRequest(question="   "), Code.INVALID_ARGUMENT, "question"),
    (pb.ReasonRequest(question="x" * 4001), Code.INVALID_ARGUMENT, "question"),
    (pb.ReasonRequest(question="seven apples " * 300), Code.RESOURCE_EXHAUSTED, "question"),
    (pb.ReasonRequest(question=f"{FAIL_MARKER} {QUESTION}"), Code.UNAVAILABLE, None),
]
BAD_IDS = ["unknown-method", "threshold-out-of-range", "empty-question", "too-many-chars", "prompt-too-many-tokens",
           "verifier-down"]


@pytest.mark.parametrize("rpc", ["Reason", "ReasonStream"])
@pytest.mark.parametrize(("request_", "code", "field"), BAD_REQUESTS, ids=BAD_IDS)
def test_bad_request_status(stub, rpc, request_, code, field):
    with pytest.raises(grpc.RpcError) as err:
        call(stub, rpc, request_)
    assert err.value.code() == code, err.value.details()
    details = err.value.details()
    assert (f"(field: {field})" in details) if field else "verifier" in details
    assert "Traceback" not in details


def test_deadlines_end_a_stalled_request(stub):
    """A stalled verifier: the client's deadline ends the call at the client's time; the server's call
    deadline (server.call_timeout_s) ends it with DEADLINE_EXCEEDED too."""
    slow = pb.ReasonRequest(question=f"{SLOW_MARKER} {QUESTION}")
    start = time.monotonic()
    unary = stub.Reason.future(slow, metadata=META, timeout=0.5)
    stream = stub.ReasonStream(slow, metadata=META, timeout=0.5)
    by_server = stub.Reason.future(slow, metadata=META, timeout=30)
    with pytest.raises(grpc.RpcError) as err:
        unary.result()
    assert err.value.code() == Code.DEADLINE_EXCEEDED
    with pytest.raises(grpc.RpcError) as err:
        list(stream)
    assert err.value.code() == Code.DEADLINE_EXCEEDED
    assert time.monotonic() - start < CALL_TIMEOUT_S
    with pytest.raises(grpc.RpcError) as err:
        by_server.result()
    assert err.value.code() == Code.DEADLINE_EXCEEDED and "verifier did not answer" in err.value.details()
    assert time.monotonic() - start < SLOW_S


def test_serves_again_after_faults(stub):
    deadline = time.monotonic() + SLOW_S + 10
    while True:
        try:
            response = stub.Reason(pb.ReasonRequest(question=QUESTION, method="target", max_steps=1), metadata=META,
                                   timeout=30)
            break
        except grpc.RpcError:
            assert time.monotonic() < deadline
            time.sleep(0.5)
    assert response.stats.target_steps == 1
