"""Reliability figures of the served app (issue 8): a drafter killed under load, recovery after a verifier kill,
admitted-request latency under 4× overload and the time to the first 503.

    python -m benchmarks.reliability --admitted 1 --requests 40 --out benchmarks/results/reliability-<date>/summary.json

Overload is offered three ways: Poisson arrivals at 4× the measured capacity (refused requests are not retried),
and 4 × `--admitted` closed-loop clients that either honour Retry-After or retry at once. The client runs on the
same cores as the app; each overload result records the client's own CPU share.

Starts a local Ray instance and the app with the tiny random model pair of the tests (built offline in a
second; the figures are about orchestration, not model speed), real HTTP on loopback. The HTTP fuzz figure
comes from `python -m benchmarks.fuzz`.
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
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

from benchmarks.local_app import free_port, kill_replica, tiny_app_config, wait_for
from benchmarks.tiny_models import build_tiny_pair
from cluster.config.schema import AppArgs
from deployments.app import build_app

APP = "specserve-reliability"
QUESTION = "Tom has 3 boxes with 14 pens each. How many pens does he have?"
SCENARIOS = ("overload", "drafter_kill", "verifier_kill")
REQUEST = {"question": QUESTION, "method": "specreason", "max_steps": 12, "max_total_tokens": 72}


def _post(url: str, body: dict[str, Any] = REQUEST,
          client: httpx.Client | None = None) -> tuple[int, float, dict[str, Any], httpx.Headers]:
    t0 = time.perf_counter()
    r = (client or httpx).post(f"{url}/v1/reason", json=body, timeout=300)
    return r.status_code, time.perf_counter() - t0, r.json(), r.headers


def _p(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _ready(url: str) -> None:
    wait_for(lambda: httpx.get(f"{url}/healthz", timeout=10).json()["status"], lambda s: s == "ok", timeout_s=180)


def unloaded(url: str, requests: int) -> list[float]:
    """Latencies of `requests` requests sent one at a time (keep-alive connection)."""
    with httpx.Client() as client:
        return [_post(url, client=client)[1] for _ in range(requests)]


class _Tally:
    """Outcomes of an overload phase, shared by its client threads: admitted latencies, refusals, first 503."""

    def __init__(self, wanted: int) -> None:
        self.wanted, self.admitted, self.refused, self.first_503 = wanted, [], 0, None
        self.lock, self.start = threading.Lock(), time.perf_counter()

    def done(self) -> bool:
        with self.lock:
            return len(self.admitted) >= self.wanted

    def add(self, status: int, latency: float) -> None:
        with self.lock:
            if status == 200:
                self.admitted.append(latency)
            elif status == 503:
                self.refused += 1
                self.first_503 = self.first_503 or time.perf_counter() - self.start

    def summary(self) -> dict[str, Any]:
        elapsed = time.perf_counter() - self.start
        return {"admitted": len(self.admitted), "refused_503": self.refused, "refused_per_s": self.refused / elapsed,
                "admitted_p50_s": _p(self.admitted, 0.5), "admitted_p99_s": _p(self.admitted, 0.99),
                "time_to_first_503_s": self.first_503}


def overload(url: str, requests: int, admitted_limit: int, honour_retry_after: bool) -> dict[str, Any]:
    """4 × `admitted_limit` closed-loop clients (one keep-alive connection each) keep sending until `requests`
    requests were admitted, so the overload lasts the whole measurement. A refused client retries at once, or
    after the 503's Retry-After when `honour_retry_after` (as the OpenAI SDK's retries do)."""
    clients, tally = 4 * admitted_limit, _Tally(requests)

    def client() -> None:
        with httpx.Client() as http:
            while not tally.done():
                status, latency, _, headers = _post(url, client=http)
                tally.add(status, latency)
                if status == 503 and honour_retry_after:
                    time.sleep(float(headers.get("retry-after", 1)))
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(lambda _: client(), range(clients)))
    return {"offered_clients": clients, "honour_retry_after": honour_retry_after, **tally.summary()}


def open_loop(url: str, requests: int, rate_per_s: float, seed: int = 0) -> dict[str, Any]:
    """Poisson arrivals at `rate_per_s` (seeded), each request sent once (a refused one is not retried), until
    `requests` requests were admitted: the offered load of a load generator like vLLM's `--request-rate`."""
    rng, tally, threads = random.Random(seed), _Tally(requests), []
    while not tally.done():
        threads.append(threading.Thread(target=lambda: tally.add(*_post(url)[:2])))
        threads[-1].start()
        time.sleep(rng.expovariate(rate_per_s))
    for t in threads:
        t.join()
    return {"offered_per_s": rate_per_s, "sent": len(threads), **tally.summary()}


