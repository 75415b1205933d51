"""A character-level `PreTrainedTokenizerFast` built offline from a `tokenizers` WordLevel model.

Each character of the alphabet is one token; ``<pad> <bos> <eos> <unk>`` are the special tokens. A `Split`
pre-tokenizer isolates every character, the `Fuse` decoder joins them without spaces, and a `TemplateProcessing`
post-processor prepends ``<bos>`` (so a trainer that tokenises a plain prompt with the default special tokens sees the
SFT format). Padding is on the left, for generation.
"""

from __future__ import annotations

from collections.abc import Sequence

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors
from transformers import PreTrainedTokenizerFast

SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>", "<unk>")


def char_tokenizer(alphabet: str) -> PreTrainedTokenizerFast:
    """A tokenizer with ids ``<pad>=0 <bos>=1 <eos>=2 <unk>=3`` then one id per character of `alphabet`, in order.

    Raises:
        ValueError: a repeated character, or whitespace (the decoder fuses pieces, so spaces would be lost).
    """
    if len(set(alphabet)) != len(alphabet) or any(c.isspace() for c in alphabet):
        raise ValueError(f"The alphabet must hold unique, non-whitespace characters; got {alphabet!r}.")
    return word_level_tokenizer(
        SPECIAL_TOKENS + tuple(alphabet),
        pre_tokenizer=pre_tokenizers.Split(Regex("."), behavior="isolated"),
        decoder=decoders.Fuse(),
    )


def word_level_tokenizer(
    words: Sequence[str], *, pre_tokenizer: pre_tokenizers.PreTokenizer, decoder: decoders.Decoder
) -> PreTrainedTokenizerFast:
    """A `WordLevel` tokenizer with id i for ``words[i]`` (``words`` starts with `SPECIAL_TOKENS`), the given
    pre-tokenizer and decoder, a post-processor that prepends ``<bos>``, and left padding."""
    vocab = {w: i for i, w in enumerate(words)}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizer
    tok.decoder = decoder
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", pair="<bos> $A $B", special_tokens=[("<bos>", vocab["<bos>"])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        pad_token="<pad>",
        bos_token="<bos>",
        eos_token="<eos>",
        unk_token="<unk>",
        padding_side="left",
    )
