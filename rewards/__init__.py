"""Reward functions for flowrl, usable on their own: ``(images, prompts, metadata) -> (B,) float32``.

`REWARDS` maps names to constructors (a plain dict literal); `load_reward("package.module:factory")` loads a user
reward. Heavy models load once, in the constructor, and import their dependency (transformers, rapidocr) there.
Model-based rewards read the official checkpoint files from ``$FLOWRL_REWARDS_HOME`` (default
``~/.cache/flowrl/rewards``) or ``path=``; docs/rewards.md lists each reward's source, preprocessing and scale.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

from flowrl.grpo.registry import lookup
from rewards.base import RewardFn, check_reward_output
from rewards.control import UniformNoiseReward
from rewards.jpeg import JpegReward
from rewards.shapes import ShapesReward
from rewards.text import ExactMatchReward, FormatReward, LengthReward


def _lazy(module: str, cls: str, **fixed: Any) -> Callable[..., RewardFn]:
    """The constructor of `rewards.<module>.<cls>` (``fixed`` keyword arguments first), importing the module, and the
    heavy library it needs, only when the reward is built."""

    def build(**kw: Any) -> RewardFn:
        return getattr(importlib.import_module(f"rewards.{module}"), cls)(**fixed, **kw)

    return build


REWARDS: dict[str, Callable[..., RewardFn]] = {
    # programmatic
    "shapes": ShapesReward,
    "shapes_strict": lambda **kw: ShapesReward(strict=True, **kw),
    "jpeg_compressibility": lambda **kw: JpegReward(compressible=True, **kw),
    "jpeg_incompressibility": lambda **kw: JpegReward(compressible=False, **kw),
    "uniform_noise": UniformNoiseReward,  # the control: independent of the image's content
    "ocr": _lazy("ocr", "OcrReward"),
    # GenEval's rules on any detector (default: ShapeWorld's); docs/geneval.md. "geneval" is Flow-GRPO's training
    # reward (partial credit), "geneval_correct" GenEval's pass (the paper's accuracy)
    "geneval": _lazy("geneval_reward", "GenEvalReward", output="score"),
    "geneval_strict": _lazy("geneval_reward", "GenEvalReward", output="strict"),
    "geneval_correct": _lazy("geneval_reward", "GenEvalReward", output="correct"),
    # preference models (official checkpoints from a local path)
    "pickscore": _lazy("pickscore", "PickScoreReward"),
    "clip_score": _lazy("clip_score", "ClipScoreReward"),
    "hpsv2": _lazy("hpsv2", "HpsV2Reward", version="v2.1"),
    "hpsv2_v2_0": _lazy("hpsv2", "HpsV2Reward", version="v2.0"),
    "image_reward": _lazy("image_reward", "ImageRewardReward"),
    "aesthetic": _lazy("aesthetic", "AestheticReward"),
    # text branch (completions are strings)
    "exact_match": ExactMatchReward,
    "format": FormatReward,
    "length": LengthReward,
}


MODEL_REWARDS = ("pickscore", "clip_score", "hpsv2", "hpsv2_v2_0", "image_reward", "aesthetic")
"""Rewards that run a network: their constructors take ``device``, ``dtype`` and the checkpoint ``path``."""


def load_reward(name: str, **kwargs: Any) -> RewardFn:
    """Build a reward by name (`REWARDS`) or from ``"package.module:factory"``; `kwargs` go to the constructor.

    Raises:
        ValueError: unknown name, listing the valid ones.
    """
    reward = lookup(name, REWARDS, what="reward")(**kwargs)
    if name in REWARDS:
        return reward
    if not callable(reward):
        raise TypeError(f"{name!r} built a {type(reward).__name__}, which is not callable.")
    return _Named(reward, name)  # user factories may return plain functions: the dotted path names them


class _Named:
    """A user reward under its dotted-path name."""

    def __init__(self, fn: Callable, name: str) -> None:
        self.fn, self.name = fn, name

    def __call__(self, images, prompts, metadata=None):
        return self.fn(images, prompts, metadata)


__all__ = ["MODEL_REWARDS", "REWARDS", "RewardFn", "ShapesReward", "check_reward_output", "load_reward"]
