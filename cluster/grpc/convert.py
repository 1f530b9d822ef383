"""Conversions between the gRPC messages and the engine's records / the client's plain dicts.

Messages are filled from the same dicts as the HTTP bodies (`ReasoningResult.to_dict()`). A record
field the proto lacks is left out rather than failing the request; tests/unit/test_grpc_convert.py
fails instead, so the proto follows every new field.
"""

from __future__ import annotations

from dataclasses import asdict
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from cluster.errors import InvalidRequestError
from cluster.grpc import specserve_pb2 as pb
from cluster.reasoning.types import ReasoningResult, StepRecord


def request_knobs(request: pb.ReasonRequest) -> dict[str, Any]:
    """The knobs a ReasonRequest sets (its optional fields that are present), by ReasoningParams name."""
    return {field.name: json_format.MessageToDict(value, preserving_proto_field_name=True)
            if field.message_type is not None else value
            for field, value in request.ListFields() if field.name != "question"}


def request_message(question: str, knobs: dict[str, Any]) -> pb.ReasonRequest:
    """A ReasonRequest from a question and knobs (strings are parsed as the field's type: "5" → 5.0).

    Raises:
        InvalidRequestError: a knob the proto lacks, or a value of the wrong type.
    """
    try:
        return json_format.ParseDict({"question": question, **knobs}, pb.ReasonRequest())
    except json_format.ParseError as e:
        raise InvalidRequestError(f"bad request knob: {str(e).splitlines()[0]}") from e


def step_message(record: StepRecord) -> pb.Step:
    return _parse({**asdict(record), "author": record.author.value, "outcome": record.outcome.value}, pb.Step())


def reason_response(result: ReasoningResult, request_id: str, model: str, created: int, *,
                    with_steps: bool = True) -> pb.ReasonResponse:
    """The Reason response (the last ReasonStream message, without the steps, when `with_steps` is False)."""
    data = {"id": request_id, "model": model, "created": created, **result.to_dict()}
    if not with_steps:
        data["steps"] = []
    return _parse(data, pb.ReasonResponse())


def _parse(data: dict[str, Any], message: Message) -> Any:
    return json_format.ParseDict(data, message, ignore_unknown_fields=True)


def message_dict(message: Message) -> dict[str, Any]:
    """A message as the HTTP API's JSON shape: every field present, unset optional fields as None.

    Unlike `json_format.MessageToDict`, 64-bit integers stay ints and absent optional fields stay keys.
    """
    out: dict[str, Any] = {}
    for field in message.DESCRIPTOR.fields:
        value = getattr(message, field.name)
        if field.message_type is not None:
            if field.is_repeated:
                value = [message_dict(v) for v in value]
            elif field.containing_oneof is not None and not message.HasField(field.name):
                continue
            else:
                value = message_dict(value)
        elif field.is_repeated:
            value = list(value)
        elif field.has_presence and not message.HasField(field.name):
            value = None
        out[field.name] = value
    return out
