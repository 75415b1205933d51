"""Collectives both trainers use, and the gradient step around them (one process or many, any backend).

NCCL (accelerate's GPU backend) reduces CUDA tensors only, while the trainers keep their counts (trained tokens,
edges, prompts) as CPU scalars: `all_reduce_sum` stages such a tensor through the collective's device and copies the
sum back, so the same call works under gloo (CPU) and NCCL (GPU).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import torch
import torch.distributed as dist


def collective_device(t: torch.Tensor) -> torch.device:
    """The device the process group reduces `t` on: the current GPU under NCCL, else `t`'s own device."""
    if t.device.type == "cpu" and dist.get_backend() == "nccl":
        return torch.device("cuda", torch.cuda.current_device())
    return t.device


def stage(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    """A copy of `t` on `device` for a collective (one host-device copy under NCCL)."""
    return t.to(device, copy=True)


def all_reduce_sum(t: torch.Tensor, world: int) -> torch.Tensor:
    """Sum `t` over processes, in place; returns `t`. CPU tensors travel through the GPU under NCCL."""
    if world > 1:
        device = collective_device(t)
        if device == t.device:
            dist.all_reduce(t, op=dist.ReduceOp.SUM)
        else:
            staged = stage(t, device)
            dist.all_reduce(staged, op=dist.ReduceOp.SUM)
            t.copy_(staged)
    return t


def gather_objects(obj, world: int) -> list:
    """Every process's `obj` (small, picklable: metric sums, rewards), in rank order."""
    if world == 1:
        return [obj]
    out = [None] * world
    dist.all_gather_object(out, obj)
    return out


def merge_sums(parts: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Key-wise sum of several processes' metric sums (`gather_objects` of a dict of scalars)."""
    merged: dict[str, torch.Tensor] = {}
    for part in parts:
        for key, v in part.items():
            merged[key] = merged.get(key, torch.zeros(())) + v
    return merged


def sync_gradients(params: Iterable[torch.nn.Parameter], world: int, *, reduce: bool = True) -> None:
    """Give every parameter a gradient (zeros where the backward pass left none, so all ranks reduce the same
    tensors) and, with `reduce`, sum the gradients over processes (a sharded model summed them in its backward)."""
    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        if reduce:
            all_reduce_sum(p.grad, world)


def clip_gradients(
    params: list[torch.nn.Parameter],
    max_norm: float,
    *,
    clip: Callable[[list[torch.nn.Parameter], float], torch.Tensor] = torch.nn.utils.clip_grad_norm_,
) -> torch.Tensor | None:
    """Clip the global gradient norm to `max_norm` (0 = off); returns the norm before clipping (a 0-dim tensor,
    no host sync) or None when off. `clip` is the sharded model's own clip where its gradients are shards."""
    if max_norm <= 0:
        return None
    return clip(params, max_norm).detach()
