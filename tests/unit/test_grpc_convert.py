"""The gRPC definitions: generated code in sync with the .proto, the proto in sync with the engine's records,
and the conversions between messages and the HTTP API's dicts.
"""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path
from unittest.mock import Mock

import pytest

from cluster.config.schema import BestOfNParams, ReasoningParams, SSRParams
from cluster.errors import InvalidRequestError
from cluster.grpc import convert, generate
from cluster.grpc import specserve_pb2 as pb
from cluster.reasoning.types import Author, ReasoningResult, ReasoningStats, StepOutcome, StepRecord, StopReason

GENERATED = ["specserve_pb2.py", "specserve_pb2.pyi", "specserve_pb2_grpc.py"]
RESULT = ReasoningResult(
    method="specreason", answer="42", text="six times seven\n\n\\boxed{42}", stop_reason=StopReason.ANSWER,
    steps=(StepRecord(0, "six times seven", Author.DRAFT, StepOutcome.ACCEPTED, score=7.5, num_tokens=4),
           StepRecord(1, "\\boxed{42}", Author.TARGET, StepOutcome.REWRITTEN, score=2.0, draft_text="41",
                      num_tokens=5, latency_s=0.75)),
    stats=ReasoningStats(steps_drafted=2, steps_accepted=1, steps_rewritten=1, wall_time_s=1.5),
)


def names(message: type) -> set[str]:
    return {f.name for f in message.DESCRIPTOR.fields}


def test_generated_code_matches_the_proto(tmp_path: Path):
    pytest.importorskip("grpc_tools")
    assert generate.generate(tmp_path) == 0
    for name in GENERATED:
        committed = generate.ROOT / "cluster" / "grpc" / name
        assert (tmp_path / "cluster" / "grpc" / name).read_text() == committed.read_text(), \
            f"{name} is stale: run `python -m cluster.grpc.generate`"


def test_proto_covers_every_knob_step_field_and_stat():
    assert names(pb.ReasonRequest) - {"question"} == set(ReasoningParams.model_fields)
    assert names(pb.BestOfNParams) == set(BestOfNParams.model_fields)
    assert names(pb.SSRParams) == set(SSRParams.model_fields)
    assert names(pb.Step) == {f.name for f in fields(StepRecord)}
    assert names(pb.Stats) == set(ReasoningStats().to_dict())
    assert names(pb.ReasonResponse) == {"id", "model", "created", *RESULT.to_dict()}


def test_result_round_trips_to_the_http_shape():
    message = convert.reason_response(RESULT, "reason-1", "specserve", 1_700_000_000)
    assert convert.message_dict(message) == {"id": "reason-1", "model": "specserve", "created": 1_700_000_000,
                                             **RESULT.to_dict()}
    last = convert.reason_response(RESULT, "reason-1", "specserve", 0, with_steps=False)
    assert not last.steps and last.answer == "42" and not last.stats.HasField("degraded_reason")


def test_stream_events_are_one_of_step_or_result():
    step = convert.message_dict(pb.ReasonStreamResponse(step=convert.step_message(RESULT.steps[0])))
    assert step == {"step": {**RESULT.to_dict()["steps"][0]}}
    assert set(convert.message_dict(pb.ReasonStreamResponse(result=pb.ReasonResponse()))) == {"result"}


def test_request_knobs_are_the_fields_set():
    request = convert.request_message("1 + 1?", {"threshold": "5", "max_steps": 3, "method": "target"})
    assert request.question == "1 + 1?"
    assert convert.request_knobs(request) == {"threshold": 5.0, "max_steps": 3, "method": "target"}
    assert convert.request_knobs(pb.ReasonRequest(question="q")) == {}
    nested = {"best_of_n": {"select": "weighted_vote", "n_max": 4}}
    assert convert.request_knobs(convert.request_message("q", nested)) == nested


@pytest.mark.parametrize("knobs", [{"bogus": 1}, {"max_steps": "many"}], ids=["unknown-knob", "wrong-type"])
def test_bad_request_knobs_raise(knobs):
    with pytest.raises(InvalidRequestError, match=next(iter(knobs))):
        convert.request_message("q", knobs)


def test_token_speculation_knob_travels_over_grpc():
    request = convert.request_message("q", {"token_speculation": False})
    assert convert.request_knobs(request) == {"token_speculation": False}
    assert ReasoningParams().with_overrides(convert.request_knobs(request)).token_speculation is False


@pytest.mark.parametrize("payload", [b"\x0a\x02\xff\xfe", b"\x0a\xff\xff\xff\xff\x0f", b"\xff"],
                         ids=["bad-utf8-question", "length-past-the-end", "bad-tag"])
def test_undecodable_request_is_invalid_not_an_error(payload):
    """Bytes that do not parse reach the servicer marked (grpcio answered UNKNOWN; found by benchmarks/fuzz.py)."""
    request = convert.lenient_parser(pb.ReasonRequest)(payload)
    with pytest.raises(InvalidRequestError, match="does not parse"):
        convert.request_knobs(request)
    valid = pb.ReasonRequest(question="q", max_steps=2)
    assert convert.lenient_parser(pb.ReasonRequest)(valid.SerializeToString()) == valid


def test_servicer_registration_parses_leniently():
    """cluster.grpc.servicer registers every RPC of the proto, each with the lenient request parser."""
    from cluster.grpc.servicer import add_SpecServeServicer_to_server

    class Server:
        def add_generic_rpc_handlers(self, handlers):
            self.generic = handlers

        def add_registered_method_handlers(self, service, handlers):
            self.service, self.handlers = service, handlers

    server = Server()
    add_SpecServeServicer_to_server(Mock(), server)  # Serve's proxy registers a Mock servicer too
    assert server.service == "specserve.v1.SpecServe"
    assert set(server.handlers) == {"Reason", "ReasonStream", "ListModels"}
    assert server.handlers["ReasonStream"].response_streaming and not server.handlers["Reason"].response_streaming
    marked = server.handlers["Reason"].request_deserializer(b"\xff")
    assert convert.malformed_reason(marked) is not None
