"""The Serve config, the app builder and the launcher: schema checks, the fail-fast resource check, and
`deployments.launcher.up` end to end in a subprocess (its own Ray: start, answer, SIGINT, clean exit).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import yaml
from ray.serve import Application
from ray.serve.schema import ServeDeploySchema

from benchmarks.local_app import free_port, tiny_app_config
from cluster.backends.openmp import SPIN_COUNT, USER_SETTINGS
from cluster.config.loader import load_config
from cluster.config.schema import AppArgs
from cluster.errors import ConfigError
from deployments.app import build_app, deployment_options
from deployments.launcher import check_resources, ray_environment, required_resources
from tests.integration.conftest import REPO_ROOT

pytestmark = pytest.mark.integration

SERVE_CONFIGS = sorted((REPO_ROOT / "configs" / "serve").glob("*.yaml"))
UP_SCRIPT = """
import json, logging, sys
logging.basicConfig(level=logging.INFO, stream=sys.stdout)
from cluster.config.schema import AppArgs
from deployments.launcher import up
up(AppArgs.model_validate(json.loads(sys.argv[1])))
"""


@pytest.mark.parametrize("path", SERVE_CONFIGS, ids=[p.name for p in SERVE_CONFIGS])
def test_serve_config_validates(path: Path):
    schema = ServeDeploySchema.model_validate(yaml.safe_load(path.read_text()))
    for app in schema.applications:
        assert app.import_path == "deployments.app:build_app"
        assert isinstance(build_app(app.args), Application)  # args validate as AppArgs; nothing loads yet


def test_default_serve_config_matches_default_config():
    app = ServeDeploySchema.model_validate(yaml.safe_load((REPO_ROOT / "configs/serve/default.yaml").read_text()))
    assert AppArgs.model_validate(app.applications[0].args) == load_config()


def test_build_app_names_the_invalid_key():
    with pytest.raises(ConfigError, match="deployments.verifier.max_batch_size"):
        build_app({"draft": {"path": "d"}, "target": {"path": "t"},
                   "deployments": {"verifier": {"max_batch_size": 0}}})


def test_deployment_options_carry_resources_and_autoscaling():
    cfg = AppArgs.model_validate({"draft": {"path": "d"}, "target": {"path": "t"}, "deployments": {
        "verifier": {"num_gpus": 1, "accelerator_type": "H100", "resources": {"vram": 2},
                     "autoscaling": {"min_replicas": 1, "max_replicas": 3}}}})
    opts = deployment_options(cfg.deployments.verifier)
    assert opts["ray_actor_options"] == {"num_cpus": 1.0, "num_gpus": 1.0, "resources": {"vram": 2.0},
                                         "accelerator_type": "H100"}
    assert opts["autoscaling_config"]["max_replicas"] == 3 and "num_replicas" not in opts
    assert required_resources(cfg)["GPU"] == 1.0


def test_required_resources_count_every_placement_bundle():
    cfg = AppArgs.model_validate({"draft": {"path": "d"}, "target": {"path": "t"}, "deployments": {
        "verifier": {"num_cpus": 2, "num_replicas": 2,
                     "placement_group_bundles": [{"CPU": 2, "GPU": 1}, {"GPU": 1}]}}})
    need = required_resources(cfg)
    assert need["GPU"] == 4.0 and need["CPU"] == 2 * 2 + 1 + 0.1 + 0.1
    with pytest.raises(ConfigError, match=r"GPU: deployments request 4, Ray has 2"):
        check_resources(cfg, {"CPU": 8.0, "GPU": 2.0})


def test_check_resources_fails_fast_naming_the_shortfall():
    cfg = load_config()  # 2.2 CPUs requested
    check_resources(cfg, {"CPU": 4.0})
    with pytest.raises(ConfigError, match=r"CPU: deployments request 2.2, Ray has 2"):
        check_resources(cfg, {"CPU": 2.0})


def _launch(cfg: dict) -> subprocess.Popen:
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen([sys.executable, "-c", UP_SCRIPT, json.dumps(cfg)], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def test_up_fails_fast_when_replicas_cannot_be_scheduled(tiny_model_dirs):
    cfg = tiny_app_config(tiny_model_dirs, "too-big", ray_num_cpus=1, port=free_port())
    cfg["deployments"]["verifier"]["num_cpus"] = 2
    proc = _launch(cfg)
    out, _ = proc.communicate(timeout=120)
    assert proc.returncode != 0
    assert "cannot be scheduled" in out and "CPU: deployments request" in out


def _replica_pids(app_name: str) -> list[int]:
    """The live Serve replica processes of `app_name`."""
    found = []
    for proc_dir in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if proc_dir.name.isdigit() and f"ServeReplica:{app_name}:" in (proc_dir / "cmdline").read_text():
                found.append(int(proc_dir.name))
    return found


def _environment_of(pid: int) -> dict[str, str]:
    entries = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(e.decode(errors="replace").split("=", 1) for e in entries if b"=" in e)


def test_ray_environment_sets_worker_niceness_serve_periods_and_openmp_spin(monkeypatch):
    for name in USER_SETTINGS:
        monkeypatch.delenv(name, raising=False)
    cfg = AppArgs.model_validate({"draft": {"path": "d"}, "target": {"path": "t"},
                                  "server": {"ray_worker_niceness": 5, "serve_control_loop_s": 0.25,
                                             "serve_metrics_export_s": 1.5}})
    assert ray_environment(cfg) == {"GOMP_SPINCOUNT": SPIN_COUNT, "RAY_worker_niceness": "5",
                                    "RAY_SERVE_CONTROL_LOOP_INTERVAL_S": "0.25",
                                    "RAY_SERVE_METRICS_EXPORT_INTERVAL_MS": "1500"}
    for key, bad in (("ray_worker_niceness", 20), ("serve_metrics_export_s", 0)):
        with pytest.raises(ValueError, match=key):
            AppArgs.model_validate({"draft": {"path": "d"}, "target": {"path": "t"}, "server": {key: bad}})


def test_up_serves_until_sigint_then_shuts_down(tiny_model_dirs):
    port = free_port()
    proc = _launch(tiny_app_config(tiny_model_dirs, "up-smoke", ray_num_cpus=2, port=port, grpc_port=free_port()))
    lines: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line) for line in proc.stdout], daemon=True).start()
    seen: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not any("serving" in line for line in seen):  # logged once the app is RUNNING
            assert proc.poll() is None and time.monotonic() < deadline, "".join(seen)
            with contextlib.suppress(queue.Empty):
                seen.append(lines.get(timeout=1))
        r = httpx.post(f"http://127.0.0.1:{port}/v1/reason", json={"question": "1 + 1?", "max_steps": 1}, timeout=60)
        assert r.status_code == 200
        replicas = _replica_pids("up-smoke")
        assert {os.getpriority(os.PRIO_PROCESS, pid) for pid in replicas} == {0}  # not Ray's own 15
        # the engines in the replicas wait at OpenMP barriers with a short spin (cluster.backends.openmp)
        assert {_environment_of(pid).get("GOMP_SPINCOUNT") for pid in replicas} == {SPIN_COUNT}
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=90)
    time.sleep(0.5)
    seen += list(lines.queue)
    out = "".join(seen)
    assert proc.returncode == 0, out
    assert "shutting down" in out and f"http://127.0.0.1:{port}/v1/reason" in out
