"""GGUF → Hugging Face directory: dequantize a GGUF checkpoint into config.json + safetensors + tokenizer.

transformers cannot serialize a model loaded through its GGUF quantizer, so the weights are dequantized
on load, copied into a fresh ``from_config`` model and saved from there. torch and transformers are
imported inside the functions: importing this module stays cheap.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cluster.errors import SpecServeError

if TYPE_CHECKING:
    import torch

logger = logging.getLogger(__name__)

_DTYPES = ("bfloat16", "float16", "float32")

# A short chat prompt whose logits the original and the converted model must agree on.
_PROBE_MESSAGES = [{"role": "user", "content": "What is 12 * 7? Answer briefly."}]

# Largest tolerated |logit difference| between the GGUF model and the reloaded converted one. Both run
# in the same dtype on the same weights, so they normally agree exactly; the slack covers kernel noise.
_LOGIT_ATOL = 1e-2


def convert_gguf_to_hf(gguf_file: Path, out_dir: Path, dtype: str = "bfloat16", *, verify: bool = True) -> None:
    """Write a GGUF causal LM as a plain Hugging Face model directory.

    The result holds config.json, model.safetensors, generation_config.json and the tokenizer files
    (tokenizer.json, tokenizer_config.json and the chat template), so that
    ``AutoModelForCausalLM.from_pretrained(out_dir)`` / ``AutoTokenizer.from_pretrained(out_dir)``
    load it offline and vLLM can serve it. An untied output layer (``output.weight`` in the GGUF)
    stays untied.

    Args:
        gguf_file: the .gguf file (any quantization transformers can dequantize, e.g. Q4_K_M).
        out_dir: directory to write; created if missing. Existing files of the same names are overwritten.
        dtype: weight dtype of the saved model: "bfloat16", "float16" or "float32".
        verify: reload the saved directory and check that its logits and chat-templated token ids on a
            short prompt match those of the GGUF-loaded model.

    Raises:
        ValueError: dtype is not one of the supported names.
        FileNotFoundError: gguf_file does not exist.
        SpecServeError: the converted model disagrees with the GGUF one (only with verify=True).
    """
    if dtype not in _DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}; valid: {list(_DTYPES)}")
    if not gguf_file.is_file():
        raise FileNotFoundError(f"GGUF file not found: {gguf_file}")
    import torch

    torch_dtype = getattr(torch, dtype)
    tokenizer = _load_tokenizer(gguf_file)
    source = _load_gguf_model(gguf_file, torch_dtype)
    model = _fresh_copy(source, torch_dtype)
    out_dir.mkdir(parents=True, exist_ok=True)
    logger.info("writing %s weights to %s", dtype, out_dir)
    model.save_pretrained(out_dir)
    del model
    tokenizer.save_pretrained(out_dir)
    _generation_config(source.config, tokenizer).save_pretrained(out_dir)
    if verify:
        _verify(source, tokenizer, out_dir, torch_dtype)


def gguf_chat_template(gguf_file: Path) -> str | None:
    """The ``tokenizer.chat_template`` string stored in a GGUF file's metadata, or None."""
    from gguf import GGUFReader

    field = GGUFReader(gguf_file).fields.get("tokenizer.chat_template")
    if field is None:
        return None
    value = field.contents()
    return value if isinstance(value, str) else None


def _load_tokenizer(gguf_file: Path) -> Any:
    """The tokenizer rebuilt from GGUF metadata, with the GGUF's chat template attached."""
    from transformers import AutoTokenizer

    logger.info("loading tokenizer from %s", gguf_file)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf_file.parent), gguf_file=gguf_file.name)
    template = gguf_chat_template(gguf_file)
    if template is None:
        logger.warning("%s carries no chat template; the converted tokenizer has none either", gguf_file.name)
    elif tokenizer.chat_template != template:
        # Some transformers versions drop the template while rebuilding the tokenizer from GGUF.
        tokenizer.chat_template = template
    return tokenizer


