"""k8s/ manifests: KubeRay CRD schemas, core kinds (kubernetes-validate --strict), Ray's Serve config schema,
the generated serveConfigV2 in sync with configs/, and the placement the GPU variant promises.
"""

from __future__ import annotations

import copy
import shutil
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import pytest
import yaml

from cluster import k8s
from cluster.config.schema import AppArgs

REPO_ROOT = Path(__file__).resolve().parents[2]
KUBERAY = REPO_ROOT.parent / "shared" / "kuberay"
CRDS = {"RayService": "ray.io_rayservices.yaml", "RayCluster": "ray.io_rayclusters.yaml"}
MANIFESTS = sorted((REPO_ROOT / "k8s").glob("*.yaml"))
DOCS = [(path, doc) for path in MANIFESTS for doc in yaml.safe_load_all(path.read_text()) if doc]
DOC_IDS = [f"{path.name}:{doc['kind']}" for path, doc in DOCS]
RAY_DOCS = [(path, doc) for path, doc in DOCS if doc["kind"] in CRDS]
RAY_IDS = [f"{path.name}:{doc['kind']}" for path, doc in RAY_DOCS]
SERVICES = [(path, doc) for path, doc in DOCS if doc["kind"] == "RayService"]
SERVICE_IDS = [path.name for path, _ in SERVICES]
needs_crds = pytest.mark.skipif(not all((KUBERAY / name).is_file() for name in CRDS.values()),
                                reason=f"the KubeRay CRDs are not at {KUBERAY} (the shared folder beside the checkout)")


def _strict(schema: Any) -> Any:
    """The schema with unknown fields rejected, as `kubectl apply --validate=strict` does."""
    if isinstance(schema, dict):
        schema = {k: _strict(v) for k, v in schema.items()}
        if "properties" in schema and "additionalProperties" not in schema:
            schema["additionalProperties"] = False
    elif isinstance(schema, list):
        schema = [_strict(v) for v in schema]
    return schema


@cache
def _crd_validator(kind: str) -> jsonschema.Validator:
    crd = yaml.safe_load((KUBERAY / CRDS[kind]).read_text())
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == "v1"]
    return jsonschema.Draft4Validator(_strict(version["schema"]["openAPIV3Schema"]))  # OpenAPI v3.0 ≈ draft 4


