"""What CPU engines get when they decode at the same time on the same cores, against each one alone.

Starts one process per engine named (`target`, `draft`), each loading its model of the app config with the app's
backend and settings (on vLLM: the OpenMP environment of `cluster.backends.vllm.engine_settings`), waits until
all are loaded, then has them decode together for `--window` seconds: batches of `--batch` greedy streams of
`--tokens` tokens, one batch after another. Prints each engine's tokens per second. Measure each engine alone and
both together, under the environment to compare (libgomp's own barrier spin: `env GOMP_SPINCOUNT=300000 …`):

    python -m benchmarks.engine_contention draft.backend=vllm target.backend=vllm --engines target
    python -m benchmarks.engine_contention draft.backend=vllm target.backend=vllm --engines target,draft
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from benchmarks.coresidence import PROMPT
from cluster.backends import SamplingParams, create_backend
from cluster.config import load_config

ROLES = ("target", "draft")
RESULT = "engine-contention-result "


async def decode(role: str, overrides: Sequence[str], batch: int, tokens: int, window_s: float,
                 ready: Path, go: Path) -> dict[str, float | str | int]:
    """Load `role`'s engine, say so in `ready`, wait for `go`, then decode batches for `window_s` seconds."""
    backend = create_backend(getattr(load_config(overrides=overrides), role))
    try:
        prompts = [f"({i}) {PROMPT}" for i in range(batch)]  # distinct: no shared prefix cache hits
        params = [SamplingParams(max_tokens=tokens, temperature=0.0)] * batch
        await backend.generate(prompts[:1], params[:1])  # warm-up
        ready.touch()
        while not go.exists():
            await asyncio.sleep(0.05)
        start, generated, batches = time.perf_counter(), 0, 0
        while time.perf_counter() - start < window_s:
            generated += sum(g.num_tokens for g in await backend.generate(prompts, params))
            batches += 1
        seconds = time.perf_counter() - start
    finally:
        await backend.close()
    return {"engine": role, "tokens": generated, "batches": batches, "seconds": round(seconds, 3),
            "tokens_per_s": round(generated / seconds, 3)}


def run(roles: Sequence[str], overrides: Sequence[str], batch: int, tokens: int, window_s: float,
        load_timeout_s: float = 900.0) -> list[dict]:
    """One process per engine in `roles`, decoding together; their results, in the order of `roles`.

    Raises:
        RuntimeError: an engine process failed, or not all engines loaded within `load_timeout_s`.
    """
    with tempfile.TemporaryDirectory() as tmp:
        go = Path(tmp) / "go"
        outputs = {role: Path(tmp) / f"{role}.out" for role in roles}  # files: vLLM logs to stdout, a lot
        procs = {}
        for role in roles:
            with outputs[role].open("w") as out:
                procs[role] = subprocess.Popen(
                    [sys.executable, "-m", "benchmarks.engine_contention", *overrides, "--engines", role, "--batch",
                     str(batch), "--tokens", str(tokens), "--window", str(window_s), "--_ready",
                     str(Path(tmp) / role), "--_go", str(go)], stdout=out)
        try:
            deadline = time.monotonic() + load_timeout_s
            while not all((Path(tmp) / role).exists() for role in roles):
                failed = [role for role, p in procs.items() if p.poll() is not None]
                if failed or time.monotonic() > deadline:
                    raise RuntimeError(f"engines {failed or list(roles)} did not load (exited, or not within "
                                       f"{load_timeout_s:g}s)")
                time.sleep(0.2)
            go.touch()
            results = []
            for role, proc in procs.items():
                proc.wait(timeout=window_s + 600)
                lines = [line for line in outputs[role].read_text().splitlines() if line.startswith(RESULT)]
                if proc.returncode != 0 or not lines:
                    raise RuntimeError(f"the {role} engine failed (exit status {proc.returncode})")
                results.append(json.loads(lines[-1][len(RESULT):]))
            return results
        finally:
            for proc in procs.values():
                if proc.poll() is None:
                    proc.kill()
                    proc.wait()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.engine_contention", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("overrides", nargs="*", help="key=value overrides of the app config (e.g. target.backend=vllm)")
    parser.add_argument("--engines", default="target,draft",
                        help=f"comma-separated, of {list(ROLES)} (default: %(default)s)")
    parser.add_argument("--batch", type=int, default=4, help="streams decoded together per batch")
    parser.add_argument("--tokens", type=int, default=32, help="tokens per stream per batch")
    parser.add_argument("--window", type=float, default=30.0, help="seconds the engines decode together")
    parser.add_argument("--output", type=Path, help="also write the results here (JSON)")
    parser.add_argument("--_ready", type=Path, help=argparse.SUPPRESS)  # set for the engine processes
    parser.add_argument("--_go", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    roles = [r.strip() for r in args.engines.split(",") if r.strip()]
    if not roles or set(roles) - set(ROLES) or len(set(roles)) != len(roles):
        parser.error(f"--engines: one or both of {list(ROLES)}, each once (got {args.engines!r})")
    if args.batch < 1 or args.tokens < 1 or args.window <= 0:
        parser.error("--batch and --tokens ≥ 1, --window > 0")
    if args._ready is not None:  # an engine process
        result = asyncio.run(decode(roles[0], args.overrides, args.batch, args.tokens, args.window, args._ready,
                                    args._go))
        print(RESULT + json.dumps(result), flush=True)
        return 0
    results = run(roles, args.overrides, args.batch, args.tokens, args.window)
    environment = {k: os.environ[k] for k in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY") if k in os.environ}
    for r in results:
        print(f"{r['engine']:6s} {r['tokens_per_s']:8.2f} tokens/s ({r['tokens']} tokens in {r['seconds']:.1f} s, "
              f"{r['batches']} batches of {args.batch})")
    if args.output:
        args.output.write_text(json.dumps({"engines": roles, "overrides": args.overrides, "batch": args.batch,
                                           "tokens": args.tokens, "window_s": args.window,
                                           "environment": environment, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
