"""What a checkpoint stores of a trained transformer, shared by every adapter: the LoRA weights (peft keys) when
an adapter is trained, the full state dict otherwise."""

from __future__ import annotations

import torch


def trained_state(transformer: torch.nn.Module, *, lora: bool) -> dict[str, torch.Tensor]:
    """Detached copies of the LoRA weights (``lora=True``) or of the full transformer state dict."""
    if lora:
        from peft.utils import get_peft_model_state_dict

        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(transformer).items()}
    return {k: v.detach().clone() for k, v in transformer.state_dict().items()}


def load_trained_state(transformer: torch.nn.Module, state: dict[str, torch.Tensor], *, lora: bool) -> None:
    """Inverse of `trained_state`."""
    if lora:
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(transformer, state)
    else:
        transformer.load_state_dict(state)
