"""Reliability figures of the served app (issue 8): a drafter killed under load, recovery after a verifier kill,
admitted-request latency under 4× overload and the time to the first 503.

    python -m benchmarks.reliability --admitted 2 --out benchmarks/results/reliability-<date>/summary.json

Starts a local Ray instance and the app with the tiny random model pair of the tests (built offline in a
second; the figures are about orchestration, not model speed), real HTTP on loopback. The HTTP fuzz figure
comes from `python -m benchmarks.fuzz`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import threading
import time
import types
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import ray
from ray import serve

from cluster.config.schema import AppArgs
from deployments.app import build_app
from tests.integration.conftest import free_port, kill_replica, tiny_app_config, wait_for
from tests.tiny_models import build_tiny_pair

APP = "specserve-reliability"
QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"
REQUEST = {"question": QUESTION, "method": "specreason", "max_steps": 12, "max_total_tokens": 72}


def _post(url: str, body: dict[str, Any] = REQUEST) -> tuple[int, float, dict[str, Any]]:
    t0 = time.perf_counter()
    r = httpx.post(f"{url}/v1/reason", json=body, timeout=300)
    return r.status_code, time.perf_counter() - t0, r.json()


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _ready(url: str) -> None:
    wait_for(lambda: httpx.get(f"{url}/healthz", timeout=10).json()["status"], lambda s: s == "ok", timeout_s=180)


def overload(url: str, requests: int, admitted_limit: int) -> dict[str, Any]:
    """Unloaded: one request at a time. Overloaded: 4 × `admitted_limit` closed-loop clients, `requests` each."""
    clients = 4 * admitted_limit
    unloaded = [_post(url)[1] for _ in range(requests)]
    admitted, refused, first_503 = [], 0, None
    lock, start = threading.Lock(), time.perf_counter()

    def client() -> None:
        nonlocal refused, first_503
        for _ in range(requests):
            status, latency, _ = _post(url)
            with lock:
                if status == 200:
                    admitted.append(latency)
                elif status == 503:
                    refused += 1
                    first_503 = first_503 or time.perf_counter() - start
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: client(), range(clients)))
    return {"admitted_limit": admitted_limit, "offered_clients": clients, "unloaded_p50_s": _p(unloaded, 0.5),
            "unloaded_p99_s": _p(unloaded, 0.99), "admitted": len(admitted), "refused_503": refused,
            "admitted_p50_s": _p(admitted, 0.5), "admitted_p99_s": _p(admitted, 0.99),
            "p99_ratio": _p(admitted, 0.99) / _p(unloaded, 0.99), "time_to_first_503_s": first_503}


def drafter_kill(url: str, requests: int, clients: int, kill_after_s: float) -> dict[str, Any]:
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(_post, url) for _ in range(requests)]
        time.sleep(kill_after_s)
        kill_replica(APP, "Drafter")
        results = [f.result() for f in futures]
    ok = [body for status, _, body in results if status == 200]
    return {"requests": requests, "completed": len(ok), "lost": requests - len(ok),
            "degraded": sum(1 for b in ok if b["stats"]["degraded_steps"]),
            "statuses": sorted({status for status, _, _ in results})}


def verifier_kill(url: str, clients: int) -> dict[str, Any]:
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(_post, url) for _ in range(clients)]
        time.sleep(1.0)
        killed = time.perf_counter()
        kill_replica(APP, "Verifier")
        results = [f.result() for f in futures]
    failed_within = max((latency for status, latency, _ in results if status != 200), default=None)
    first_ok = wait_for(lambda: _post(url, {"question": QUESTION, "method": "target", "max_steps": 1})[0],
                        lambda s: s == 200, timeout_s=300)
    assert first_ok == 200
    return {"in_flight": len(results), "failed_503": sum(1 for s, _, _ in results if s == 503),
            "slowest_failure_s": failed_within, "recovery_s": time.perf_counter() - killed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=20, help="requests per client and per phase")
    parser.add_argument("--admitted", type=int, default=2, help="server.max_inflight_requests")
    args = parser.parse_args()
    draft, target = build_tiny_pair(Path(tempfile.mkdtemp(prefix="specserve-tiny-")))
    cfg = tiny_app_config(types.SimpleNamespace(draft=draft, target=target), APP,
                          max_inflight_requests=args.admitted, call_timeout_s=30.0)
    port = free_port()
    ray.init(address="local", num_cpus=4, include_dashboard=False, log_to_driver=False, logging_level="WARNING")
    serve.start(http_options={"host": "127.0.0.1", "port": port}, logging_config={"enable_access_log": False})
    url = f"http://127.0.0.1:{port}"
    try:
        serve.run(build_app(AppArgs.model_validate(cfg)), name=APP, route_prefix="/")
        _ready(url)
        summary: dict[str, Any] = {"machine": "2 CPU cores, no GPU", "models": "tiny random pair (tests/tiny_models)",
                                   "overload": overload(url, args.requests, args.admitted)}
        _ready(url)
        summary["drafter_kill"] = drafter_kill(url, 4 * args.requests, args.admitted, kill_after_s=3.0)
        _ready(url)
        summary["verifier_kill"] = verifier_kill(url, args.admitted)
    finally:
        serve.shutdown()
        ray.shutdown()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=2))
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
