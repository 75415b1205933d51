"""PickScore (Kirstain et al. 2023, github.com/yuvalkirstain/PickScore): a CLIP ViT-H-14 fine-tuned on Pick-a-Pic,
published as a transformers folder (``yuvalkirstain/PickScore_v1``).

Original scoring: the ``laion/CLIP-ViT-H-14-laion2B-s32B-b79K`` processor (PIL bicubic short-side resize to 224,
centre crop, CLIP normalisation; prompt padded to the longest, truncated at 77) and
``logit_scale.exp() * cos(text, image)`` (about 18-23). Flow-GRPO (`pickscore_scorer.py`) divides by 26 to bring it
near [0, 1]; flowrl follows Flow-GRPO (``scale=1/26``; pass ``scale=1.0`` for raw PickScore).
"""

from __future__ import annotations

from typing import Any

import torch

from rewards.checkpoints import Checkpoint
from rewards.clip_model import ClipFolderReward, image_embeds, text_embeds
from rewards.images import check_images
from rewards.preprocess import pil_resize_crop

CHECKPOINT = Checkpoint(
    "pickscore",
    "PickScore_v1",
    "a transformers CLIP folder (config.json, model.safetensors or pytorch_model.bin, tokenizer files)",
    "https://huggingface.co/yuvalkirstain/PickScore_v1 (tokenizer: laion/CLIP-ViT-H-14-laion2B-s32B-b79K)",
)


class PickScoreReward(ClipFolderReward):
    """PickScore of each (image, prompt) pair, times `scale`.

    Args:
        path (`str`, *optional*): the model folder; default ``$FLOWRL_REWARDS_HOME/PickScore_v1``.
        hub_id (`str`, *optional*): e.g. "yuvalkirstain/PickScore_v1" to download it.
        tokenizer_path (`str`, *optional*): a CLIP tokenizer folder (the laion processor) or the merges ``.txt.gz``
            if the model folder has no tokenizer; default the model folder.
        scale (`float`, defaults to 1/26): multiplies ``logit_scale * cos`` (Flow-GRPO's normalisation).
        device (`str`, defaults to "cpu"), dtype (`torch.dtype`, defaults to float32): where the model runs.
    """

    name = "pickscore"
    CHECKPOINT = CHECKPOINT

    def __init__(self, *, scale: float = 1.0 / 26.0, **kwargs: Any) -> None:
        super().__init__(**kwargs)  # path, hub_id, tokenizer_path, device, dtype (`ClipFolderReward`)
        self.scale = scale

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del metadata
        pixels = pil_resize_crop(check_images(self.name, images), size=self.size, crop_rounding="floor")
        text = self.tokenizer(
            list(prompts), padding=True, truncation=True, max_length=self.context, return_tensors="pt"
        )  # (B, L) padded to the longest prompt, as the original processor call
        cos = (image_embeds(self.model, pixels) * text_embeds(self.model, text.input_ids, text.attention_mask)).sum(-1)
        return (self.model.logit_scale.exp().float() * cos * self.scale).cpu()  # (B,)
