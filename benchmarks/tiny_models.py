"""Tiny random Qwen2-style models for the tests and the local benchmarks, built offline in about a second.

A draft/target pair shares one tokenizer (a byte-level BPE trained on a small built-in corpus, with
ChatML special tokens and a Qwen2.5-style chat template); the weights are random, seeded, so a given
seed always writes the same model. head_dim is 64 so that vLLM accepts the models too.
"""

from __future__ import annotations

from pathlib import Path

EOS_TOKEN = "<|im_end|>"
PAD_TOKEN = "<|endoftext|>"
SPECIAL_TOKENS = (PAD_TOKEN, "<|im_start|>", EOS_TOKEN)

# Qwen2.5's ChatML layout without its default system prompt and tool-calling branches.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)

# Qwen2's pre-tokenizer split: single digits, and punctuation glued to following newlines (".\n\n").
_QWEN2_SPLIT = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

_CORPUS = (
    "Question: What is 12 + 30? Answer: 42.\n\n",
    "Step 1: add the numbers.\n\nStep 2: multiply by 3.\n\nThe answer is \\boxed{126}.\n\n",
    "Let me think step by step. First, 7 times 8 is 56. Then 56 minus 6 is 50.\n\n",
    "So the total is 15 apples and 9 oranges, which makes 24 fruits.\n\nAnswer: 24",
    "Rate the step from 0 to 9. I think the quality score is: 7",
    "<think>We need the sum of the digits.\n\nThe sum is 0 + 1 + 2 + 3 + 4 + 5 + 6 + 7 + 8 + 9 = 45.</think>",
    "plus minus times divided by equals half double twice each total per cent remainder",
    "Tom has 3 boxes with 14 pens each. How many pens does he have? 3 * 14 = 42. \\boxed{42}",
    "user assistant system Please reason step by step, and put your final answer within \\boxed{}.",
)


def _train_tokenizer(vocab_size: int):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(_QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=list(SPECIAL_TOKENS), show_progress=False,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    tok.train_from_iterator([text for _ in range(8) for text in _CORPUS], trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok, eos_token=EOS_TOKEN, pad_token=PAD_TOKEN,
        additional_special_tokens=["<|im_start|>"], chat_template=CHAT_TEMPLATE,
        model_max_length=2048, clean_up_tokenization_spaces=False,
    )


def build_tiny_model(
    out_dir: Path,
    *,
    seed: int,
    hidden_size: int = 128,
    layers: int = 2,
    heads: int = 2,
    kv_heads: int = 2,
    intermediate_size: int = 256,
    vocab_size: int = 512,
    max_position_embeddings: int = 2048,
) -> Path:
    """Write a complete HF model directory (config, safetensors weights, tokenizer, generation config).

    Args:
        out_dir: directory to write (created if missing).
        seed: seeds the random weights; the tokenizer does not depend on it.
        hidden_size, layers, heads, kv_heads, intermediate_size: Qwen2Config sizes
            (hidden_size / heads is the head dim; keep it ≥ 32 for vLLM).
        vocab_size: BPE vocabulary size (the model's embedding matrix has the same size).
        max_position_embeddings: context length of the model.

    Returns:
        `out_dir`.
    """
    import torch
    from transformers import GenerationConfig, Qwen2Config, Qwen2ForCausalLM

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tokenizer = _train_tokenizer(vocab_size)
    eos_id = tokenizer.convert_tokens_to_ids(EOS_TOKEN)
    pad_id = tokenizer.convert_tokens_to_ids(PAD_TOKEN)
    config = Qwen2Config(
        vocab_size=len(tokenizer), hidden_size=hidden_size, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv_heads, intermediate_size=intermediate_size,
        max_position_embeddings=max_position_embeddings, eos_token_id=eos_id, pad_token_id=pad_id,
        bos_token_id=None, tie_word_embeddings=False, dtype="float32",
        initializer_range=0.1,  # 5x the default: sharper attention, so cache/position bugs change greedy output
    )
    with torch.random.fork_rng():  # leave the caller's global RNG untouched
        torch.manual_seed(seed)
        model = Qwen2ForCausalLM(config).eval()
    model.save_pretrained(out_dir, safe_serialization=True)
    GenerationConfig(eos_token_id=eos_id, pad_token_id=pad_id, do_sample=False).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


def build_tiny_pair(root: Path) -> tuple[Path, Path]:
    """The standard draft (seed 0) and a slightly larger target (seed 1) under `root`."""
    draft = build_tiny_model(Path(root) / "tiny-draft", seed=0)
    target = build_tiny_model(Path(root) / "tiny-target", seed=1, layers=3, intermediate_size=384)
    return draft, target
