"""The word-level tokenizer of the ShapeWorld VLM: question / answer words, the reasoning tags and the image keys.

Ids: ``<pad>=0 <bos>=1 <eos>=2 <unk>=3``, then ``<think> </think> <answer> </answer>``, the image token ``<image>``
(LLaVA's placeholder, replaced by the vision features inside the model), the 16 image-key tokens ``<k0>`` ..
``<kf>`` (hex digits: 16 of them name one image, `flowrl.vlm.images.image_key`), then the words of
`flowrl.shapes.questions.question_vocabulary`. Whitespace pre-tokenizer, a `TemplateProcessing` that prepends
``<bos>``, left padding. A completion reads ``<think> red circle blue square </think> <answer> two </answer> <eos>``.
"""

from __future__ import annotations

from tokenizers import decoders, pre_tokenizers
from transformers import PreTrainedTokenizerFast

from flowrl.shapes.questions import question_vocabulary
from flowrl.text.char_tokenizer import SPECIAL_TOKENS, word_level_tokenizer

TAGS = ("<think>", "</think>", "<answer>", "</answer>")
IMAGE_TOKEN = "<image>"
KEY_TOKENS = tuple(f"<k{d}>" for d in "0123456789abcdef")


def vlm_tokenizer() -> PreTrainedTokenizerFast:
    """The tokenizer (same ids on every machine: the vocabulary is a fixed list)."""
    words = SPECIAL_TOKENS + TAGS + (IMAGE_TOKEN,) + KEY_TOKENS + question_vocabulary()
    return word_level_tokenizer(
        words,
        pre_tokenizer=pre_tokenizers.WhitespaceSplit(),
        decoder=decoders.WordPiece(prefix="##", cleanup=False),  # joins words with single spaces
    )
