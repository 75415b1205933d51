"""The trained causal LM, its tokenizer and its reference: loaded from a local folder.

Full fine-tuning keeps a frozen copy as the reference (only when a KL term needs it); LoRA uses the base model with
the adapter disabled as the reference (no copy).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import NamedTuple

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, PreTrainedModel, PreTrainedTokenizerBase

from flowrl.text.evaluate import eos_token_ids
from flowrl.text.logprobs import TokenLogProbs, completion_logprobs


class TextPolicy(NamedTuple):
    model: PreTrainedModel  # trained (a peft model when lora_rank > 0)
    tokenizer: PreTrainedTokenizerBase  # left padding
    eos_ids: set[int]
    reference: PreTrainedModel | None  # frozen copy (full fine-tuning with KL), else None
    lora: bool


def load_policy(
    path: str | Path,
    *,
    dtype: str = "float32",
    lora_rank: int = 0,
    lora_alpha: float = 16.0,
    keep_reference: bool = False,
    device: torch.device | str = "cpu",
) -> TextPolicy:
    """Load a causal LM and its tokenizer from `path` (offline).

    A LLaVA folder (`flowrl.vlm.model.is_vlm_folder`) loads as an image-conditioned policy: the model is a
    `flowrl.vlm.model.KeyedImageVLM`, called like a causal LM, whose prompts name their images by key tokens
    (`bind_task_images` puts them in the task rows).

    Raises:
        ValueError: the tokenizer has no pad token (needed to batch prompts), or no EOS token is defined.
    """
    from flowrl.vlm.model import is_vlm_folder

    if is_vlm_folder(path):
        return _load_vlm_policy(path, dtype=dtype, lora_rank=lora_rank, keep_reference=keep_reference, device=device)
    tokenizer = AutoTokenizer.from_pretrained(path)
    if tokenizer.pad_token_id is None:
        raise ValueError(
            f"The tokenizer in {path} has no pad token, which batching prompts of different lengths needs. Set "
            "one and save it: `tok.pad_token = tok.eos_token` (or add a dedicated '<pad>'), then "
            "`tok.save_pretrained(folder)`."
        )
    tokenizer.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(path, dtype=getattr(torch, dtype)).to(device)
    model.generation_config.pad_token_id = tokenizer.pad_token_id
    eos_ids = eos_token_ids(model, tokenizer)
    reference = None
    if lora_rank > 0:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(
            model, LoraConfig(r=lora_rank, lora_alpha=lora_alpha, target_modules="all-linear", lora_dropout=0.0)
        )
    elif keep_reference:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
    model.train()
    return TextPolicy(model, tokenizer, eos_ids, reference, lora_rank > 0)


def _load_vlm_policy(
    path: str | Path, *, dtype: str, lora_rank: int, keep_reference: bool, device: torch.device | str
) -> TextPolicy:
    """The image-conditioned policy of a LLaVA folder (full fine-tuning; reference = a frozen copy when kept)."""
    from flowrl.vlm.model import load_vlm

    if lora_rank > 0:
        raise ValueError(
            f"model.lora_rank={lora_rank}: LoRA is not wired for the VLM policy ({path}); train it fully "
            "(model.lora_rank=0: the shipped VLM has 0.75M parameters)."
        )
    model, tokenizer = load_vlm(path, dtype=getattr(torch, dtype))
    model = model.to(device)
    eos_ids = eos_token_ids(model, tokenizer)
    reference = None
    if keep_reference:
        reference = copy.deepcopy(model).eval().requires_grad_(False)
        reference.images = model.images  # one image store: images bound later reach the reference too
    model.train()
    return TextPolicy(model, tokenizer, eos_ids, reference, False)


def is_vlm_policy(policy: TextPolicy) -> bool:
    """Whether the policy sees images (a `flowrl.vlm.model.KeyedImageVLM`)."""
    return hasattr(policy.model, "swap_keys")


def bind_task_images(policy: TextPolicy, rows: list[dict], path: str | Path) -> list[dict]:
    """Task rows ready for the policy: for a VLM, each row's image registered and its key tokens in the prompt
    (`flowrl.vlm.tasks.bind_images`, images relative to the task file `path`); text rows unchanged.

    Raises:
        ValueError: rows with images ('scene' / 'image' columns) for a policy that is not a VLM.
    """
    if is_vlm_policy(policy):
        from flowrl.vlm.tasks import bind_images

        return bind_images(policy.model, rows, base=Path(path).parent, shapeworld=all("scene" in r for r in rows))
    if any("scene" in r or "image" in r for r in rows):
        raise ValueError(
            f"The task file {path} has image rows ('scene' / 'image' columns) but the model is a text-only causal LM: "
            "set model.path to a VLM folder (e.g. assets/shapeworld_vlm) or use flowrl train-vlm."
        )
    return rows


def soup_model(model: PreTrainedModel, paths: list[str | Path]) -> PreTrainedModel:
    """SALSA's reference (arXiv 2411.01798): a frozen copy of `model` holding the uniform weight soup of the models
    saved in `paths` (`flowrl.grpo.soup.weight_soup`; same architecture required)."""
    from flowrl.grpo.soup import weight_soup

    states = [AutoModelForCausalLM.from_pretrained(p).state_dict() for p in paths]
    soup = copy.deepcopy(model)
    soup.load_state_dict(weight_soup(states))
    return soup.eval().requires_grad_(False)


def load_teacher(path: str | Path, policy: TextPolicy) -> PreTrainedModel:
    """A frozen teacher LM (KDRL) on the policy's device; it must share the policy's vocabulary.

    Raises:
        ValueError: the vocabularies differ (the teacher's log-probs would score other tokens).
    """
    teacher = AutoModelForCausalLM.from_pretrained(path).to(policy.model.device).eval().requires_grad_(False)
    ours, theirs = base_model(policy).config.vocab_size, teacher.config.vocab_size
    if ours != theirs:
        raise ValueError(
            f"The teacher in {path} has a vocabulary of {theirs} tokens, the policy {ours}: KDRL compares log-probs "
            "of the same tokens, so the teacher must use the policy's tokenizer."
        )
    return teacher


def trainable_parameters(policy: TextPolicy) -> list[torch.nn.Parameter]:
    """The parameters the optimizer updates (all of them, or the LoRA adapter's)."""
    return [p for p in policy.model.parameters() if p.requires_grad]


@torch.no_grad()
def reference_logprobs(policy: TextPolicy, *args, **kwargs) -> TokenLogProbs:
    """`completion_logprobs` of the reference: the frozen copy, or the LoRA model with its adapter disabled."""
    if policy.lora:
        with policy.model.disable_adapter():
            return completion_logprobs(policy.model, *args, **kwargs)
    if policy.reference is None:
        raise ValueError("No reference model was kept: load the policy with keep_reference=True (loss.kl_beta > 0).")
    return completion_logprobs(policy.reference, *args, **kwargs)


def base_model(policy: TextPolicy) -> PreTrainedModel:
    """The underlying transformers model (the peft wrapper's base when LoRA is on)."""
    return policy.model.get_base_model() if policy.lora else policy.model


__all__ = [
    "TextPolicy",
    "base_model",
    "bind_task_images",
    "is_vlm_policy",
    "load_policy",
    "load_teacher",
    "reference_logprobs",
    "soup_model",
    "trainable_parameters",
]


def policy_state(policy: TextPolicy) -> dict[str, torch.Tensor]:
    """A copy of the trained weights: the LoRA adapter's with LoRA, else the whole model's (for checkpoints)."""
    if policy.lora:
        from peft.utils import get_peft_model_state_dict

        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(policy.model).items()}
    return {k: v.detach().clone() for k, v in policy.model.state_dict().items()}


def load_policy_state(policy: TextPolicy, state: dict[str, torch.Tensor]) -> None:
    """Load what `policy_state` returned."""
    if policy.lora:
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(policy.model, state)
    else:
        policy.model.load_state_dict(state)
