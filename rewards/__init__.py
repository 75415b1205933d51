"""Reward functions for flowrl, usable on their own: ``(images, prompts, metadata) -> (B,) float32``.

`REWARDS` maps names to constructors (a plain dict literal); `load_reward("package.module:factory")` loads a user
reward. Heavy models load once, in the constructor.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from rewards.base import RewardFn, check_reward_output
from rewards.shapes import ShapesReward

REWARDS: dict[str, Callable[..., RewardFn]] = {
    "shapes": ShapesReward,
    "shapes_strict": lambda **kw: ShapesReward(strict=True, **kw),
}


def load_reward(name: str, **kwargs: Any) -> RewardFn:
    """Build a reward by name (`REWARDS`) or from ``"package.module:factory"``.

    Raises:
        ValueError: unknown name, listing the valid ones.
    """
    if name in REWARDS:
        return REWARDS[name](**kwargs)
    if ":" in name:
        module, _, attr = name.partition(":")
        reward = getattr(importlib.import_module(module), attr)(**kwargs)
        if not callable(reward):
            raise TypeError(f"{name!r} built a {type(reward).__name__}, which is not callable.")
        return _Named(reward, name)  # user factories may return plain functions: the dotted path names them
    raise ValueError(f"Unknown reward {name!r}. Valid: {sorted(REWARDS)}, or 'package.module:factory'.")


class _Named:
    """A user reward under its dotted-path name."""

    def __init__(self, fn: Callable, name: str) -> None:
        self.fn, self.name = fn, name

    def __call__(self, images, prompts, metadata=None):
        return self.fn(images, prompts, metadata)


__all__ = ["REWARDS", "RewardFn", "ShapesReward", "check_reward_output", "load_reward"]
