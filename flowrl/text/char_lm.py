"""A randomly initialised Llama for the character tokenizer (`flowrl.text.char_tokenizer`): the architecture of the
shipped arithmetic LM (`scripts/pretrain_arith.py`: hidden 128, 4 layers, 4 heads, MLP 512, 1.05M parameters) and of
the text tests' tiny model, written once. Embeddings are tied and the special-token ids are the tokenizer's."""

from __future__ import annotations

from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerBase


def char_llama(
    tokenizer: PreTrainedTokenizerBase,
    *,
    hidden: int = 128,
    mlp: int = 512,
    layers: int = 4,
    heads: int = 4,
    kv_heads: int | None = None,
    positions: int = 64,
) -> LlamaForCausalLM:
    """A `LlamaForCausalLM` over `tokenizer`'s vocabulary; ``kv_heads`` None = ``heads`` (multi-head attention). The
    weights come from torch's global generator: seed it first for a reproducible model."""
    special = {k: getattr(tokenizer, k) for k in ("pad_token_id", "bos_token_id", "eos_token_id")}
    size = dict(hidden_size=hidden, intermediate_size=mlp, num_hidden_layers=layers, num_attention_heads=heads)
    cfg = LlamaConfig(
        vocab_size=len(tokenizer), num_key_value_heads=kv_heads or heads, max_position_embeddings=positions,
        tie_word_embeddings=True, **size, **special,
    )  # fmt: skip
    return LlamaForCausalLM(cfg)
