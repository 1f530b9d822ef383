"""Fuzzing of a running app: HTTP from its OpenAPI document (schemathesis), gRPC with malformed messages.

Any HTTP 5xx (or a server error event inside a 200 stream), a request that gets no answer, and any gRPC
INTERNAL / UNKNOWN status is a failure: whatever a client sends, it must get a client status. The one 5xx
a client asks for, a 504 when the request's own `timeout_s` passes, is counted apart ("504-client_deadline").

    python -m benchmarks.fuzz --url http://127.0.0.1:8000 [--grpc 127.0.0.1:9000] [--app NAME] \
        --cases 1000 [--api-key-env VAR] [--out summary.json]

Requests run one at a time and valid ones run the served models: point it at an app whose config keeps
requests small (tests/integration/test_fuzz.py uses the tiny random pair with a 40-token budget).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import sys
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import requests
import schemathesis
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import HealthCheck, Phase, given, seed, settings
from hypothesis.errors import Unsatisfiable

from cluster.grpc import SERVICE
from cluster.grpc import specserve_pb2 as pb

GRPC_FAILURES = frozenset({"INTERNAL", "UNKNOWN"})
QUESTION = "What is 2 + 3?"
CHEAP = {"question": QUESTION, "max_steps": 1, "max_total_tokens": 8, "max_step_tokens": 4}  # base of extremes
MAX_FAILURES_KEPT = 20


@dataclass(frozen=True, slots=True)
class FuzzConfig:
    """Where to send what: base URL, gRPC target ("" = skip gRPC), case budget, API key, Serve app name."""

    url: str
    grpc_target: str = ""
    cases: int = 1000
    grpc_random: int = 100  # random / mutated raw payloads (the extreme-value messages are always all sent)
    api_key: str | None = None
    app: str | None = None
    seed: int = 0
    timeout_s: float = 120.0


@dataclass(slots=True)
class Tally:
    """Statuses of the cases sent, and the first failures with what caused them."""

    cases: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    by_kind: dict[str, Counter[str]] = field(default_factory=dict)
    failures: list[dict[str, Any]] = field(default_factory=list)
    failed: int = 0

    def add(self, kind: str, status: str, failed: bool, request: dict[str, Any] | None = None) -> None:
        self.cases += 1
        self.statuses[status] += 1
        self.by_kind.setdefault(kind, Counter())[status] += 1
        if failed:
            self.failed += 1
            if len(self.failures) < MAX_FAILURES_KEPT:
                self.failures.append({"kind": kind, "status": status, **(request or {})})

    def to_dict(self) -> dict[str, Any]:
        return {"cases": self.cases, "failed": self.failed, "statuses": dict(sorted(self.statuses.items())),
                "by_kind": {k: dict(sorted(v.items())) for k, v in self.by_kind.items()}, "failures": self.failures}


# ---- HTTP -------------------------------------------------------------------------------------------------

def _client_deadline(response: Any) -> bool:
    """A 504 because the deadline the request itself set (`timeout_s`) passed: the client's choice, no fault."""
    try:
        error = response.json().get("error") or {}
    except ValueError:
        return False
    return error.get("code") == "client_deadline"


def _stream_error(response: Any) -> str | None:
    """The type of a non-client error event inside a 200 server-sent-events body, if any."""
    if "text/event-stream" not in response.headers.get("content-type", ""):
        return None
    for line in response.content.decode("utf-8", "replace").splitlines():
        if line.startswith("data: {") and '"error"' in line:
            kind = json.loads(line[6:]).get("error", {}).get("type")
            if kind != "invalid_request_error":
                return str(kind)
    return None