def overload_vs_unloaded(url: str, requests: int, admitted_limit: int) -> dict[str, Any]:
    """Unloaded latency (one request at a time), then 4× overload three ways: Poisson arrivals at 4× the
    measured capacity, and 4 × `admitted_limit` closed-loop clients that honour Retry-After or retry at once."""
    base = unloaded(url, requests)
    capacity = admitted_limit / statistics.mean(base)
    summary: dict[str, Any] = {"admitted_limit": admitted_limit, "samples": requests,
                               "unloaded_p50_s": _p(base, 0.5), "unloaded_p99_s": _p(base, 0.99),
                               "capacity_per_s": capacity}
    runs = {"open_loop_4x": lambda: open_loop(url, requests, 4 * capacity),
            "honour_retry_after": lambda: overload(url, requests, admitted_limit, honour_retry_after=True),
            "immediate_retry": lambda: overload(url, requests, admitted_limit, honour_retry_after=False)}
    for name, run in runs.items():
        cpu0, wall0 = time.process_time(), time.perf_counter()
        result = run()
        result["client_cpu_share"] = (time.process_time() - cpu0) / (time.perf_counter() - wall0)
        result["p50_ratio"] = result["admitted_p50_s"] / summary["unloaded_p50_s"]
        result["p99_ratio"] = result["admitted_p99_s"] / summary["unloaded_p99_s"]
        summary[name] = result
    return summary


def drafter_kill(url: str, requests: int, clients: int, kill_after_s: float) -> dict[str, Any]:
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(_post, url) for _ in range(requests)]
        time.sleep(kill_after_s)
        kill_replica(APP, "Drafter")
        results = [f.result() for f in futures]
    ok = [body for status, _, body, _ in results if status == 200]
    return {"requests": requests, "completed": len(ok), "lost": requests - len(ok),
            "degraded": sum(1 for b in ok if b["stats"]["degraded_steps"]),
            "statuses": sorted({status for status, *_ in results})}


def verifier_kill(url: str, clients: int) -> dict[str, Any]:
    with ThreadPoolExecutor(clients) as pool:
        futures = [pool.submit(_post, url) for _ in range(clients)]
        time.sleep(1.0)
        killed = time.perf_counter()
        kill_replica(APP, "Verifier")
        results = [f.result() for f in futures]
    failed_within = max((latency for status, latency, *_ in results if status != 200), default=None)
    first_ok = wait_for(lambda: _post(url, {"question": QUESTION, "method": "target", "max_steps": 1})[0],
                        lambda s: s == 200, timeout_s=300)
    assert first_ok == 200
    return {"in_flight": len(results), "failed_503": sum(1 for s, *_ in results if s == 503),
            "slowest_failure_s": failed_within, "recovery_s": time.perf_counter() - killed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=20, help="latency samples per phase; drafter kill sends 4×")
    parser.add_argument("--admitted", type=int, default=2, help="server.max_inflight_requests")
    parser.add_argument("--scenarios", nargs="+", choices=SCENARIOS, default=list(SCENARIOS))
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
        summary: dict[str, Any] = {"machine": "2 CPU cores, no GPU",
                                   "models": "tiny random pair (benchmarks/tiny_models)"}
        if "overload" in args.scenarios:
            summary["overload"] = overload_vs_unloaded(url, args.requests, args.admitted)
        if "drafter_kill" in args.scenarios:
            _ready(url)
            summary["drafter_kill"] = drafter_kill(url, 4 * args.requests, args.admitted, kill_after_s=3.0)
        if "verifier_kill" in args.scenarios:
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
