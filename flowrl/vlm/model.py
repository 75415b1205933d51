"""The tiny ShapeWorld VLM: a `LlavaForConditionalGeneration` (tiny CLIP vision tower + tiny Llama), and
`KeyedImageVLM`, the wrapper the text trainer calls like a causal LM.

LLaVA (Liu et al., arXiv 2304.08485) feeds the vision tower's patch features, through a 2-layer MLP projector, to the
language model in place of the ``<image>`` tokens of the prompt: ``h = LM([E(t_1..t_k), W2 gelu(W1 V(x)), E(...)])``.
Here the prompt names its image by 16 key tokens (`flowrl.vlm.images`); `KeyedImageVLM` swaps them for ``<image>``
tokens and passes the registered image's pixel values, in `forward`, `generate` and the decoder the trainer's
log-prob code calls (`get_decoder()`), so every forward of the text trainer is LLaVA's own forward.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from transformers import PreTrainedTokenizerBase

from flowrl.vlm.images import KEY_DIGITS, as_uint8_image, image_key, key_text, pixel_values
from flowrl.vlm.tokenizer import IMAGE_TOKEN, KEY_TOKENS

IMAGE_SIZE = 32
PATCH_SIZE = 8
NUM_IMAGE_TOKENS = (IMAGE_SIZE // PATCH_SIZE) ** 2  # 16 patch features per image (CLS dropped)


def build_tiny_llava(
    tokenizer: PreTrainedTokenizerBase,
    *,
    vision_hidden: int = 64,
    vision_layers: int = 2,
    text_hidden: int = 128,
    text_layers: int = 3,
    max_positions: int = 96,
    seed: int = 0,
):
    """A randomly initialised tiny LLaVA for 32x32 images (16 image tokens) and `tokenizer`'s vocabulary."""
    from transformers import CLIPVisionConfig, LlamaConfig, LlavaConfig, LlavaForConditionalGeneration

    vision = CLIPVisionConfig(
        hidden_size=vision_hidden, intermediate_size=2 * vision_hidden, num_hidden_layers=vision_layers,
        num_attention_heads=4, image_size=IMAGE_SIZE, patch_size=PATCH_SIZE, projection_dim=vision_hidden,
    )  # fmt: skip
    text = LlamaConfig(
        hidden_size=text_hidden, intermediate_size=3 * text_hidden, num_hidden_layers=text_layers,
        num_attention_heads=4, num_key_value_heads=4, vocab_size=len(tokenizer), max_position_embeddings=max_positions,
        tie_word_embeddings=True, pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )  # fmt: skip
    config = LlavaConfig(
        vision_config=vision, text_config=text, image_token_id=tokenizer.convert_tokens_to_ids(IMAGE_TOKEN),
        vision_feature_layer=-1, vision_feature_select_strategy="default", projector_hidden_act="gelu",
        image_seq_length=NUM_IMAGE_TOKENS, tie_word_embeddings=True,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    model.generation_config.bos_token_id = tokenizer.bos_token_id
    return model


def build_processor():
    """LLaVA's CLIP image processor at 32x32 (no resize of 32x32 inputs; CLIP's mean and std)."""
    from transformers import CLIPImageProcessorPil

    return CLIPImageProcessorPil(
        size={"shortest_edge": IMAGE_SIZE}, crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE}, do_resize=True,
        do_center_crop=True, do_convert_rgb=True,
    )  # fmt: skip


def is_vlm_folder(path: str | Path) -> bool:
    """Whether `path` holds a LLaVA model (``config.json`` with model_type ``llava``)."""
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    return json.loads(config.read_text()).get("model_type") == "llava"


class _KeyedDecoder(torch.nn.Module):
    """`get_decoder()` of the wrapper: LLaVA's `LlavaModel` (vision tower + projector + language model) on key ids."""

    def __init__(self, vlm: KeyedImageVLM) -> None:
        super().__init__()
        self.vlm = vlm

    def forward(self, input_ids: torch.Tensor, **kwargs):
        ids, pv = self.vlm.swap_keys(input_ids)
        return self.vlm.llava.model(input_ids=ids, pixel_values=pv, **kwargs)


