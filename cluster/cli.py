"""The `specserve` command: models pull | reason | up | bench."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from typing import Any

from cluster.config.schema import ReasoningParams
from cluster.errors import SpecServeError

logger = logging.getLogger(__name__)

_USE_COLOR = sys.stdout.isatty() and not os.environ.get("NO_COLOR")


def _style(text: str, code: str) -> str:
    return f"\033[{code}m{text}\033[0m" if _USE_COLOR else text


def split_overrides(items: Sequence[str]) -> tuple[list[str], list[str]]:
    """Split positional arguments into config files and `key=value` overrides.

    A bare request knob (`threshold=5`) means `reasoning.threshold=5`.
    """
    files, overrides = [], []
    for item in items:
        if "=" not in item:
            files.append(item)
            continue
        key, value = item.split("=", 1)
        if "." not in key and key in ReasoningParams.model_fields:
            key = f"reasoning.{key}"
        overrides.append(f"{key}={value}")
    return files, overrides


def format_trace(result: dict[str, Any]) -> str:
    """A readable trace: accepted drafts, rewritten steps (with the rejected draft) and target steps."""
    marks = {
        "accepted": _style("✓ draft accepted", "32"),
        "rewritten": _style("✗ draft rejected → target rewrote", "33"),
        "target": _style("● target", "36"),
        "draft": _style("○ draft", "35"),
    }
    lines = []
    for s in result["steps"]:
        score = f" (score {s['score']:.2f})" if s.get("score") is not None else ""
        lines.append(f"[{s['index']:>2}] {marks[s['outcome']]}{score}, {s['num_tokens']} tokens"
                     f" in {s.get('latency_s', 0.0):.2f} s")
        if s.get("draft_text"):
            lines.append(_style("     rejected draft: " + s["draft_text"].replace("\n", "\n     "), "2"))
        lines.append("     " + s["text"].replace("\n", "\n     "))
    st = result["stats"]
    alpha = st.get("acceptance_rate")
    lines.append("")
    lines.append(
        f"method={result['method']} stop={result['stop_reason']} steps={len(result['steps'])} "
        f"drafted={st['steps_drafted']} accepted={st['steps_accepted']} rewritten={st['steps_rewritten']} "
        f"α={'n/a' if alpha is None else f'{alpha:.2f}'} draft_tokens={st['draft_tokens']} "
        f"target_tokens={st['target_tokens']} wall={st['wall_time_s']:.1f}s "
        f"(draft {st['draft_time_s']:.1f}s, judge {st['judge_time_s']:.1f}s, target {st['target_time_s']:.1f}s)"
    )
    if st.get("degraded_reason"):
        lines.append(_style(f"degraded: {st['degraded_reason']} ({st['degraded_steps']} steps)", "31"))
    lines.append(_style(f"Answer: {result['answer']}", "1"))
    return "\n".join(lines)


async def _reason_in_process(question: str, files: list[str], overrides: list[str]) -> dict[str, Any]:
    from cluster.config import load_config
    from cluster.engine import Engine

    cfg = load_config(files, overrides)
    logger.info("loading draft %s and target %s (%s)", cfg.draft.path, cfg.target.path, cfg.target.backend)
    engine = Engine(cfg)
    try:
        return (await engine.reason(question)).to_dict()
    finally:
        await engine.close()


def cmd_reason(ns: argparse.Namespace) -> int:
    files, overrides = split_overrides(ns.overrides)
    if ns.url or ns.grpc:
        from cluster.client import GRPC_SCHEME, SpecServeClient

        knobs = {k.removeprefix("reasoning."): v for k, v in (o.split("=", 1) for o in overrides)}
        url = ns.url or GRPC_SCHEME + ns.grpc
        with SpecServeClient(url, app=ns.app) as client:  # API key: $SPECSERVE_API_KEY
            result = client.reason(ns.question, **knobs)
    else:
        result = asyncio.run(_reason_in_process(ns.question, files, overrides))
    print(json.dumps(result, indent=2) if ns.json else format_trace(result))
    return 0


def cmd_up(ns: argparse.Namespace) -> int:
    from cluster.config import load_config

    files, overrides = split_overrides(ns.overrides)
    cfg = load_config(files, overrides)
    from deployments.launcher import base_url, up  # lazy: only `up` needs Ray

    def on_ready(urls: dict[str, str]) -> None:
        for name, url in urls.items():
            print(f"{name:>7}: {url}", flush=True)
        if ns.ask:
            from cluster.client import SpecServeClient

            base = base_url(cfg)
            print(f"\nQ: {ns.ask}", flush=True)
            print(format_trace(SpecServeClient(base, timeout=cfg.server.request_timeout_s).reason(ns.ask)), flush=True)
        print("\nserving; Ctrl-C to stop", flush=True)

    up(cfg, on_ready)
    return 0


def cmd_models_pull(ns: argparse.Namespace) -> int:
    from pathlib import Path

    from cluster.constants import MODELS_DIR
    from cluster.modelstore import pull_models

    paths = pull_models(ns.names or None, Path(ns.dir) if ns.dir else MODELS_DIR, force=ns.force)
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


def cmd_bench(ns: argparse.Namespace) -> int:
    from benchmarks.runner import run_from_cli  # lazy: only `bench` needs the harness

    files, overrides = [i for i in ns.items if "=" not in i], [i for i in ns.items if "=" in i]
    return run_from_cli(files, overrides, prog="specserve bench")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="specserve", description=__doc__)
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True)

    reason = sub.add_parser("reason", help="answer one question (in-process, or against a server with --url / "
                                           "--grpc; the API key, if any, comes from $SPECSERVE_API_KEY)")
    reason.add_argument("question")
    reason.add_argument("overrides", nargs="*", help="config files and key=value overrides (threshold=5, "
                                                     "method=target, target.backend=vllm, …)")
    server = reason.add_mutually_exclusive_group()
    server.add_argument("--url", help="send the request to a running server's HTTP API instead")
    server.add_argument("--grpc", metavar="HOST:PORT", help="send the request to a running server's gRPC API instead")
    reason.add_argument("--app", help="with --grpc: the Serve application (when Serve runs several)")
    reason.add_argument("--json", action="store_true", help="print the full result as JSON")
    reason.set_defaults(fn=cmd_reason)

    up = sub.add_parser("up", help="start local Ray and serve the app until Ctrl-C")
    up.add_argument("overrides", nargs="*", help="config files and key=value overrides")
    up.add_argument("--ask", metavar="QUESTION", help="once serving, answer this question over HTTP and print it")
    up.set_defaults(fn=cmd_up)

    bench = sub.add_parser("bench", help="run a benchmark (benchmarks/configs/*.yaml) and write its report")
    bench.add_argument("items", nargs="*", help="benchmark config files and key=value overrides")
    bench.set_defaults(fn=cmd_bench)

    models = sub.add_parser("models", help="manage local model directories")
    models_sub = models.add_subparsers(dest="models_command", required=True)
    pull = models_sub.add_parser("pull", help="install the offline Qwen2.5-Coder draft/target pair")
    pull.add_argument("names", nargs="*", help="models to pull (default: all)")
    pull.add_argument("--dir", help="models directory (default: SPECSERVE_MODELS_DIR)")
    pull.add_argument("--force", action="store_true", help="pull again even if present")
    pull.set_defaults(fn=cmd_models_pull)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    ns = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if ns.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        return int(ns.fn(ns))
    except SpecServeError as e:
        print(f"specserve: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
