"""Run by tests/text/test_train_distributed.py under ``torch.distributed.run`` (gloo on CPU): a text training run in
which the collectives follow NCCL's rule, that only tensors on the collective's (GPU) device can be reduced.

`flowrl.runtime.distributed` decides where a tensor is reduced (`collective_device`) and copies it there (`stage`);
here a CPU tensor's collective device is the stand-in ``cuda:0`` and `stage` makes a marked CPU copy, and every
`torch.distributed.all_reduce` refuses a CPU tensor that was not staged, as NCCL refuses a CPU tensor. Writes each
rank's count of staged reductions and a digest of its trained weights to ``<out>/rank<r>.json``.
Usage: python -m torch.distributed.run --nproc_per_node 2 nccl_path_child.py OUT key=value ...
"""

import hashlib
import json
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import flowrl.runtime.distributed as D
from flowrl.text.cli import load_config
from flowrl.text.train import train

staged: list[torch.Tensor] = []  # kept alive, so that no other tensor reuses their memory
real_all_reduce = dist.all_reduce


def stage(t: torch.Tensor, device: torch.device) -> torch.Tensor:
    assert device == torch.device("cuda", 0)
    staged.append(t.clone())
    return staged[-1]


def nccl_like_all_reduce(t: torch.Tensor, *args, **kwargs):
    if t.device.type == "cpu" and not any(t.data_ptr() == s.data_ptr() for s in staged):
        raise RuntimeError("NCCL stand-in: all_reduce of a CPU tensor that did not go through the GPU")
    return real_all_reduce(t, *args, **kwargs)


D.collective_device = lambda t: torch.device("cuda", 0) if t.device.type == "cpu" else t.device
D.stage = stage
dist.all_reduce = nccl_like_all_reduce

out = Path(sys.argv[1])
cfg = load_config(preset="grpo", overrides=sys.argv[2:])
captured = {}


def run() -> None:
    import flowrl.text.train as T

    real_update = T.update

    def update(cfg, policy, *args, **kwargs):
        metrics = real_update(cfg, policy, *args, **kwargs)
        captured["policy"] = policy
        return metrics

    T.update = update
    train(cfg)
    digest = hashlib.sha256()
    for name, p in sorted(captured["policy"].model.named_parameters()):
        digest.update(name.encode() + p.detach().cpu().numpy().tobytes())
    rank = dist.get_rank()
    (out / f"rank{rank}.json").write_text(json.dumps({"staged": len(staged), "weights": digest.hexdigest()}))


run()