class HttpFuzzer:
    """Sends schemathesis cases for every operation of the app's /openapi.json, positive and negative."""

    def __init__(self, cfg: FuzzConfig) -> None:
        self.cfg, self.tally = cfg, Tally()
        self.session = requests.Session()
        if cfg.api_key:
            self.session.headers["Authorization"] = f"Bearer {cfg.api_key}"
        self.schema = schemathesis.openapi.from_url(f"{cfg.url}/openapi.json", headers=dict(self.session.headers),
                                                    timeout=30)
        self.model = self.session.get(f"{cfg.url}/v1/models", timeout=30).json()["data"][0]["id"]

    def run(self) -> Tally:
        """Spread `cfg.cases` over the (operation, mode) strategies, topping up the ones not yet exhausted."""
        active = [(op.ok(), mode) for op in self.schema.get_all_operations() for mode in schemathesis.GenerationMode]
        remaining, rnd = self.cfg.cases, 0
        while remaining > 0 and active:
            share = math.ceil(remaining / len(active))
            for op, mode in list(active):
                ask = min(share, remaining)
                sent = self._run_strategy(op, mode, ask, self.cfg.seed + rnd)
                remaining -= sent
                if sent < ask:  # hypothesis ran out of distinct inputs (or none exist: negative GETs)
                    active.remove((op, mode))
                if remaining <= 0:
                    break
            rnd += 1
        return self.tally

    def _run_strategy(self, op: Any, mode: schemathesis.GenerationMode, n: int, rnd_seed: int) -> int:
        strategy = op.as_strategy(generation_mode=mode)
        if mode.is_positive and op.path == "/v1/chat/completions":
            strategy = strategy.map(self._served_model)
        kind, before = f"{op.method.upper()} {op.path} {mode.value}", self.tally.cases

        @seed(rnd_seed)
        @settings(max_examples=n, database=None, deadline=None, phases=[Phase.generate],
                  suppress_health_check=list(HealthCheck), report_multiple_bugs=False)
        @given(strategy)
        def send(case: Any) -> None:
            if self.tally.cases - before < n:
                self._send(case, kind)

        try:
            send()
        except Unsatisfiable:
            pass
        return self.tally.cases - before

    def _served_model(self, case: Any) -> Any:
        """The case with the served model and a user message last, so that it gets past those two checks."""
        if isinstance(case.body, dict):
            messages = list(case.body.get("messages") or [])
            if not messages or messages[-1].get("role") != "user":
                messages.append({"role": "user", "content": QUESTION})
            case.body = {**case.body, "model": self.model, "messages": messages}
        return case

    def _send(self, case: Any, kind: str) -> None:
        try:
            response = case.call(base_url=self.cfg.url, session=self.session, timeout=self.cfg.timeout_s)
        except requests.RequestException as e:
            self.tally.add(kind, type(e).__name__, True, {"request": case.as_curl_command(base_url=self.cfg.url)})
            return
        code = response.status_code
        stream_error = _stream_error(response) if code == 200 else None
        status = f"200+{stream_error}" if stream_error else str(code)
        if code == 504 and _client_deadline(response):
            status = "504-client_deadline"
        failed = (code >= 500 and status != "504-client_deadline") or stream_error is not None
        self.tally.add(kind, status, failed, {"request": case.as_curl_command(base_url=self.cfg.url),
                                              "response": response.content[:500].decode("utf-8", "replace")}
                       if failed else None)

    def controller_replica(self) -> str | None:
        """The controller replica's id from /v1/stats (a new id after the run means it restarted)."""
        response = self.session.get(f"{self.cfg.url}/v1/stats", timeout=30)
        return response.json().get("replica", {}).get("id") if response.ok else None


# ---- gRPC -------------------------------------------------------------------------------------------------

_INT32, _INT64 = [-2**31, -1, 0, 2**31 - 1], [-2**63, -1, 0, 2**63 - 1]
_DOUBLES = [math.nan, math.inf, -math.inf, -1.0, 0.0, 5e-324, 1e308]
_STRINGS = ["", " ", "\x00", "no-such-value", "é" * 5000]
_EXTREMES = {FieldDescriptor.TYPE_INT32: _INT32, FieldDescriptor.TYPE_INT64: _INT64,
             FieldDescriptor.TYPE_DOUBLE: _DOUBLES, FieldDescriptor.TYPE_STRING: _STRINGS,
             FieldDescriptor.TYPE_BOOL: [True, False]}
