"""Serve configs for KubeRay and `serve deploy`, rendered from the app configs they serve.

Each k8s/ray-service.*.yaml carries its Serve config as `serveConfigV2`, and configs/serve/gpu.yaml is
the same config for `serve deploy` onto a RayCluster. Both are generated from one AppArgs file
(configs/*.yaml), so a placement or engine setting lives in one place; a test fails when they are stale.

    python -m cluster.k8s render    # rewrite every generated file
    python -m cluster.k8s check     # exit 1 naming the stale ones
"""

from __future__ import annotations

import argparse
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from cluster.config.loader import load_config, load_raw
from cluster.errors import SpecServeError
from cluster.grpc import SERVICER_FUNCTION

REPO_ROOT = Path(__file__).resolve().parents[1]
IMPORT_PATH = "deployments.app:build_app"
# In a pod the proxies listen on every interface: the Serve Service and the kubelet probes reach them there.
BIND_ALL = "0.0.0.0"
_SERVE_CONFIG_KEY = re.compile(r"^(?P<indent> *)serveConfigV2: \|\n", re.MULTILINE)


@dataclass(frozen=True, slots=True)
class Target:
    """One app config and the files generated from it (paths relative to the repo root).

    Attributes:
        config: the AppArgs YAML, the source.
        manifests: KubeRay manifests whose `serveConfigV2: |` block is generated.
        serve_config: a Serve config file generated whole, for `serve deploy`; None = none.
    """

    config: str
    manifests: tuple[str, ...]
    serve_config: str | None = None


TARGETS = (
    Target("configs/default.yaml", ("k8s/ray-service.cpu.yaml",)),
    Target("configs/gpu.yaml", ("k8s/ray-service.gpu.yaml",), serve_config="configs/serve/gpu.yaml"),
)


def serve_config(config: Path) -> dict[str, Any]:
    """The Serve config of one app config: HTTP and gRPC proxies on every interface, the file's keys as `args`.

    Raises:
        ConfigError: the app config is invalid (naming the key).
    """
    server = load_config([config]).server
    doc: dict[str, Any] = {"http_options": {"host": BIND_ALL, "port": server.port}}
    if server.grpc_port:
        doc["grpc_options"] = {"port": server.grpc_port, "grpc_servicer_functions": [SERVICER_FUNCTION],
                               "enable_reflection": True}
    doc["applications"] = [{"name": server.app_name, "route_prefix": "/", "import_path": IMPORT_PATH,
                            "args": load_raw([config])}]
    return doc


def splice(manifest: str, block: str) -> str:
    """`manifest` with the literal block under its `serveConfigV2: |` key replaced by `block`.

    Raises:
        ValueError: the manifest has no `serveConfigV2: |` key.
    """
    key = _SERVE_CONFIG_KEY.search(manifest)
    if key is None:
        raise ValueError("no `serveConfigV2: |` key")
    indent = key["indent"] + "  "
    rest = manifest[key.end():].splitlines(keepends=True)
    end = 0
    while end < len(rest) and (rest[end].startswith(indent) or not rest[end].strip()):
        end += 1
    while end > 0 and not rest[end - 1].strip():  # blank lines before the next key stay outside
        end -= 1
    body = "".join(indent + line if line.strip() else line for line in block.splitlines(keepends=True))
    return manifest[:key.end()] + body + "".join(rest[end:])


def rendered(root: Path = REPO_ROOT) -> dict[Path, str]:
    """Every generated file and the text it must have."""
    out: dict[Path, str] = {}
    for target in TARGETS:
        block = _dump(serve_config(root / target.config))
        for manifest in target.manifests:
            out[root / manifest] = splice((root / manifest).read_text(), block)
        if target.serve_config:
            out[root / target.serve_config] = (
                f"# Generated from {target.config} by `python -m cluster.k8s render`: edit that file, then render.\n"
                f"# serve deploy {target.serve_config}   (onto a running Ray cluster; see README)\n" + block)
    return out


def stale(files: dict[Path, str]) -> list[Path]:
    """The files of `files` (see `rendered`) whose text on disk differs."""
    return [p for p, text in files.items() if not p.exists() or p.read_text() != text]


def _dump(doc: dict[str, Any]) -> str:
    return yaml.safe_dump(doc, sort_keys=False, width=100)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster.k8s", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("command", choices=["render", "check"])
    ns = parser.parse_args(argv)
    try:
        files = rendered()
    except SpecServeError as e:
        print(f"python -m cluster.k8s: error: {e}", file=sys.stderr)
        return 2
    paths = stale(files)
    for path in paths:
        if ns.command == "check":
            print(f"stale: {path.relative_to(REPO_ROOT)} (run `python -m cluster.k8s render`)", file=sys.stderr)
        else:
            path.write_text(files[path])
            print(f"wrote {path.relative_to(REPO_ROOT)}")
    return 1 if paths and ns.command == "check" else 0


if __name__ == "__main__":
    sys.exit(main())
