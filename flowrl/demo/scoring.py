"""Scores of demo images: the ShapeWorld grader (partial credit and strict PASS/FAIL; ShapeWorld models only) and
any extra rewards."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from flowrl.shapes.grader import detect_objects, grade
from rewards.base import RewardFn, check_reward_output


def score_lines(image: torch.Tensor, prompt: str, rewards: Sequence[RewardFn] = (), *, grader: bool = True) -> str:
    """Markdown lines scoring one image against its prompt.

    Args:
        image (`torch.Tensor`): (3, H, W) float in [0, 1].
        prompt (`str`): the prompt (a valid ShapeWorld prompt when `grader`).
        rewards (`Sequence[RewardFn]`): extra rewards, each shown as ``name: value``.
        grader (`bool`, defaults to True): grade with the ShapeWorld grader (ShapeWorld models).

    Returns:
        `str`: the grader score, PASS/FAIL and the detected objects (`grader`), then one line per extra reward.
    """
    batch = image[None].float()  # (1, 3, H, W)
    lines = []
    if grader:
        result = grade(batch, [prompt])
        verdict = "PASS" if bool(result.strict[0]) else "FAIL"
        found = ", ".join(f"{d.color} {d.shape}" for d in detect_objects(batch)[0]) or "nothing"
        lines += [
            f"**grader score {float(result.score[0]):.3f} · {verdict}** ({result.family[0]} prompt)",
            f"detected: {found}",
        ]
    for reward in rewards:
        value = check_reward_output(reward.name, reward(batch, [prompt], None), 1)
        lines.append(f"{reward.name}: {float(value[0]):.4f}")
    return "\n\n".join(lines) if lines else "No scores: pass --reward NAME to score the images."