_GROUP_BASE = {"best_of_n": {"method": "best_of_n", "temperature": 1.0}, "ssr": {"method": "ssr"}}


def _extremes(descriptor: Descriptor) -> Iterator[tuple[str, Any]]:
    """(field name, extreme value) for every scalar field of a message type (a repeated one gets a 1-list)."""
    for f in descriptor.fields:
        if f.message_type is None:
            for value in _EXTREMES[f.type]:
                yield f.name, [value] if f.is_repeated else value


def extreme_messages(prompt_chars: int = 4000) -> list[tuple[str, pb.ReasonRequest]]:
    """Well-formed ReasonRequests, each one field at an extreme value over a cheap base request."""
    out: list[tuple[str, pb.ReasonRequest]] = []
    for name, value in _extremes(pb.ReasonRequest.DESCRIPTOR):
        if name != "question":
            out.append((f"{name}={value!r:.40}", pb.ReasonRequest(**{**CHEAP, name: value})))
    for group, base in _GROUP_BASE.items():
        descriptor = pb.ReasonRequest.DESCRIPTOR.fields_by_name[group].message_type
        for name, value in _extremes(descriptor):
            out.append((f"{group}.{name}={value!r:.40}", pb.ReasonRequest(**CHEAP, **base, **{group: {name: value}})))
    for pool in ([], [""], ["x"] * 1000, ["y" * 10000]):
        out.append((f"ssr.pool[{len(pool)}]", pb.ReasonRequest(**CHEAP, method="ssr", ssr={"pool": pool})))
    for question in ("", " \n\t", "\x00", "\u202e" * 50, "x" * (prompt_chars + 1), "7 " * 200_000):
        out.append((f"question={question!r:.20}[{len(question)}]", pb.ReasonRequest(**{**CHEAP,
                                                                                          "question": question})))
    return out


def raw_payloads(n: int, rng: random.Random) -> list[tuple[str, bytes]]:
    """Random bytes, and valid ReasonRequests with bytes flipped, truncated or with an invalid UTF-8 question."""
    valid = pb.ReasonRequest(**CHEAP, method="target").SerializeToString()
    out: list[tuple[str, bytes]] = [("empty", b""), ("bad-utf8-question", b"\x0a\x02\xff\xfe"),
                                    ("truncated", valid[:-1]), ("huge-length", b"\x0a\xff\xff\xff\xff\x0f")]
    for i in range(n):
        if i % 2:
            out.append((f"random[{i}]", rng.randbytes(rng.choice((1, 8, 64, 1024)))))
        else:
            data = bytearray(valid)
            for _ in range(rng.randint(1, 4)):
                data[rng.randrange(len(data))] = rng.randrange(256)
            out.append((f"mutated[{i}]", bytes(data)))
    return out


