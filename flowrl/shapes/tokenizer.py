"""Word-level tokenizer over the ShapeWorld vocabulary, as a transformers `PreTrainedTokenizerFast`.

Ids: ``[PAD]`` = 0, ``[UNK]`` = 1, the grammar words in `grammar.vocabulary()` order, then ``[BOS]`` and
``[EOS]``. EOS is the highest id on purpose: CLIP pools the hidden state at EOS, and older transformers code paths
find it with ``input_ids.argmax(-1)``; with EOS highest both paths pick the same token. Every prompt becomes
``[BOS] words [EOS]`` padded with ``[PAD]`` to `max_length`; the empty prompt (``[BOS] [EOS]``) is the
unconditional input for classifier-free guidance.
"""

from tokenizers import Tokenizer, normalizers, pre_tokenizers, processors
from tokenizers.models import WordLevel
from transformers import PreTrainedTokenizerFast

from flowrl.shapes.grammar import vocabulary

PAD, UNK, BOS, EOS = "[PAD]", "[UNK]", "[BOS]", "[EOS]"
DEFAULT_MAX_LENGTH = 12  # the longest prompt ("a red circle left of a blue square") is 8 words + BOS + EOS


def build_tokenizer(*, max_length: int = DEFAULT_MAX_LENGTH) -> PreTrainedTokenizerFast:
    """Build the word-level ShapeWorld tokenizer.

    Args:
        max_length (`int`, defaults to 12): padded sequence length, including BOS and EOS.

    Returns:
        `PreTrainedTokenizerFast`: saves and loads with `save_pretrained` / `from_pretrained`.
    """
    words = [PAD, UNK, *vocabulary(), BOS, EOS]
    vocab = {word: index for index, word in enumerate(words)}
    backend = Tokenizer(WordLevel(vocab=vocab, unk_token=UNK))
    backend.normalizer = normalizers.Lowercase()
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    backend.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, vocab[BOS]), (EOS, vocab[EOS])]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS,
        eos_token=EOS,
        pad_token=PAD,
        unk_token=UNK,
        model_max_length=max_length,
        padding_side="right",
    )


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
