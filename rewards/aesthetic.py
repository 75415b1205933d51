"""LAION aesthetic predictor v2 (github.com/christophschuhmann/improved-aesthetic-predictor, weights
``sac+logos+ava1-l14-linearMSE.pth``): a 5-layer linear MLP on the unit-norm CLIP ViT-L/14 image embedding, giving
a 1-10 style rating. As DDPO's and Flow-GRPO's ``aesthetic_scorer.py`` call it: the 8-bit image goes through
``CLIPProcessor`` (PIL bicubic short-side resize to 224, centre crop, CLIP normalisation), then
``mlp(embed / |embed|)``; the prompt is ignored.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rewards.checkpoints import Checkpoint, load_state_dict, resolve
from rewards.clip_model import image_embeds, load_clip_folder
from rewards.images import check_images
from rewards.mlp_head import linear_stack
from rewards.preprocess import pil_resize_crop

CLIP_CHECKPOINT = Checkpoint(
    "aesthetic",
    "clip-vit-large-patch14",
    "a transformers CLIP folder (config.json, model.safetensors)",
    "https://huggingface.co/openai/clip-vit-large-patch14",
)
MLP_CHECKPOINT = Checkpoint(
    "aesthetic",
    "sac+logos+ava1-l14-linearMSE.pth",
    "sac+logos+ava1-l14-linearMSE.pth (state dict with layers.{0,2,4,6,7}.weight/bias)",
    "https://github.com/christophschuhmann/improved-aesthetic-predictor (also ddpo-pytorch/ddpo_pytorch/assets)",
)


class AestheticReward:
    """LAION aesthetic score of each image.

    Args:
        path (`str`, *optional*): the MLP ``.pth``; default ``$FLOWRL_REWARDS_HOME/sac+logos+ava1-l14-linearMSE.pth``.
        clip_path (`str`, *optional*): the CLIP ViT-L/14 folder; default
            ``$FLOWRL_REWARDS_HOME/clip-vit-large-patch14``.
        device (`str`, defaults to "cpu"), dtype (`torch.dtype`, defaults to float32): where the CLIP model runs
            (the MLP runs in fp32).
    """

    name = "aesthetic"

    def __init__(
        self,
        *,
        path: str | os.PathLike | None = None,
        clip_path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        folder = resolve(CLIP_CHECKPOINT, clip_path)
        self.model = load_clip_folder(CLIP_CHECKPOINT, Path(folder), device=device, dtype=dtype)
        sd = load_state_dict(resolve(MLP_CHECKPOINT, path))
        self.mlp = linear_stack({k.removeprefix("layers."): v for k, v in sd.items()}).to(device)
        self.size = self.model.config.vision_config.image_size

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del prompts, metadata
        pixels = pil_resize_crop(check_images(self.name, images), size=self.size, crop_rounding="floor")
        embed = image_embeds(self.model, pixels)  # (B, E) unit norm
        return self.mlp(embed).squeeze(1).cpu()  # (B,)
