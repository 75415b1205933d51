"""Reward functions for flowrl, usable on their own: ``(images, prompts, metadata) -> (B,) float32``.

`REWARDS` maps names to constructors (a plain dict literal); `load_reward("package.module:factory")` loads a user
reward. Heavy models load once, in the constructor, and import their dependency (transformers, rapidocr) there.
Model-based rewards read the official checkpoint files from ``$FLOWRL_REWARDS_HOME`` (default
``~/.cache/flowrl/rewards``) or ``path=``; docs/rewards.md lists each reward's source, preprocessing and scale.
"""

from __future__ import annotations

import pkgutil
from collections.abc import Callable
from typing import Any

from rewards.base import RewardFn, check_reward_output
from rewards.control import UniformNoiseReward
from rewards.jpeg import JpegReward
from rewards.shapes import ShapesReward
from rewards.text import ExactMatchReward, FormatReward, LengthReward


def _ocr(**kw: Any) -> RewardFn:
    from rewards.ocr import OcrReward

    return OcrReward(**kw)


def _pickscore(**kw: Any) -> RewardFn:
    from rewards.pickscore import PickScoreReward

    return PickScoreReward(**kw)


def _clip_score(**kw: Any) -> RewardFn:
    from rewards.clip_score import ClipScoreReward

    return ClipScoreReward(**kw)


def _hpsv2(version: str) -> Callable[..., RewardFn]:
    def build(**kw: Any) -> RewardFn:
        from rewards.hpsv2 import HpsV2Reward

        return HpsV2Reward(version=version, **kw)

    return build


def _image_reward(**kw: Any) -> RewardFn:
    from rewards.image_reward import ImageRewardReward

    return ImageRewardReward(**kw)


def _geneval(output: str) -> Callable[..., RewardFn]:
    def build(**kw: Any) -> RewardFn:
        from rewards.geneval_reward import GenEvalReward

        return GenEvalReward(output=output, **kw)

    return build


def _aesthetic(**kw: Any) -> RewardFn:
    from rewards.aesthetic import AestheticReward

    return AestheticReward(**kw)


REWARDS: dict[str, Callable[..., RewardFn]] = {
    # programmatic
    "shapes": ShapesReward,
    "shapes_strict": lambda **kw: ShapesReward(strict=True, **kw),
    "jpeg_compressibility": lambda **kw: JpegReward(compressible=True, **kw),
    "jpeg_incompressibility": lambda **kw: JpegReward(compressible=False, **kw),
    "uniform_noise": UniformNoiseReward,  # the control: independent of the image's content
    "ocr": _ocr,
    # GenEval's rules on any detector (default: ShapeWorld's); docs/geneval.md
    "geneval": _geneval("score"),  # Flow-GRPO's training reward (partial credit)
    "geneval_strict": _geneval("strict"),
    "geneval_correct": _geneval("correct"),  # GenEval's pass (the paper's accuracy)
    # preference models (official checkpoints from a local path)
    "pickscore": _pickscore,
    "clip_score": _clip_score,
    "hpsv2": _hpsv2("v2.1"),
    "hpsv2_v2_0": _hpsv2("v2.0"),
    "image_reward": _image_reward,
    "aesthetic": _aesthetic,
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
    if name in REWARDS:
        return REWARDS[name](**kwargs)
    if ":" in name:
        reward = pkgutil.resolve_name(name)(**kwargs)
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


__all__ = ["MODEL_REWARDS", "REWARDS", "RewardFn", "ShapesReward", "check_reward_output", "load_reward"]
