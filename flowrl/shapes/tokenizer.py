"""The ShapeWorld tokenizer: a CLIP BPE tokenizer (`transformers.CLIPTokenizer`) over the grammar's vocabulary.

It is an ordinary `CLIPTokenizer` (so `StableDiffusion3Pipeline` loads and uses it like SD3's own), trained on the
grammar's words until every word is one token: ``<|startoftext|> words <|endoftext|>`` padded with
``<|endoftext|>`` to `max_length` (CLIP pools the hidden state at the FIRST end-of-text token, which is the real
one). The empty prompt (``<|startoftext|> <|endoftext|>``) is the unconditional input for classifier-free
guidance. A word outside the grammar would silently split into characters, so every flowrl entry point calls
`check_words` first.
"""

from transformers import CLIPTokenizer

from flowrl.shapes.grammar import vocabulary

DEFAULT_MAX_LENGTH = 12  # the longest prompt ("a red circle left of a blue square") is 8 words + BOS + EOS
_BPE_VOCAB = 400  # enough merges for every grammar word to become one token (333 are used)


def build_tokenizer(*, max_length: int = DEFAULT_MAX_LENGTH) -> CLIPTokenizer:
    """Build the ShapeWorld CLIP tokenizer (deterministic: the same ids on every call).

    Args:
        max_length (`int`, defaults to 12): padded sequence length (`model_max_length`), including BOS and EOS.

    Returns:
        `CLIPTokenizer`: saves and loads with `save_pretrained` / `from_pretrained`.
    """
    words = list(vocabulary())
    tokenizer = CLIPTokenizer().train_new_from_iterator([" ".join(words)] * 8, vocab_size=_BPE_VOCAB)
    tokenizer.model_max_length = max_length
    tokenizer.padding_side = "right"
    split = [w for w in words if len(tokenizer(w, add_special_tokens=False).input_ids) != 1]
    if split:  # a guard on the tokenizers library's trainer, not on user input
        raise RuntimeError(f"BPE training left {split} as several tokens; raise _BPE_VOCAB above {_BPE_VOCAB}.")
    return tokenizer


def check_words(prompts: list[str]) -> None:
    """Raise a ValueError naming the first word of `prompts` outside the ShapeWorld vocabulary."""
    known = set(vocabulary())
    for prompt in prompts:
        for word in prompt.lower().split():
            if word not in known:
                raise ValueError(
                    f"Unknown word {word!r} in prompt {prompt!r}: the ShapeWorld tokenizer only knows "
                    f"{', '.join(vocabulary())} (and the empty prompt for unconditional generation)."
                )
