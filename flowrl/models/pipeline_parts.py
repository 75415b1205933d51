"""The parts the SD3 and FLUX adapters share around their transformer: the prompt cache and the VAE codec."""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal, NamedTuple

import torch

MixedPrecision = Literal["no", "bf16"]


def check_settings(*, lora_rank: int, decode_batch_size: int, mixed_precision: str) -> None:
    """Raise on an adapter setting the trainer cannot run."""
    if lora_rank < 0:
        raise ValueError(f"lora_rank must be >= 0 (0 = full fine-tuning), got {lora_rank}.")
    if decode_batch_size < 1:
        raise ValueError(f"decode_batch_size must be >= 1, got {decode_batch_size}.")
    if mixed_precision not in ("no", "bf16"):
        raise ValueError(
            f"mixed_precision must be 'no' or 'bf16', got {mixed_precision!r}. fp16 autocast needs a gradient "
            "scaler, which the flowrl trainer does not run; use 'bf16' (or load the weights in fp16 with 'no')."
        )


class PromptCache:
    """Prompt embeddings, each prompt encoded once (alone) and kept; `encode_one` builds a one-prompt cond.

    One prompt per pass: BLAS rounds differently at other batch sizes, and a prompt's embedding must not depend on
    its batch (a resumed run meets prompts in other batches). `check` is called with every list of new prompts."""

    def __init__(
        self, encode_one: Callable[[list[str]], NamedTuple], *, check: Callable[[list[str]], None] | None = None
    ) -> None:
        self.encode_one, self.check = encode_one, check
        self.rows: dict[str, NamedTuple] = {}
        self.released = False

    def uncached(self, prompts: list[str]) -> NamedTuple:
        """`encode_one(prompts)`, refused once the text encoders are released."""
        if self.released:
            raise RuntimeError(
                f"Cannot encode {prompts[:3]}...: the text encoders were released (release_text_encoders). Encode "
                "every prompt before releasing them."
            )
        return self.encode_one(prompts)

    def __call__(self, prompts: list[str]) -> NamedTuple:
        """The cond of `prompts` (each field `(P, ...)`), encoding only the new ones."""
        missing = sorted({p for p in prompts if p not in self.rows})
        if missing and self.check is not None:
            self.check(missing)
        for p in missing:
            out = self.uncached([p])
            self.rows[p] = type(out)(*(t[0] for t in out))
        rows = [self.rows[p] for p in prompts]
        return type(rows[0])(*(torch.stack(field) for field in zip(*rows, strict=True)))


@torch.no_grad()
def vae_decode(vae, x: torch.Tensor, *, batch_size: int, device: torch.device) -> torch.Tensor:
    """Normalised latents `(B, C, h, w)` -> images `(B, 3, H, W)` float32 in [0, 1] on the CPU, `batch_size` at a
    time; ``z = x / scaling_factor + shift_factor`` undoes the VAE normalisation."""
    scale, shift = float(vae.config.scaling_factor), float(vae.config.shift_factor)
    images = []
    for chunk in x.split(batch_size):
        z = chunk.to(device, torch.float32) / scale + shift
        images.append(((vae.decode(z, return_dict=False)[0].float().cpu() + 1.0) / 2.0).clamp(0.0, 1.0))
    return torch.cat(images)  # (B, 3, H, W)


@torch.no_grad()
def vae_encode(vae, images: torch.Tensor, *, batch_size: int, device: torch.device) -> torch.Tensor:
    """Images `(B, 3, H, W)` in [0, 1] -> latents `(B, C, H / 8, W / 8)` in model space (posterior mean,
    ``(z - shift_factor) * scaling_factor``), e.g. targets of a flow-matching (SFT) term."""
    scale, shift = float(vae.config.scaling_factor), float(vae.config.shift_factor)
    latents = []
    for chunk in images.split(batch_size):
        z = vae.encode(chunk.to(device, torch.float32) * 2.0 - 1.0).latent_dist.mode()
        latents.append((z - shift) * scale)
    return torch.cat(latents)
