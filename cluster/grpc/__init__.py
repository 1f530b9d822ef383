"""gRPC definitions: specserve.proto and the code generated from it (`python -m cluster.grpc.generate`)."""

# The servicer registration Serve's gRPC proxy imports (gRPCOptions.grpc_servicer_functions).
SERVICER_FUNCTION = "cluster.grpc.servicer.add_SpecServeServicer_to_server"
# The fully qualified service name (reflection lists it; generic clients call /<SERVICE>/<Method>).
SERVICE = "specserve.v1.SpecServe"
