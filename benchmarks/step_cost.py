"""What one reasoning step costs a draft and a target architecture on one device: the cost ratio c without weights.

Builds each model from its config.json alone (random weights, the real shapes and dtype), then times, per batch size:
the prefill of a `--prompt-tokens` prompt and a greedy step of `--step-tokens` new tokens after it (prefill included,
as a step request pays it), each the median of `--reps` timed runs after one warm-up. c = draft step / target step.
Random weights change what is written, not what a forward pass costs, so the timings stand for the pretrained pair;
acceptance (α) does need the real weights and comes from the benchmark runs.

Modes: `eager` (transformers' dynamic KV cache) and `static` (static KV cache, which transformers compiles with
torch.compile on CUDA: the decode step becomes one CUDA graph, as in vLLM). Needs only torch and transformers, so it
runs on a bare GPU image:

    python -m benchmarks.step_cost DRAFT_DIR TARGET_DIR [--device cuda] [--batch 1 5] [--out step_cost.json]

DRAFT_DIR and TARGET_DIR are model directories (only config.json is read) or config.json files.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from statistics import median
from typing import Any

import torch
from transformers import AutoConfig, AutoModelForCausalLM

from benchmarks.environment import git_info, machine_info, versions

MODES = ("eager", "static")


def load_random(config_path: Path, dtype: torch.dtype, device: str) -> torch.nn.Module:
    """The architecture of `config_path` (a model dir or its config.json) with seeded random weights on `device`."""
    config = AutoConfig.from_pretrained(config_path.parent if config_path.is_file() else config_path)
    torch.manual_seed(0)
    with torch.device(device):
        model = AutoModelForCausalLM.from_config(config, dtype=dtype)
    return model.eval()


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _timed(fn, device: str, reps: int) -> float:
    """Median wall seconds of `fn()` over `reps` runs, after one warm-up run."""
    fn()
    times = []
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        times.append(time.perf_counter() - start)
    return median(times)


@torch.inference_mode()
def step_cost(model: torch.nn.Module, *, batch: int, prompt_tokens: int, step_tokens: int, mode: str,
              device: str, reps: int) -> dict[str, float]:
    """Prefill seconds, step seconds (prefill + `step_tokens` greedy tokens) and ms per decoded token."""
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (1, prompt_tokens), generator=torch.Generator().manual_seed(1)).repeat(batch, 1)
    ids = ids.to(device)
    mask = torch.ones_like(ids)
    extra: dict[str, Any] = {"cache_implementation": "static"} if mode == "static" else {}

    def generate(new_tokens: int) -> None:
        out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                             do_sample=False, pad_token_id=0, **extra)
        assert out.shape == (batch, prompt_tokens + new_tokens), out.shape

    prefill_s = _timed(lambda: generate(1), device, reps)
    step_s = _timed(lambda: generate(step_tokens), device, reps)
    return {"prefill_s": prefill_s, "step_s": step_s, "ms_per_token": 1000 * (step_s - prefill_s) / (step_tokens - 1)}


def _device_name(device: str) -> str:
    if device.startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"{machine_info()['cpu']}, {torch.get_num_threads()} threads"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("draft", type=Path)
    parser.add_argument("target", type=Path)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--dtype", default="bfloat16", choices=("bfloat16", "float16", "float32"))
    parser.add_argument("--batch", type=int, nargs="+", default=[1], help="batch sizes (lookahead sync: γ+1)")
    parser.add_argument("--prompt-tokens", type=int, default=384)
    parser.add_argument("--step-tokens", type=int, default=64)
    parser.add_argument("--modes", nargs="+", default=["eager"], choices=MODES)
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--out", type=Path, help="write the results here as JSON (rewritten after each measurement)")
    args = parser.parse_args(argv)
    if args.step_tokens < 2:
        parser.error("--step-tokens must be at least 2 (one token is the prefill's)")

    dtype = getattr(torch, args.dtype)
    result: dict[str, Any] = {"device": _device_name(args.device), "machine": machine_info(), "versions": versions(),
                              "git": git_info(), "dtype": args.dtype,
                              "prompt_tokens": args.prompt_tokens, "step_tokens": args.step_tokens, "rows": []}
    models = {role: load_random(path, dtype, args.device) for role, path in (("draft", args.draft),
                                                                             ("target", args.target))}
    print(f"# {result['device']}, {args.dtype}, prompt {args.prompt_tokens} tokens, step {args.step_tokens} tokens")
    for mode in args.modes:
        for batch in args.batch:
            row: dict[str, Any] = {"mode": mode, "batch": batch}
            try:
                for role, model in models.items():
                    row[role] = step_cost(model, batch=batch, prompt_tokens=args.prompt_tokens,
                                          step_tokens=args.step_tokens, mode=mode, device=args.device, reps=args.reps)
                row["c"] = row["draft"]["step_s"] / row["target"]["step_s"]
                print(f"{mode:6} batch {batch}: draft step {row['draft']['step_s']:.3f} s "
                      f"({row['draft']['ms_per_token']:.2f} ms/token), target step {row['target']['step_s']:.3f} s "
                      f"({row['target']['ms_per_token']:.2f} ms/token), c = {row['c']:.2f}", flush=True)
            except Exception as exc:  # one mode failing (e.g. compile) leaves the others measured
                row["error"] = f"{type(exc).__name__}: {exc}"[:500]
                print(f"{mode:6} batch {batch}: {row['error']}", flush=True)
            result["rows"].append(row)
            if args.out:
                args.out.write_text(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
