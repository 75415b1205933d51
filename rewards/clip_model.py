"""Shared pieces of the CLIP-based rewards: load a transformers CLIP folder, embed images and prompts."""

from __future__ import annotations

import os
from pathlib import Path

import torch

from rewards.checkpoints import Checkpoint, check_vocab, resolve
from rewards.clip_tokenizer import clip_tokenizer


class ClipFolderReward:
    """Base of a reward scored by a transformers CLIP folder (a subclass sets `name`, `CHECKPOINT`, `__call__`):
    loads the model (`load_clip_folder`) and a CLIP tokenizer of its context length, and checks their vocabularies.

    Args:
        path (`str`, *optional*): the model folder; default ``$FLOWRL_REWARDS_HOME/<CHECKPOINT folder>``.
        hub_id (`str`, *optional*): a hub repository to download it from.
        tokenizer_path (`str`, *optional*): tokenizer folder or merges ``.txt.gz``; default the model folder.
        device (`str`, defaults to "cpu"), dtype (`torch.dtype`, defaults to float32): where the model runs.
    """

    name: str
    CHECKPOINT: Checkpoint

    def __init__(
        self,
        *,
        path: str | os.PathLike | None = None,
        hub_id: str | None = None,
        tokenizer_path: str | os.PathLike | None = None,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
    ) -> None:
        folder = resolve(self.CHECKPOINT, path, hub_id=hub_id)
        self.model = load_clip_folder(self.CHECKPOINT, folder, device=device, dtype=dtype)
        self.size = self.model.config.vision_config.image_size
        self.context = self.model.config.text_config.max_position_embeddings
        self.tokenizer = clip_tokenizer(Path(tokenizer_path or folder), max_length=self.context)
        vocab = self.model.config.text_config.vocab_size
        check_vocab(self.name, len(self.tokenizer), vocab, source=str(tokenizer_path or folder))


def load_clip_folder(spec: Checkpoint, folder: Path, *, device: str | torch.device, dtype: torch.dtype):
    """`CLIPModel.from_pretrained(folder)` in eval mode without gradients; the folder must hold ``config.json``."""
    from transformers import CLIPModel

    if not (folder / "config.json").exists():
        raise FileNotFoundError(
            f"Reward {spec.reward!r}: {folder} is not a transformers CLIP folder (no config.json); expected "
            f"{spec.expected}, as published at {spec.published}."
        )
    model = CLIPModel.from_pretrained(folder, dtype=dtype)
    return model.to(device).eval().requires_grad_(False)


def image_embeds(model, pixels: torch.Tensor) -> torch.Tensor:
    """`(B, E)` unit-norm image embeddings: ``visual_projection(post_layernorm(CLS))``, normalised in fp32."""
    param = model.visual_projection.weight
    pooled = model.vision_model(pixel_values=pixels.to(param.device, param.dtype)).pooler_output  # (B, D_vis)
    e = model.visual_projection(pooled).float()  # (B, E)
    return e / e.norm(dim=-1, keepdim=True)


def text_embeds(model, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
    """`(B, E)` unit-norm text embeddings: ``text_projection`` of the hidden state at the first end-of-text token."""
    device = model.text_projection.weight.device
    mask = None if attention_mask is None else attention_mask.to(device)
    pooled = model.text_model(input_ids=input_ids.to(device), attention_mask=mask).pooler_output  # (B, D_text)
    e = model.text_projection(pooled).float()  # (B, E)
    return e / e.norm(dim=-1, keepdim=True)
