"""Local apps for the benchmarks and the integration tests: serving an app config for the runner's launched
served mode, a free port, the tiny-model app configuration, polling until a condition holds, killing a replica."""

from __future__ import annotations

import contextlib
import random
import socket
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cluster.config.schema import AppArgs


@contextlib.contextmanager
def launched_app(app: AppArgs) -> Iterator[str]:
    """Serve `app` as `specserve up` does (a local Ray in this process, Serve, the app, running) and yield its base
    URL; shut Serve and Ray down on exit.

    Raises:
        ConfigError / LaunchError: resources short, deploy failed or not running in time.
    """
    from deployments import launcher  # lazy: Ray is imported only when an app is launched

    launcher.start(app)
    try:
        yield launcher.base_url(app)
    finally:
        launcher.stop(app.server.app_name)


# Ports handed out here come from below the kernel's ephemeral range, which the OS gives any socket bound to port 0
# (ray.init's raylet, GCS, agents and workers all bind so), and above the worker ports `ray start` pins by default
# (10002–19999): a port that was free when chosen is then not taken by a Ray instance starting before the caller
# binds it.
_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_FIRST_PORT = 20000
_handed_out: set[int] = set()


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago, outside the ephemeral and Ray worker port ranges, and not
    handed out before by this process."""
    try:
        last = int(_EPHEMERAL_RANGE.read_text().split()[0]) - 1
    except (OSError, ValueError, IndexError):
        last = 32767
    candidates = [p for p in range(_FIRST_PORT, max(last, _FIRST_PORT + 1000) + 1) if p not in _handed_out]
    for port in random.sample(candidates, min(len(candidates), 200)):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError(f"no free TCP port from {_FIRST_PORT} to {last}")


def tiny_app_config(dirs: Any, app_name: str, **server: Any) -> dict[str, Any]:
    """AppArgs (as a dict) serving the tiny random pair (`dirs.draft`, `dirs.target`: see tiny_models) with small
    step and token caps; `server` overrides server fields."""
    def model(path: Path) -> dict[str, Any]:
        return {"path": str(path), "backend": "transformers", "dtype": "float32", "max_model_len": 512,
                "num_threads": 1, "prefix_cache_entries": 4}

    small = {"num_cpus": 0.1, "max_ongoing_requests": 64}
    return {
        "draft": model(dirs.draft),
        "target": model(dirs.target),
        "reasoning": {"method": "specreason", "threshold": 5.0, "max_step_tokens": 6, "max_total_tokens": 40,
                      "max_steps": 4, "seed": 0},
        "deployments": {
            "drafter": {"num_cpus": 0.5, "max_ongoing_requests": 32},
            "verifier": {"num_cpus": 0.5, "max_ongoing_requests": 32, "max_batch_size": 16,
                         "batch_wait_timeout_s": 0.05},
            "controller": small,
            "ingress": small,
        },
        "server": {"app_name": app_name, "served_model_name": "specserve-tiny", "limits": {"prompt_chars": 4000},
                   "call_timeout_s": 30.0, "request_timeout_s": 60.0, **server},
    }


def wait_for(get: Callable[[], Any], ok: Callable[[Any], bool], timeout_s: float = 60) -> Any:
    """Poll `get()` every 0.5 s until `ok(value)`; assert it held before `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not ok(value := get()) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert ok(value), value
    return value


def kill_replica(app: str, deployment: str) -> str:
    """Kill the (first) replica actor of `deployment` in `app` for good (as a lost node would; Ray does not restart
    it); Serve's controller starts a new replica.

    Returns:
        The killed actor's name.
    """
    import ray

    name = next(a["name"] for a in ray.util.list_named_actors(all_namespaces=True)
                if a["name"].startswith("SERVE_REPLICA::") and f"{app}#{deployment}#" in a["name"])
    ray.kill(ray.get_actor(name, namespace="serve"), no_restart=True)
    return name
