"""A multi-node Ray cluster on one machine serving an app; reports where each replica and bundle landed.

The nodes mirror the Ray pods of k8s/ray-service.gpu.yaml with logical GPUs and the custom resources its
worker groups declare. It runs in a process of its own, because the integration suite keeps one Ray
instance per pytest process (tests/integration/conftest.py):

    python -m tests.integration.placement_cluster ARGS_JSON

ARGS_JSON is a file holding AppArgs. The last line printed is a JSON report: the HTTP status and body of
one /v1/reason request, the node each replica of every deployment runs on, and the nodes of every
placement-group bundle of each deployment.
"""

from __future__ import annotations

import json
import os
import sys
from collections import defaultdict
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve
from ray.cluster_utils import Cluster
from ray.serve import RunTarget
from ray.util import placement_group_table
from ray.util.state import list_actors

from benchmarks.local_app import free_port
from deployments.app import build_app
from deployments.launcher import wait_until_running

NODES: dict[str, dict[str, Any]] = {
    "head": {"num_cpus": 0, "num_gpus": 0},  # runs no work, like the KubeRay head (num-cpus "0")
    "cpu": {"num_cpus": 2},
    "drafter": {"num_cpus": 2, "num_gpus": 1, "resources": {"drafter_node": 1, "accelerator_type:L4": 1}},
    "target": {"num_cpus": 2, "num_gpus": 2, "resources": {"verifier_node": 1, "accelerator_type:H100": 1}},
}
APP_NAME = "placement"
TIMEOUT_S = 240.0


def main(args_path: str) -> dict[str, Any]:
    port = free_port()
    # The state API (replica → node) is served by the dashboard; its port is free whatever else runs here.
    cluster = Cluster(initialize_head=True,
                      head_node_args={**NODES["head"], "include_dashboard": True, "dashboard_port": free_port()})
    names = {cluster.head_node.node_id: "head"}
    try:
        for name, node_args in NODES.items():
            if name != "head":
                names[cluster.add_node(**node_args).node_id] = name
        ray.init(address=cluster.address, log_to_driver=False, logging_level="WARNING")
        # One HTTP proxy: every node of this cluster shares the machine's ports.
        serve.start(proxy_location="HeadOnly", http_options={"host": "127.0.0.1", "port": port},
                    logging_config={"enable_access_log": False, "log_level": "WARNING"})
        serve.run_many([RunTarget(build_app(json.loads(Path(args_path).read_text())), name=APP_NAME,
                                  route_prefix="/")],
                       wait_for_ingress_deployment_creation=False, wait_for_applications_running=False)
        wait_until_running(APP_NAME, TIMEOUT_S)
        reply = httpx.post(f"http://127.0.0.1:{port}/v1/reason", json={"question": "1 + 1?"}, timeout=TIMEOUT_S)
        return {"status": reply.status_code, "body": reply.json(), "replicas": _replica_nodes(cluster.address, names),
                "bundles": _bundle_nodes(names)}
    finally:
        if ray.is_initialized():
            serve.shutdown()
            ray.shutdown()
        cluster.shutdown()


def _replica_nodes(address: str, names: dict[str, str]) -> dict[str, list[str]]:
    """Deployment name → the node of each of its live replicas (Serve replica actors: ServeReplica:<app>:<name>)."""
    out: dict[str, list[str]] = defaultdict(list)
    for actor in list_actors(address, filters=[("state", "=", "ALIVE")], detail=True):
        prefix, _, rest = actor.class_name.partition(f":{APP_NAME}:")
        if prefix == "ServeReplica":
            out[rest].append(names[actor.node_id])
    return dict(out)


def _bundle_nodes(names: dict[str, str]) -> dict[str, list[list[str]]]:
    """Deployment name → for each replica placement group, the node of each bundle (Serve names the group
    after the replica: SERVE_REPLICA::<app>#<deployment>#<id>)."""
    out: dict[str, list[list[str]]] = defaultdict(list)
    for pg in placement_group_table().values():
        if pg["state"] == "CREATED" and pg["name"].startswith(f"SERVE_REPLICA::{APP_NAME}#"):
            deployment = pg["name"].split("#")[1]
            out[deployment].append([names[pg["bundles_to_node_id"][i]] for i in sorted(pg["bundles_to_node_id"])])
    return dict(out)


if __name__ == "__main__":
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    print(json.dumps(main(sys.argv[1])), flush=True)
