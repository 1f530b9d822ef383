"""Regenerate the gRPC code from specserve.proto: `python -m cluster.grpc.generate` (needs grpcio-tools).

Paths are relative to the repository root, so the generated modules import each other as
`cluster.grpc.specserve_pb2` and the files are written beside the .proto.
"""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = Path("cluster/grpc/specserve.proto")


def generate(out: Path = ROOT) -> int:
    """Run protoc on PROTO, writing under `out` (the files land in out/cluster/grpc/); returns its exit status."""
    from grpc_tools import protoc  # lazy: a dev dependency

    include = Path(protoc.__file__).parent / "_proto"  # google/protobuf/*.proto
    args = ["protoc", f"-I{ROOT}", f"-I{include}", f"--python_out={out}", f"--pyi_out={out}",
            f"--grpc_python_out={out}", str(ROOT / PROTO)]
    return protoc.main(args)


if __name__ == "__main__":
    sys.exit(generate())
