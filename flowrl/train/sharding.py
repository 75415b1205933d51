"""Sharded full fine-tuning of the transformer with torch FSDP2 (`train.sharding: fsdp`).

`shard_transformer` splits every parameter of the transformer over the processes (``fully_shard`` on each diffusers
block, then on the whole module for the rest: embeddings, final norm and projection). Each parameter, its gradient
and its AdamW moments then live as a `DTensor` of which every rank holds 1 / world. A forward pass all-gathers one
block at a time and frees it again after use (``reshard_after_forward``); a backward pass reduce-scatters each
block's gradient. Gradients are SUMMED over ranks (not averaged, FSDP's default): the trainer divides the loss by
the global number of trained edges, so the sum is the 1-process gradient of the same global batch, as in the
unsharded path that all-reduces ``p.grad`` itself.

Checkpoints keep the unsharded layout (`flowrl.runtime.checkpoint`): `gather_state` and `gather_optimizer_state`
collect full tensors on rank 0 (on the CPU), `shard_state` and `shard_optimizer_state` cut them again on resume,
so a run resumes sharded or not from either kind of checkpoint. `full_parameters` lets rank 0 write the final
model with the adapter's own `save_trained`.

Every function here except `shard_state` and `shard_optimizer_state` is collective: all ranks must call it, in
the same order. Measured on CPU with gloo, 2 processes (torch 2.13): forward, backward,
`clip_grad_norm_`, AdamW and the full state dict all work; FSDP's ``PREMUL_SUM`` reduction does not exist in
gloo, hence ``set_force_sum_reduction_for_comms``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch
import torch.distributed as dist
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import FSDPModule, fully_shard
from torch.distributed.tensor import DTensor, distribute_tensor

# The diffusers transformer blocks wrapped one FSDP unit each: SD3 / SD3.5 (and the ShapeWorld model, an SD3
# transformer) and FLUX.1 (double- and single-stream blocks).
BLOCK_CLASSES = ("JointTransformerBlock", "FluxTransformerBlock", "FluxSingleTransformerBlock")


def shard_transformer(transformer: torch.nn.Module, *, device_type: str) -> int:
    """Shard `transformer` in place over all processes: one FSDP unit per block of `BLOCK_CLASSES`, one for the rest.

    Call it before building the optimizer and the EMA (they must see the sharded parameters).

    Args:
        transformer (`torch.nn.Module`): the trained module, on its device, fully trainable (no LoRA).
        device_type (`str`): ``"cpu"`` (gloo) or ``"cuda"`` (nccl), the type of the process group's devices.

    Returns:
        `int`: the number of blocks wrapped.
    """
    if not dist.is_initialized():
        raise ValueError(
            "train.sharding=fsdp needs a torch.distributed process group: launch with `torchrun --nproc_per_node N "
            "-m flowrl.train.image ...` or `accelerate launch` (any process count, 1 included)."
        )
    blocks = [m for m in transformer.modules() if type(m).__name__ in BLOCK_CLASSES]
    if not blocks:
        raise ValueError(
            f"{type(transformer).__name__} has no block of {list(BLOCK_CLASSES)} to shard: add its block class to "
            "flowrl.train.sharding.BLOCK_CLASSES, or train with train.sharding=none."
        )
    mesh = init_device_mesh(device_type, (dist.get_world_size(),))
    for block in blocks:
        fully_shard(block, mesh=mesh, reshard_after_forward=True)
    fully_shard(transformer, mesh=mesh, reshard_after_forward=True)
    for module in transformer.modules():
        if isinstance(module, FSDPModule):
            module.set_gradient_divide_factor(1.0)  # sum over ranks: the loss is already divided by the global edges
            module.set_force_sum_reduction_for_comms(True)  # plain SUM (gloo has no PREMUL_SUM)
    return len(blocks)


def clip_grad_norm_(params: list[torch.nn.Parameter], max_norm: float) -> torch.Tensor:
    """`torch.nn.utils.clip_grad_norm_` over sharded gradients; returns the global norm as a plain tensor."""
    norm = torch.nn.utils.clip_grad_norm_(params, max_norm)  # a replicated DTensor: the norm over every shard
    return norm.full_tensor()


def max_over_ranks(value: int) -> int:
    """The largest `value` over all processes (an object gather: works with gloo and with an NCCL-only group)."""
    values: list[int | None] = [None] * dist.get_world_size()
    dist.all_gather_object(values, value)
    return max(values)


def _full_on_rank0(t: torch.Tensor) -> torch.Tensor | None:
    """A DTensor's full value on rank 0 (CPU), None elsewhere; a plain tensor (a buffer, a step count) as a copy."""
    full = t.full_tensor() if isinstance(t, DTensor) else t  # DTensor: all-gather, every rank takes part
    return full.detach().cpu().clone() if dist.get_rank() == 0 else None


