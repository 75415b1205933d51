"""OpenAI CLIP's BPE tokenizer as a transformers `CLIPTokenizer`, built from ``bpe_simple_vocab_16e6.txt.gz``.

open_clip (and HPSv2's fork of it) tokenises with this merges file; the vocabulary is the 256 byte symbols, the
same with ``</w>``, one symbol per merge, then ``<|startoftext|>`` and ``<|endoftext|>`` (49,408 tokens). A copy of
the file ships in ``rewards/assets``.
"""

from __future__ import annotations

import gzip
import os
from pathlib import Path

BPE_FILE = Path(__file__).parent / "assets" / "bpe_simple_vocab_16e6.txt.gz"
NUM_MERGES = 49152 - 256 - 2  # open_clip's SimpleTokenizer reads merges[1 : 49152 - 256 - 2 + 1]


def clip_tokenizer_from_bpe(path: str | os.PathLike = BPE_FILE, *, max_length: int = 77):
    """Build the tokenizer from a gzipped merges file (first line a header, then one merge "a b" per line).

    Args:
        path (`str | os.PathLike`, defaults to the shipped copy): the ``.txt.gz`` merges file.
        max_length (`int`, defaults to 77): context length (open_clip's).

    Returns:
        `transformers.CLIPTokenizer`: BOS ``<|startoftext|>``, EOS and padding ``<|endoftext|>`` (the last id).
    """
    from transformers import CLIPTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    lines = gzip.open(path).read().decode("utf-8").split("\n")[1 : NUM_MERGES + 1]
    merges = [tuple(line.split()) for line in lines if line.strip()]
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols] + ["".join(m) for m in merges]
    vocab += ["<|startoftext|>", "<|endoftext|>"]
    tokenizer = CLIPTokenizer(vocab={t: i for i, t in enumerate(vocab)}, merges=merges)
    tokenizer.model_max_length = max_length
    return tokenizer


def clip_tokenizer(path: str | os.PathLike | None = None, *, max_length: int = 77):
    """A CLIP tokenizer from `path`: a transformers tokenizer folder, a ``.txt.gz`` merges file, or None for the
    shipped merges file."""
    if path is None or str(path).endswith(".gz"):
        return clip_tokenizer_from_bpe(BPE_FILE if path is None else path, max_length=max_length)
    from transformers import CLIPTokenizer

    folder = Path(path)
    if not (folder / "tokenizer.json").exists() and not (folder / "vocab.json").exists():
        raise FileNotFoundError(
            f"No CLIP tokenizer in {folder}: expected tokenizer.json or vocab.json + merges.txt (a transformers CLIP "
            "folder such as laion/CLIP-ViT-H-14-laion2B-s32B-b79K), or pass a bpe_simple_vocab_16e6.txt.gz file."
        )
    tokenizer = CLIPTokenizer.from_pretrained(folder)
    tokenizer.model_max_length = max_length
    return tokenizer
