"""The transformer a pipeline adapter trains, and its reference policy (SD3 / SD3.5, FLUX.1, ShapeWorld).

* LoRA (``lora_rank > 0``, peft through diffusers' `add_adapter`, gaussian init): the base weights stay in the
  loading dtype and frozen, the LoRA weights are fp32; the reference policy is the same transformer with the adapter
  disabled (no second copy).
* full fine-tuning (``lora_rank = 0``): the transformer is trained in fp32 (master weights); the reference is a
  frozen copy in the loading dtype, or none (`reference_copy=False`: methods without a KL term).
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Iterator
from pathlib import Path

import torch

from flowrl.models.weights import load_trained_state, trained_state


class TrainedTransformer:
    """A diffusers transformer set up for training (LoRA or full), with its reference policy.

    Attributes:
        module: the trained module. dtype: the input dtype of `module` (the base dtype with LoRA, else fp32).
        reference_module: the frozen copy (full fine-tuning with `reference_copy`), else None.
        reference_dtype: the loading dtype (the frozen copy's).
    """

    def __init__(
        self,
        transformer: torch.nn.Module,
        *,
        lora_rank: int,
        lora_alpha: float,
        lora_targets: tuple[str, ...],
        reference_copy: bool,
        gradient_checkpointing: bool,
    ) -> None:
        if lora_rank < 0:
            raise ValueError(f"lora_rank must be >= 0 (0 = full fine-tuning), got {lora_rank}.")
        self.module, self.lora_rank = transformer, lora_rank
        base_dtype = transformer.dtype
        if lora_rank > 0:
            from peft import LoraConfig

            transformer.requires_grad_(False)
            transformer.add_adapter(
                LoraConfig(
                    r=lora_rank, lora_alpha=lora_alpha, init_lora_weights="gaussian", target_modules=list(lora_targets)
                )
            )
            for p in transformer.parameters():  # LoRA weights in fp32 (the base stays in its loading dtype)
                if p.requires_grad:
                    p.data = p.data.float()
            self.reference_module = None
        else:
            self.reference_module = copy.deepcopy(transformer).requires_grad_(False).eval() if reference_copy else None
            if base_dtype != torch.float32:
                transformer.to(torch.float32)  # fp32 master weights
            transformer.requires_grad_(True)
        self.dtype = base_dtype if lora_rank > 0 else torch.float32  # input dtype of the trained module
        self.reference_dtype = base_dtype
        if gradient_checkpointing:
            transformer.enable_gradient_checkpointing()

    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        return [p for p in self.module.parameters() if p.requires_grad]

    @contextlib.contextmanager
    def reference(self) -> Iterator[None]:
        """Inside: `reference_forward` is the frozen initial policy (LoRA: the adapter disabled)."""
        if self.lora_rank == 0 and self.reference_module is None:
            raise _no_reference()
        if self.reference_module is None:
            self.module.disable_adapters()
            try:
                yield
            finally:
                self.module.enable_adapters()
        else:
            yield

    def reference_forward(self) -> tuple[torch.nn.Module, torch.dtype]:
        """The reference policy's module and input dtype (with LoRA: call inside `reference()`)."""
        if self.lora_rank > 0:  # inside `reference()` the adapter is disabled
            return self.module, self.dtype
        if self.reference_module is None:
            raise _no_reference()
        return self.reference_module, self.reference_dtype

    def trained_state(self) -> dict[str, torch.Tensor]:
        """The LoRA weights (peft keys) or the full transformer state dict, detached copies."""
        return trained_state(self.module, lora=self.lora_rank > 0)

    def load_trained_state(self, state: dict[str, torch.Tensor]) -> None:
        load_trained_state(self.module, state, lora=self.lora_rank > 0)

    def save_lora(self, pipeline_cls: type, out: Path) -> Path:
        """The LoRA in diffusers' layout (`pytorch_lora_weights.safetensors`, loadable with
        ``<pipeline_cls>.load_lora_weights(out)``), its rank and alpha in the metadata."""
        from peft.utils import get_peft_model_state_dict

        pipeline_cls.save_lora_weights(
            out,
            transformer_lora_layers=get_peft_model_state_dict(self.module),
            # rank and alpha travel with the weights: without them a loader assumes alpha = rank (scale 1)
            transformer_lora_adapter_metadata=self.module.peft_config["default"].to_dict(),
            safe_serialization=True,
        )
        return out


def _no_reference() -> RuntimeError:
    return RuntimeError(
        "This adapter was built with reference_copy=False (full fine-tuning without a reference policy): build it "
        "with reference_copy=True, or train with kl_beta = 0 (then no reference velocity is needed)."
    )
