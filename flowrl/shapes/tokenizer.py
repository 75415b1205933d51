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


def bpe_merges(words: list[str], *, suffix: str = "</w>") -> list[tuple[str, str]]:
    """Byte-pair merges that make every word of `words` one token, in a fixed order.

    Plain BPE training (Sennrich et al. 2016) over the words, each counted once, with the end-of-word suffix on the
    last character as CLIP writes it: repeatedly merge the most frequent adjacent pair, ties broken by the pair's
    text, until every word is one symbol. The tie-break is what makes it deterministic: the `tokenizers` trainer
    breaks ties by hash order, so two calls in one process gave different ids (a resumed pretraining run then read
    its checkpoint's token embeddings through a shuffled vocabulary)."""
    split = {w: [*w[:-1], w[-1] + suffix] for w in sorted(set(words))}
    merges: list[tuple[str, str]] = []
    while any(len(symbols) > 1 for symbols in split.values()):
        counts: dict[tuple[str, str], int] = {}
        for symbols in split.values():
            for pair in zip(symbols, symbols[1:], strict=False):
                counts[pair] = counts.get(pair, 0) + 1
        best = min(counts, key=lambda pair: (-counts[pair], pair))
        merges.append(best)
        for word, symbols in split.items():
            merged, i = [], 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    merged.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    merged.append(symbols[i])
                    i += 1
            split[word] = merged
    return merges


def build_tokenizer(*, max_length: int = DEFAULT_MAX_LENGTH) -> CLIPTokenizer:
    """Build the ShapeWorld CLIP tokenizer, deterministically: the same ids on every call and in every process.

    The vocabulary is CLIP's layout: BOS and EOS, the 256 byte-level characters (so a word outside the grammar
    still encodes, as characters), each with its end-of-word form, then one entry per merge of `bpe_merges` over
    the grammar's words.

    Args:
        max_length (`int`, defaults to 12): padded sequence length (`model_max_length`), including BOS and EOS.

    Returns:
        `CLIPTokenizer`: saves and loads with `save_pretrained` / `from_pretrained`.
    """
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet())
    merges = bpe_merges(list(vocabulary()))
    tokens = ["<|startoftext|>", "<|endoftext|>", *alphabet, *(c + "</w>" for c in alphabet)]
    tokens += [a + b for a, b in merges]
    vocab = {token: index for index, token in enumerate(dict.fromkeys(tokens))}
    tokenizer = CLIPTokenizer(vocab=vocab, merges=merges)
    tokenizer.model_max_length = max_length
    tokenizer.padding_side = "right"
    split = [w for w in vocabulary() if len(tokenizer(w, add_special_tokens=False).input_ids) != 1]
    if split:  # a guard on the merges above, not on user input
        raise RuntimeError(f"The ShapeWorld BPE left {split} as several tokens.")
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
