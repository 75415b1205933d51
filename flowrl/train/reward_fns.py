"""The reward functions of an image run: loaded from the config, called on a batch of images."""

from __future__ import annotations

from typing import Any

import torch

import rewards as reward_lib
from flowrl.config import ConfigError
from flowrl.train.image_config import ImageTrainConfig

REWARD_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def load_rewards(cfg: ImageTrainConfig, device: torch.device) -> list:
    """The configured rewards: model-based ones (`rewards.MODEL_REWARDS`) on `reward.device` (default: the trainer's
    `device`) in `reward.dtype`; `reward.paths` gives a reward its checkpoint (``path=``), `reward.args` any other
    constructor keyword argument."""
    r = cfg.reward
    fns = []
    for name in r.names:
        kwargs: dict[str, Any] = {}
        if name in reward_lib.MODEL_REWARDS:
            kwargs.update(device=r.device or str(device), dtype=REWARD_DTYPES[r.dtype])
        if name in r.paths:
            if name not in reward_lib.MODEL_REWARDS and ":" not in name:
                raise ConfigError(
                    f"reward.paths sets a checkpoint for {name!r}, which loads none (checkpoints: "
                    f"{list(reward_lib.MODEL_REWARDS)} and 'package.module:factory' rewards). Remove the entry."
                )
            kwargs["path"] = r.paths[name]
        kwargs.update(r.args.get(name, {}))
        fns.append(reward_lib.load_reward(name, **kwargs))
    return fns


def compute_rewards(fns: list, images: torch.Tensor, prompts: list[str]) -> torch.Tensor:
    """`(L, K)` rewards of the leaves; wrong shapes raise, NaN / inf are left for the caller to count."""
    cols = [reward_lib.check_reward_output(fn.name, fn(images, prompts, None), len(prompts)) for fn in fns]
    return torch.stack(cols, dim=1)