class KeyedImageVLM(torch.nn.Module):
    """A LLaVA whose prompts name their image by key tokens; call it like a causal LM (forward, generate, decoder).

    `register(image)` stores an image's pixel values under its key and returns the key's prompt text.
    """

    def __init__(self, llava, tokenizer: PreTrainedTokenizerBase, processor) -> None:
        super().__init__()
        self.llava, self.processor = llava, processor
        self.config, self.generation_config = llava.config, llava.generation_config
        key_ids = tokenizer.convert_tokens_to_ids(list(KEY_TOKENS))
        self.register_buffer("key_ids", torch.tensor(key_ids), persistent=False)  # (16,) in hex-digit order
        self.image_token_id = llava.config.image_token_id
        self.image_size = llava.config.vision_config.image_size
        self.images: dict[str, torch.Tensor] = {}  # key -> (3, H, W) pixel values

    @property
    def device(self) -> torch.device:
        return self.llava.device

    def register(self, image: object) -> str:
        """Store `image` (PIL, uint8 HWC array, or float CHW tensor in [0, 1]); returns its prompt text (16 keys)."""
        arr = as_uint8_image(image, size=self.image_size)
        key = image_key(arr)
        if key not in self.images:
            self.images[key] = pixel_values(self.processor, [arr])[0]
        return key_text(key)

    def register_many(self, images: list[np.ndarray]) -> list[str]:
        """`register` for a batch (one processor call for the new ones)."""
        arrs = [as_uint8_image(im, size=self.image_size) for im in images]
        keys = [image_key(a) for a in arrs]
        new = {k: a for k, a in zip(keys, arrs, strict=True) if k not in self.images}
        if new:
            for k, pv in zip(new, pixel_values(self.processor, list(new.values())), strict=True):
                self.images[k] = pv
        return [key_text(k) for k in keys]

    def swap_keys(self, input_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """`(B, L)` ids with every row's 16 key tokens replaced by ``<image>``, and the `(n, 3, H, W)` pixel values
        of the rows that name an image (in row order), or None when no row does."""
        is_key = torch.isin(input_ids, self.key_ids)  # (B, L)
        is_key = is_key & (is_key.long().cumsum(-1) <= NUM_IMAGE_TOKENS)  # the first 16 of a row name its image
        counts = is_key.sum(-1).tolist()
        if not any(counts):
            return input_ids, None
        digits = (input_ids[..., None] == self.key_ids).float().argmax(-1)  # (B, L) hex digit of key positions
        pvs = []
        for row, n in enumerate(counts):
            if n == 0:
                continue
            if n != NUM_IMAGE_TOKENS:
                raise ValueError(
                    f"Prompt row {row} holds {n} image-key tokens; an image is named by exactly {NUM_IMAGE_TOKENS} "
                    "(flowrl.vlm.images.key_text). Build prompts with flowrl.vlm.tasks.bind_images."
                )
            key = "".join(KEY_DIGITS[d] for d in digits[row][is_key[row]].tolist())
            if key not in self.images:
                raise KeyError(
                    f"Image key {key} is not registered with this policy: register the image first "
                    "(KeyedImageVLM.register, or flowrl.vlm.tasks.bind_images for a task file)."
                )
            pvs.append(self.images[key])
        ids = torch.where(is_key, torch.full_like(input_ids, self.image_token_id), input_ids)
        return ids, torch.stack(pvs).to(self.llava.device, self.llava.dtype)

    def forward(self, input_ids: torch.Tensor, **kwargs):
        ids, pv = self.swap_keys(input_ids)
        return self.llava(input_ids=ids, pixel_values=pv, **kwargs)

    def generate(self, input_ids: torch.Tensor, **kwargs) -> torch.Tensor:
        ids, pv = self.swap_keys(input_ids)
        cache = kwargs.get("cache")
        if cache is not None and cache.get_seq_length() > 0:
            pv = None  # the prompt (its image included) is already in the prefilled cache
        if pv is not None:
            kwargs["pixel_values"] = pv
        # never sample <image> or key tokens: LLaVA would count a generated <image> as an image slot in the next
        # forward with pixels (the SFT model gives them ~0 probability; log-probs are computed unsuppressed)
        kwargs.setdefault("suppress_tokens", [self.image_token_id, *self.key_ids.tolist()])
        out = self.llava.generate(input_ids=ids, **kwargs)
        return torch.cat([input_ids, out[:, ids.shape[1] :]], dim=1)  # the caller's prompt ids, then the completion

    def get_decoder(self) -> _KeyedDecoder:
        return _KeyedDecoder(self)

    def get_output_embeddings(self) -> torch.nn.Module:
        return self.llava.get_output_embeddings()

    def save_pretrained(self, folder: str | Path, **kwargs) -> None:
        self.llava.save_pretrained(folder, **kwargs)
        self.processor.save_pretrained(folder)


def load_vlm(path: str | Path, *, dtype: torch.dtype = torch.float32):
    """`(KeyedImageVLM, tokenizer)` from a model folder (LLaVA weights, tokenizer, image processor).

    Raises:
        ValueError: the folder is not a LLaVA model (naming its model_type), or lacks the image-key tokens.
    """
    from transformers import AutoTokenizer, CLIPImageProcessorPil, LlavaForConditionalGeneration

    path = Path(path)
    config = path / "config.json"
    if not config.is_file():
        raise ValueError(f"{path} has no config.json: not a model folder (a VLM folder holds a LLaVA model).")
    model_type = json.loads(config.read_text()).get("model_type")
    if model_type != "llava":
        raise ValueError(
            f"{path} holds a {model_type!r} model, not a VLM: flowrl train-vlm / eval --vlm need a LLaVA folder "
            "(model_type 'llava'), e.g. assets/shapeworld_vlm. Use flowrl train-text for a causal LM."
        )
    tokenizer = AutoTokenizer.from_pretrained(path)
    missing = [t for t in KEY_TOKENS if tokenizer.convert_tokens_to_ids(t) == tokenizer.unk_token_id]
    if missing:
        raise ValueError(
            f"The tokenizer in {path} lacks the image-key tokens {missing[:3]}...: build it with "
            "flowrl.vlm.tokenizer.vlm_tokenizer (or add the 16 tokens <k0>..<kf>)."
        )
    tokenizer.padding_side = "left"
    llava = LlavaForConditionalGeneration.from_pretrained(path, dtype=dtype)
    processor = CLIPImageProcessorPil.from_pretrained(path)
    return KeyedImageVLM(llava, tokenizer, processor), tokenizer
