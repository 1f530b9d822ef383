"""Conversions between the gRPC messages and the engine's records / the client's plain dicts.

Messages are filled from the same dicts as the HTTP bodies (`ReasoningResult.to_dict()`). A record
field the proto lacks is left out rather than failing the request; tests/unit/test_grpc_convert.py
fails instead, so the proto follows every new field.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from google.protobuf import json_format
from google.protobuf.message import DecodeError, Message
from google.protobuf.unknown_fields import UnknownFieldSet

from cluster.errors import InvalidRequestError
from cluster.grpc import specserve_pb2 as pb
from cluster.reasoning.types import ReasoningResult, StepRecord

M = TypeVar("M", bound=Message)
# The largest field number, which specserve.proto never uses: a request whose bytes do not parse is passed on
# as an empty message carrying the parse error here, so that the servicer answers INVALID_ARGUMENT (grpcio
# answers UNKNOWN for a request deserializer that raises).
MALFORMED_FIELD = 2**29 - 1


def lenient_parser(message_type: type[M]) -> Callable[[bytes], M]:
    """A request deserializer that never raises: undecodable bytes give an empty message marked with the error
    (read back by `malformed_reason`)."""
    def parse(data: bytes) -> M:
        try:
            return message_type.FromString(data)
        except DecodeError as e:
            reason = str(e).encode()[:1000]
            marked = message_type()
            marked.MergeFromString(_varint(MALFORMED_FIELD << 3 | 2) + _varint(len(reason)) + reason)
            return marked
    return parse


def malformed_reason(message: Message) -> str | None:
    """The parse error a `lenient_parser` message carries, or None for a message that parsed."""
    return next((f.data.decode("utf-8", "replace") for f in UnknownFieldSet(message)
                 if f.field_number == MALFORMED_FIELD), None)


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append(n & 0x7F | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def request_knobs(request: pb.ReasonRequest) -> dict[str, Any]:
    """The knobs a ReasonRequest sets (its optional fields that are present), by ReasoningParams name.

    Raises:
        InvalidRequestError: the request's bytes did not parse (see `lenient_parser`).
    """
    if (reason := malformed_reason(request)) is not None:
        raise InvalidRequestError(f"the request does not parse: {reason}")
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
    return _parse(record.to_dict(), pb.Step())


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