def _load_gguf_model(gguf_file: Path, torch_dtype: torch.dtype) -> Any:
    """The GGUF model with every weight dequantized to a dense ``torch_dtype`` tensor."""
    from transformers import AutoModelForCausalLM, GgufConfig

    logger.info("dequantizing %s (%.0f MB)", gguf_file, gguf_file.stat().st_size / 1e6)
    model = AutoModelForCausalLM.from_pretrained(
        str(gguf_file.parent),
        gguf_file=gguf_file.name,
        quantization_config=GgufConfig(dequantize=True),
        dtype=torch_dtype,
    )
    return model.eval()


def _fresh_copy(source: Any, torch_dtype: torch.dtype) -> Any:
    """A model built from ``source.config`` with no quantizer attached, holding source's weights."""
    import torch
    from transformers import AutoModelForCausalLM

    config = source.config.__class__.from_dict(source.config.to_dict())
    # The GGUF loader puts general.name here; it is not a path and must not travel into config.json.
    for key in ("_model_name_or_path", "quantization_config"):
        if hasattr(config, key):
            delattr(config, key)
    config.dtype = torch_dtype
    model = AutoModelForCausalLM.from_config(config, dtype=torch_dtype)
    with torch.no_grad():
        # strict: a missing lm_head (or any other tensor) fails here, not silently at serving time.
        model.load_state_dict(source.state_dict(), strict=True)
    n_params = sum(p.numel() for p in model.parameters())
    logger.info("copied %.0fM parameters (tie_word_embeddings=%s)", n_params / 1e6, config.tie_word_embeddings)
    return model.eval()


def _generation_config(config: Any, tokenizer: Any) -> Any:
    """Generation defaults: the model's eos, plus ``<|endoftext|>`` (Qwen's base-style end) when distinct.

    This matches the upstream Qwen2.5 instruct generation config's stop ids. No sampling defaults
    (temperature, top_p, repetition_penalty) are written: vLLM applies a model's generation_config as
    request defaults, and every sampling choice belongs to the caller.
    """
    from transformers import GenerationConfig

    eos = config.eos_token_id
    eos_ids = [eos] if isinstance(eos, int) else list(eos or [])
    end_of_text = tokenizer.get_vocab().get("<|endoftext|>")
    if end_of_text is not None and end_of_text not in eos_ids:
        eos_ids.append(end_of_text)
    return GenerationConfig(
        bos_token_id=config.bos_token_id,
        eos_token_id=eos_ids[0] if len(eos_ids) == 1 else eos_ids,
        pad_token_id=config.pad_token_id,
    )


def _verify(source: Any, tokenizer: Any, out_dir: Path, torch_dtype: torch.dtype) -> None:
    """Reload ``out_dir`` and check its tokenizer and logits against the GGUF-loaded ones."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    reloaded_tok = AutoTokenizer.from_pretrained(str(out_dir))
    if reloaded_tok.chat_template != tokenizer.chat_template:
        raise SpecServeError(f"{out_dir}: the saved chat template differs from the GGUF one")
    ids = _probe_ids(tokenizer)
    if _probe_ids(reloaded_tok) != ids:
        raise SpecServeError(f"{out_dir}: the saved tokenizer encodes the probe prompt differently")
    reloaded = AutoModelForCausalLM.from_pretrained(str(out_dir), dtype=torch_dtype).eval()
    batch = torch.tensor([ids])  # [1, seq]
    with torch.no_grad():
        expected = source(batch).logits.float()  # [1, seq, vocab]
        actual = reloaded(batch).logits.float()
    diff = (expected - actual).abs().max().item()
    same_argmax = bool((expected.argmax(-1) == actual.argmax(-1)).all())
    if diff > _LOGIT_ATOL or not same_argmax:
        raise SpecServeError(
            f"{out_dir}: converted logits differ from the GGUF model's (max |diff| {diff:.4g}, "
            f"argmax equal: {same_argmax})"
        )
    logger.info("verified %s: %d probe tokens, max |logit diff| %.3g", out_dir, len(ids), diff)


def _probe_ids(tokenizer: Any) -> list[int]:
    """Token ids of the chat-templated probe prompt (or of its plain text without a template)."""
    if tokenizer.chat_template:
        text = tokenizer.apply_chat_template(_PROBE_MESSAGES, tokenize=False, add_generation_prompt=True)
    else:
        text = _PROBE_MESSAGES[0]["content"]
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])
