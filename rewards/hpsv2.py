"""HPSv2 / HPSv2.1 (Wu et al. 2023, github.com/tgxs002/HPSv2): the cosine similarity of a fine-tuned open_clip
ViT-H-14's image and text embeddings, loaded into `transformers.CLIPModel` from the official ``.pt`` files.

Original scoring (`hpsv2/img_score.py`, also Flow-GRPO's `hpsv2_scorer.py` and DanceGRPO): ``preprocess_val`` is
``ToTensor -> Resize(224, bicubic, antialias) -> CenterCrop(224) -> Normalize(CLIP mean, std)`` on the 8-bit image
(the resize runs on the float tensor, unlike open_clip's PIL resize); the prompt goes through open_clip's tokenizer
(77 tokens); the score is ``image_features @ text_features.T`` of the unit-norm features (no logit scale), about
0.2-0.35 for real images.
"""

from __future__ import annotations

import os

import torch

from rewards.checkpoints import Checkpoint, check_vocab, load_state_dict, resolve
from rewards.clip_model import image_embeds, text_embeds
from rewards.clip_tokenizer import clip_tokenizer
from rewards.images import check_images
from rewards.openclip_keys import load_openclip_as_hf
from rewards.preprocess import tensor_resize_crop

CHECKPOINTS = {
    "v2.0": Checkpoint(
        "hpsv2_v2_0",
        "HPS_v2_compressed.pt",
        "HPS_v2_compressed.pt ({'state_dict': open_clip ViT-H-14 state dict})",
        "https://huggingface.co/xswu/HPSv2 (file HPS_v2_compressed.pt)",
        hub_file="HPS_v2_compressed.pt",
    ),
    "v2.1": Checkpoint(
        "hpsv2",
        "HPS_v2.1_compressed.pt",
        "HPS_v2.1_compressed.pt ({'state_dict': open_clip ViT-H-14 state dict})",
        "https://huggingface.co/xswu/HPSv2 (file HPS_v2.1_compressed.pt)",
        hub_file="HPS_v2.1_compressed.pt",
    ),
}


class HpsV2Reward:
    """HPS v2 / v2.1 score of each (image, prompt) pair.

    Args:
        version (`str`, defaults to "v2.1"): "v2.1" (reward name ``hpsv2``) or "v2.0" (``hpsv2_v2_0``).
        path (`str`, *optional*): the ``.pt`` file; default ``$FLOWRL_REWARDS_HOME/HPS_v2.1_compressed.pt``.
        hub_id (`str`, *optional*): e.g. "xswu/HPSv2" to download the file (nothing downloads otherwise).
        tokenizer_path (`str`, *optional*): a CLIP tokenizer folder or ``bpe_simple_vocab_16e6.txt.gz``; default
            the copy shipped in ``rewards/assets``.
        vision_heads (`int`, defaults to 16), text_heads (`int`, defaults to 16): ViT-H-14's attention heads.
        device (`str`, defaults to "cpu"), dtype (`torch.dtype`, defaults to float32): where the model runs.
    """

    def __init__(
        self,
        *,
        version: str = "v2.1",
        path: str | os.PathLike | None = None,
        hub_id: str | None = None,
        tokenizer_path: str | os.PathLike | None = None,
        vision_heads: int = 16,
        text_heads: int = 16,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        if version not in CHECKPOINTS:
            raise ValueError(f"HPS version {version!r} unknown; valid: {sorted(CHECKPOINTS)}.")
        spec = CHECKPOINTS[version]
        self.name = spec.reward
        sd = load_state_dict(resolve(spec, path, hub_id=hub_id))
        self.model = load_openclip_as_hf(sd, vision_heads=vision_heads, text_heads=text_heads).to(device, dtype)
        self.size = self.model.config.vision_config.image_size
        self.context = self.model.config.text_config.max_position_embeddings
        self.tokenizer = clip_tokenizer(tokenizer_path, max_length=self.context)
        vocab = self.model.config.text_config.vocab_size
        check_vocab(self.name, len(self.tokenizer), vocab, source=str(tokenizer_path or "the shipped BPE file"))

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del metadata
        images = check_images(self.name, images)
        pixels = tensor_resize_crop(images, size=self.size, mode="bicubic", quantize_first=True)  # (B, 3, S, S)
        ids = self.tokenizer(
            list(prompts), padding="max_length", max_length=self.context, truncation=True, return_tensors="pt"
        ).input_ids  # (B, 77); open_clip passes no attention mask (the causal mask hides the padding)
        return (image_embeds(self.model, pixels) * text_embeds(self.model, ids)).sum(-1).cpu()  # (B,)