class GrpcFuzzer:
    """Sends raw and extreme payloads to specserve.v1.SpecServe through Serve's gRPC proxy."""

    def __init__(self, cfg: FuzzConfig) -> None:
        self.cfg, self.tally = cfg, Tally()
        self.metadata = [("application", cfg.app)] if cfg.app else []
        if cfg.api_key:
            self.metadata.append(("authorization", f"Bearer {cfg.api_key}"))

    def run(self) -> Tally:
        rng = random.Random(self.cfg.seed)
        methods = ("Reason", "ReasonStream", "ListModels")
        with grpc.insecure_channel(self.cfg.grpc_target) as channel:
            for i, (label, payload) in enumerate(raw_payloads(self.cfg.grpc_random, rng)):
                self._send(channel, methods[i % 3], payload, f"raw {label}")
            for method in ("NoSuchMethod", "reason"):
                self._send(channel, method, b"", f"unknown-method {method}")
            self._send(channel, "Reason", b"", "unknown-service", service="specserve.v1.NoSuchService")
            for i, (label, message) in enumerate(extreme_messages()):
                self._send(channel, methods[i % 2], message.SerializeToString(), f"extreme {label}", message)
        return self.tally

    def _send(self, channel: grpc.Channel, method: str, payload: bytes, label: str, message: Message | None = None,
              service: str = SERVICE) -> None:
        path, call = f"/{service}/{method}", {"metadata": self.metadata, "timeout": self.cfg.timeout_s}
        try:
            if method == "ReasonStream":
                for _ in channel.unary_stream(path)(payload, **call):
                    pass
            else:
                channel.unary_unary(path)(payload, **call)
            code, details = "OK", ""
        except grpc.RpcError as e:
            code, details = e.code().name, e.details() or ""
        shown = str(message)[:300] if message is not None else payload[:64].hex()
        kind = label.split(" ", 1)[0]
        self.tally.add(kind, code, code in GRPC_FAILURES,
                       {"rpc": path, "case": label, "payload": shown, "details": details[:300]})


# ---- the run ----------------------------------------------------------------------------------------------

def run(cfg: FuzzConfig) -> dict[str, Any]:
    """Fuzz HTTP (and gRPC when `cfg.grpc_target` is set); the summary, with `ok` False on any failure."""
    http = HttpFuzzer(cfg)
    replica_before = http.controller_replica()
    summary: dict[str, Any] = {"url": cfg.url, "http": http.run().to_dict()}
    if cfg.grpc_target:
        summary["grpc"] = {"target": cfg.grpc_target, **GrpcFuzzer(cfg).run().to_dict()}
    replica_after = http.controller_replica()
    summary["controller_replica"] = {"before": replica_before, "after": replica_after}
    summary["ok"] = (summary["http"]["failed"] == 0 and summary.get("grpc", {}).get("failed", 0) == 0
                     and replica_before == replica_after)
    return summary


def table(summary: dict[str, Any]) -> str:
    """A short text table: cases, failures and statuses per transport and kind of case."""
    lines = [f"{'transport / kind':<40} {'cases':>6} {'fail':>5}  statuses"]
    for transport in ("http", "grpc"):
        if transport not in summary:
            continue
        part = summary[transport]
        lines.append(f"{transport:<40} {part['cases']:>6} {part['failed']:>5}  {part['statuses']}")
        for kind, statuses in part["by_kind"].items():
            lines.append(f"  {kind:<38} {sum(statuses.values()):>6} {'':>5}  {statuses}")
    lines.append(f"ok: {summary['ok']} (controller replica {summary['controller_replica']})")
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.fuzz", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True, help="base URL of the app's HTTP routes")
    parser.add_argument("--grpc", default="", help="host:port of Serve's gRPC proxy (default: no gRPC fuzzing)")
    parser.add_argument("--app", help="Serve application name (gRPC `application` metadata)")
    parser.add_argument("--cases", type=int, default=1000, help="schemathesis cases (HTTP)")
    parser.add_argument("--grpc-random", type=int, default=100, help="random / mutated raw gRPC payloads")
    parser.add_argument("--api-key-env", help="environment variable holding the API key")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, help="write the JSON summary here")
    ns = parser.parse_args(argv)
    cfg = FuzzConfig(url=ns.url.rstrip("/"), grpc_target=ns.grpc, cases=ns.cases, grpc_random=ns.grpc_random,
                     api_key=os.environ.get(ns.api_key_env) if ns.api_key_env else None, app=ns.app, seed=ns.seed)
    summary = run(cfg)
    if ns.out:
        ns.out.parent.mkdir(parents=True, exist_ok=True)
        ns.out.write_text(json.dumps(summary, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    print(table(summary))
    return 0 if summary["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
