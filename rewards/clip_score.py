"""CLIPScore as Flow-GRPO computes it (`flow_grpo/clip_scorer.py`): ``logits_per_image.diagonal() / 100`` of
OpenAI's CLIP ViT-L/14 (``openai/clip-vit-large-patch14``), i.e. the cosine similarity of image and prompt (its
logit scale is 100).

Preprocessing as Flow-GRPO's: the float image (not quantised) goes through torchvision ``Resize(224)`` (bilinear,
antialias) and ``CenterCrop(224)`` and CLIP normalisation; the prompt is padded to 77 tokens. (Hessel et al.'s
CLIPScore, ``2.5 * max(cos, 0)`` on ViT-B/32, is a different scale.)
"""

from __future__ import annotations

import torch

from rewards.checkpoints import Checkpoint
from rewards.clip_model import ClipFolderReward, image_embeds, text_embeds
from rewards.images import check_images
from rewards.preprocess import tensor_resize_crop

CHECKPOINT = Checkpoint(
    "clip_score",
    "clip-vit-large-patch14",
    "a transformers CLIP folder (config.json, model.safetensors, tokenizer files)",
    "https://huggingface.co/openai/clip-vit-large-patch14",
)


class ClipScoreReward(ClipFolderReward):
    """``logit_scale.exp() * cos(image, prompt) / 100`` with CLIP ViT-L/14.

    Args:
        path (`str`, *optional*): the model folder; default ``$FLOWRL_REWARDS_HOME/clip-vit-large-patch14``.
        hub_id (`str`, *optional*): e.g. "openai/clip-vit-large-patch14" to download it.
        tokenizer_path (`str`, *optional*): tokenizer folder or merges ``.txt.gz``; default the model folder.
        device (`str`, defaults to "cpu"), dtype (`torch.dtype`, defaults to float32): where the model runs.
    """

    name = "clip_score"
    CHECKPOINT = CHECKPOINT

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del metadata
        images = check_images(self.name, images)
        pixels = tensor_resize_crop(images, size=self.size, mode="bilinear", quantize_first=False)
        text = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.context, truncation=True, return_tensors="pt"
        )  # (B, 77)
        cos = (image_embeds(self.model, pixels) * text_embeds(self.model, text.input_ids, text.attention_mask)).sum(-1)
        return (self.model.logit_scale.exp().float() * cos / 100.0).cpu()  # (B,)
