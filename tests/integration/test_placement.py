"""Placement across nodes: the deployments of configs/gpu.yaml on a multi-node Ray cluster on one machine.

The cluster runs in a subprocess (tests/integration/placement_cluster.py) because this suite keeps one Ray
instance per pytest process. Its nodes declare logical GPUs, accelerator types and the custom resources
of the KubeRay worker groups; tiny random models on the transformers backend stand in for vLLM.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from benchmarks.local_app import tiny_app_config
from cluster.config.loader import load_config, load_raw
from cluster.constants import API_KEY_ENV
from deployments.app import deployment_options
from tests.integration.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

GPU_CONFIG = REPO_ROOT / "configs" / "gpu.yaml"
EXPECTED_NODES = {"Drafter": ["drafter"], "Verifier": ["target"], "Controller": ["cpu"], "Ingress": ["cpu"]}


def test_deployment_options_pin_every_bundle_to_the_accelerator_type():
    opts = deployment_options(load_config([GPU_CONFIG]).deployments.verifier)
    assert opts["placement_group_bundles"] == [
        {"CPU": 2.0, "GPU": 1.0, "verifier_node": 0.001, "accelerator_type:H100": 0.001},
        {"GPU": 1.0, "accelerator_type:H100": 0.001}]
    assert opts["placement_group_strategy"] == "STRICT_PACK"
    assert opts["ray_actor_options"] == {"num_cpus": 2.0, "num_gpus": 0.0, "resources": {"verifier_node": 0.001},
                                         "accelerator_type": "H100"}


def test_gpu_config_puts_drafters_and_verifiers_on_their_nodes(tiny_model_dirs, tmp_path):
    cfg = tiny_app_config(tiny_model_dirs, "placement")
    cfg["deployments"] = load_raw([GPU_CONFIG])["deployments"]
    args = tmp_path / "args.json"
    args.write_text(json.dumps(cfg))
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO_ROOT)}
    env.pop(API_KEY_ENV, None)  # the request carries no key
    proc = subprocess.run([sys.executable, "-m", "tests.integration.placement_cluster", str(args)], cwd=REPO_ROOT,
                          env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads(proc.stdout.strip().splitlines()[-1])

    assert report["replicas"] == EXPECTED_NODES
    # the tensor-parallel target: both GPU bundles of the replica's placement group on the target node
    assert report["bundles"] == {"Verifier": [["target", "target"]]}
    # a request still works, and both roles served it
    assert report["status"] == 200, report["body"]
    stats = report["body"]["stats"]
    assert report["body"]["steps"] and stats["steps_drafted"] > 0 and stats["judge_calls"] > 0