def _cluster_spec(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["spec"]["rayClusterConfig"] if doc["kind"] == "RayService" else doc["spec"]


def _groups(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    spec = _cluster_spec(doc)
    yield spec["headGroupSpec"]
    yield from spec.get("workerGroupSpecs", [])


def _core_objects(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """The core-API objects of a manifest: itself, or a Ray kind's pod templates and serve Service."""
    if doc["kind"] not in CRDS:
        yield doc
        return
    for i, group in enumerate(_groups(doc)):
        yield {"apiVersion": "v1", "kind": "PodTemplate", "metadata": {"name": f"group-{i}"},
               "template": group["template"]}
    if "serveService" in doc["spec"]:
        yield {"apiVersion": "v1", "kind": "Service", **doc["spec"]["serveService"]}


@needs_crds
@pytest.mark.parametrize("path, doc", RAY_DOCS, ids=RAY_IDS)
def test_ray_manifests_validate_against_the_kuberay_crds(path, doc):
    validator = _crd_validator(doc["kind"])
    errors = [f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]
    assert not errors, errors


@pytest.mark.parametrize("path, doc", DOCS, ids=DOC_IDS)
def test_core_objects_validate_strictly(path, doc):
    for obj in _core_objects(doc):
        kubernetes_validate.validate(obj, kubernetes_validate.latest_version(), strict=True)


@needs_crds
def test_validation_rejects_unknown_fields():
    _, doc = RAY_DOCS[0]
    bad = copy.deepcopy(doc)
    _cluster_spec(bad)["headGroupSpec"]["rayStartParam"] = {}
    assert not _crd_validator(doc["kind"]).is_valid(bad)
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate({"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "x"}, "strinData": {}},
                                     kubernetes_validate.latest_version(), strict=True)


@pytest.mark.parametrize("path, doc", SERVICES, ids=SERVICE_IDS)
def test_serve_config_v2_validates_with_rays_schema_and_as_app_args(path, doc):
    from ray.serve.schema import ServeDeploySchema  # Ray's own schema; no Ray instance is started

    schema = ServeDeploySchema.model_validate(yaml.safe_load(doc["spec"]["serveConfigV2"]))
    assert schema.http_options.host == "0.0.0.0"
    for app in schema.applications:
        assert app.import_path == k8s.IMPORT_PATH
        AppArgs.model_validate(app.args)


def test_generated_files_are_in_sync():
    assert k8s.stale(k8s.rendered()) == [], "run `python -m cluster.k8s render`"


def test_ray_cluster_alternative_is_the_ray_service_cluster():
    specs = {doc["kind"]: _cluster_spec(doc) for path, doc in RAY_DOCS if path.name.endswith(".gpu.yaml")}
    assert specs["RayCluster"] == specs["RayService"]


@pytest.mark.parametrize("path, doc", RAY_DOCS, ids=RAY_IDS)
def test_conventions(path, doc):
    """STYLE.md §4: head runs no work, rayVersion = image tag, GPU requests = limits, API key by secretKeyRef."""
    spec = _cluster_spec(doc)
    assert {k: spec["headGroupSpec"]["rayStartParams"][k] for k in ("num-cpus", "num-gpus")} == {
        "num-cpus": "0", "num-gpus": "0"}
    for group in _groups(doc):
        pod = group["template"]
        assert pod["metadata"]["annotations"]["prometheus.io/port"] == "8080"
        for c in pod["spec"]["containers"]:
            assert f"ray{spec['rayVersion']}" in c["image"]
            assert c["resources"]["requests"].get("nvidia.com/gpu") == c["resources"]["limits"].get("nvidia.com/gpu")
            (key,) = [e for e in c["env"] if e["name"] == "SPECSERVE_API_KEY"]
            assert key["valueFrom"]["secretKeyRef"]["name"] == "specserve-api-key"
            assert {p["name"] for p in c["ports"]} >= {"serve", "grpc", "metrics"}


def test_gpu_worker_groups_offer_what_the_gpu_config_asks():
    """Each model deployment's custom resource is declared by exactly one worker group, whose pods have the
    GPUs one replica needs (its own num_gpus, or all of its placement-group bundles)."""
    (doc,) = [doc for path, doc in SERVICES if path.name == "ray-service.gpu.yaml"]
    cfg = AppArgs.model_validate(yaml.safe_load(doc["spec"]["serveConfigV2"])["applications"][0]["args"])
    groups = _cluster_spec(doc)["workerGroupSpecs"]
    for spec in (cfg.deployments.drafter, cfg.deployments.verifier):
        (resource,) = spec.resources
        (group,) = [g for g in groups if resource in g.get("resources", {})]
        gpus = sum(b.get("GPU", 0.0) for b in spec.placement_group_bundles or [{"GPU": spec.num_gpus}])
        (container,) = group["template"]["spec"]["containers"]
        assert 0 < gpus <= int(container["resources"]["limits"]["nvidia.com/gpu"]), group["groupName"]


def test_splice_replaces_only_the_serve_config_block():
    after = "\n  rayClusterConfig:\n    x: 1\n"  # the blank line before the next key stays
    manifest = "spec:\n  serveConfigV2: |\n    old: 1\n\n    more: 2\n" + after
    assert k8s.splice(manifest, "new: 3\n") == "spec:\n  serveConfigV2: |\n    new: 3\n" + after
    with pytest.raises(ValueError, match="serveConfigV2"):
        k8s.splice("spec: {}\n", "new: 3\n")


def test_an_edited_app_config_makes_its_generated_files_stale(tmp_path):
    for folder in ("configs", "k8s"):
        shutil.copytree(REPO_ROOT / folder, tmp_path / folder)
    gpu = tmp_path / "configs" / "gpu.yaml"
    gpu.write_text(gpu.read_text().replace("max_replicas: 8", "max_replicas: 6"))
    stale = k8s.stale(k8s.rendered(tmp_path))
    assert sorted(p.relative_to(tmp_path).as_posix() for p in stale) == ["configs/serve/gpu.yaml",
                                                                       "k8s/ray-service.gpu.yaml"]
