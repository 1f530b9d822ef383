"""Placement settings of a deployment (placement-group bundles and strategy): validation names the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from cluster.config import load_config
from cluster.errors import ConfigError

GPU_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "gpu.yaml"
TP2 = "deployments.verifier.placement_group_bundles=[{CPU: 1, GPU: 1}, {GPU: 1}]"


def test_gpu_config_loads_with_a_tensor_parallel_target():
    cfg = load_config([GPU_CONFIG])
    verifier, drafter = cfg.deployments.verifier, cfg.deployments.drafter
    assert cfg.target.engine_kwargs["tensor_parallel_size"] == len(verifier.placement_group_bundles) == 2
    assert verifier.placement_group_strategy == "STRICT_PACK" and verifier.num_gpus == 0
    assert drafter.num_gpus == 1 and drafter.resources.keys() != verifier.resources.keys()


def test_bundles_and_strategy_load():
    v = load_config(overrides=[TP2, "deployments.verifier.placement_group_strategy=STRICT_PACK"]).deployments.verifier
    assert v.placement_group_bundles == [{"CPU": 1.0, "GPU": 1.0}, {"GPU": 1.0}]


@pytest.mark.parametrize("overrides, message", [
    (["deployments.verifier.placement_group_strategy=STRICT_PACK"], r"deployments\.verifier: .*needs placement_group"),
    ([TP2, "deployments.verifier.placement_group_strategy=TIGHT"], r"deployments\.verifier\.placement_group_strategy"),
    (["deployments.verifier.placement_group_bundles=[]"], r"deployments\.verifier\.placement_group_bundles:"),
    (["deployments.verifier.placement_group_bundles=[{}]"], r"deployments\.verifier\.placement_group_bundles\.0:"),
    (["deployments.verifier.placement_group_bundles=[{GPU: -1}]"], r"placement_group_bundles\.0\.GPU"),
    ([TP2, "deployments.verifier.num_gpus=2"], r"placement_group_bundles\[0\] must hold .*GPU 2 > 1"),
    ([TP2, "deployments.verifier.resources={verifier_node: 0.001}"], r"placement_group_bundles\[0\].*verifier_node"),
], ids=["strategy-alone", "bad-strategy", "no-bundles", "empty-bundle", "negative", "gpu-outside", "resource-outside"])
def test_invalid_placement_names_the_key(overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(overrides=overrides)