def gather_state(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Full tensors of a state dict (model or EMA) on rank 0, one tensor at a time; an empty dict on other ranks."""
    out = {k: _full_on_rank0(v) for k, v in state.items()}
    return out if dist.get_rank() == 0 else {}


def gather_optimizer_state(state: dict) -> dict:
    """`optimizer.state_dict()` with full tensors on rank 0 (the unsharded layout); an empty dict on other ranks."""
    per_param = {i: {k: _full_on_rank0(v) for k, v in s.items()} for i, s in state["state"].items()}
    return {"state": per_param, "param_groups": state["param_groups"]} if dist.get_rank() == 0 else {}


def _shard_like(full: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """`full` cut like the DTensor `like` (every rank holds `full`: no communication); plain `like`: `full`."""
    if not isinstance(like, DTensor):
        return full
    if full.shape != like.shape:
        raise ValueError(
            f"A checkpoint tensor of shape {tuple(full.shape)} cannot replace one of {tuple(like.shape)}."
        )
    local = full.to(device=like.device, dtype=like.dtype)
    return distribute_tensor(local, like.device_mesh, like.placements, src_data_rank=None)


def shard_state(full: dict[str, torch.Tensor], like: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """`full` (a model or EMA state from a checkpoint) cut like `like` (the live, sharded state dict)."""
    if full.keys() != like.keys():
        missing, extra = sorted(like.keys() - full.keys()), sorted(full.keys() - like.keys())
        raise ValueError(
            f"The checkpoint does not fit the model: missing {missing[:5]}, unexpected {extra[:5]}. Resume with the "
            "model.path and model.lora_rank the run was started with."
        )
    return {k: _shard_like(v, like[k]) for k, v in full.items()}


def shard_optimizer_state(full: dict, params: list[torch.nn.Parameter]) -> dict:
    """A full `optimizer.state_dict()` cut to the sharded `params` (in optimizer order): each moment of a
    parameter's shape becomes a DTensor like the parameter; scalars (AdamW's step count) stay as they are."""
    state = {}
    for i, s in full["state"].items():
        p = params[int(i)]
        state[i] = {k: _shard_like(v, p) if v.ndim and v.shape == p.shape else v for k, v in s.items()}
    return {"state": state, "param_groups": full["param_groups"]}


@contextlib.contextmanager
def full_parameters(module: torch.nn.Module) -> Iterator[None]:
    """Inside the context, on rank 0, `module` holds full plain parameters on the CPU (so `state_dict`,
    `save_pretrained` and the adapter's `save_trained` see the whole model); the sharded ones come back afterwards.

    Collective: every rank enters (the gather needs all of them); only rank 0 may use the module inside. Costs the
    full model in rank 0's CPU memory. Not for forward passes: FSDP's hooks still expect the sharded parameters.
    """
    names = [name for name, _ in module.named_parameters()]
    full = {name: _full_on_rank0(p) for name, p in module.named_parameters()}
    if dist.get_rank() != 0:
        yield
        return
    saved = {}
    for name in names:
        owner_name, _, attr = name.rpartition(".")
        owner = module.get_submodule(owner_name)
        saved[name] = (owner, attr, owner._parameters[attr])
        owner.register_parameter(attr, torch.nn.Parameter(full[name], requires_grad=False))
    try:
        yield
    finally:
        for owner, attr, param in saved.values():
            owner.register_parameter(attr, param)
