"""The servicer registration Serve's gRPC proxy imports: the generated one, with request deserializers that
never raise, so that a payload that is not a valid message gets INVALID_ARGUMENT rather than grpcio's UNKNOWN."""

from __future__ import annotations

from typing import Any

import grpc
from google.protobuf.message_factory import GetMessageClass

from cluster.grpc import specserve_pb2 as pb
from cluster.grpc.convert import lenient_parser

_SERVICE = pb.DESCRIPTOR.services_by_name["SpecServe"]


def add_SpecServeServicer_to_server(servicer: Any, server: Any) -> None:  # the generated name, kept
    """As `specserve_pb2_grpc.add_SpecServeServicer_to_server`, every request parsed by `lenient_parser`."""
    handlers = {}
    for method in _SERVICE.methods:
        handler = grpc.unary_stream_rpc_method_handler if method.server_streaming else \
            grpc.unary_unary_rpc_method_handler
        handlers[method.name] = handler(getattr(servicer, method.name),
                                        request_deserializer=lenient_parser(GetMessageClass(method.input_type)),
                                        response_serializer=GetMessageClass(method.output_type).SerializeToString)
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler(_SERVICE.full_name, handlers),))
    server.add_registered_method_handlers(_SERVICE.full_name, handlers)
