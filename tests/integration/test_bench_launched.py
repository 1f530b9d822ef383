"""The benchmark runner's launched served mode end to end, in a subprocess with its own Ray: the runner starts
one app per engine group (here: plain, and with token-level speculation), benchmarks it over real HTTP, and stops
it before the next; a run of its own mode `inprocess` goes to an engine in the runner's process first."""

from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from benchmarks.local_app import free_port
from benchmarks.records import read_meta, read_records
from tests.integration.conftest import REPO_ROOT

pytestmark = pytest.mark.integration


def test_runner_launches_an_app_per_engine_group_and_benchmarks_it_over_http(tiny_model_dirs, tmp_path):
    draft, target, port = tiny_model_dirs.draft, tiny_model_dirs.target, free_port()
    knobs = "{method: target, max_step_tokens: 4, max_total_tokens: 8}"
    overrides = [
        f"app_overrides=[draft.path={draft},target.path={target},draft.dtype=float32,target.dtype=float32,"
        f"server.port={port},server.ray_num_cpus=2,deployments.drafter.num_cpus=0.5,"
        "deployments.verifier.num_cpus=0.5]",
        f"runs=[{{name: target-inprocess, mode: inprocess, knobs: {knobs}}}, {{name: target, knobs: {knobs}}}, "
        f"{{name: token-level, knobs: {knobs}, "
        f"app_overrides: [target.speculative.model={draft},target.speculative.num_speculative_tokens=2]}}]",
        "mode=served", "launch=true", "dataset.select=[0]", f"output_dir={tmp_path}", "plots=false",
    ]
    env = {**os.environ, "RAY_AUTH_MODE": "disabled", "PYTHONPATH": str(REPO_ROOT)}
    proc = subprocess.run([sys.executable, "-m", "benchmarks.runner", "benchmarks/configs/smoke.yaml", *overrides],
                          cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (run_dir,) = [p for p in tmp_path.iterdir() if p.is_dir()]
    records = read_records(run_dir)
    assert [(r.run, r.error) for r in records] == [("target-inprocess", None), ("target", None),
                                                   ("token-level", None)]
    assert records[0].text == records[1].text  # greedy: the same text in-process and served
    token_level = records[2].stats
    assert token_level is not None and token_level.spec_draft_tokens > 0  # drafted tokens: speculation on
    meta = read_meta(run_dir)
    assert meta["mode"] == "mixed"
    assert [(e["runs"], e["launched"]) for e in meta["engines"]] == [
        (["target-inprocess"], False), (["target"], True), (["token-level"], True)]
    assert all(e["opened"][0]["server_before"]["health"].get("status") == "ok" for e in meta["engines"][1:])
    with pytest.raises(httpx.TransportError):  # the last app and its Ray are gone
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=5)
