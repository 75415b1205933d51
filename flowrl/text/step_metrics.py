"""The TRL-named metrics of one text training step's samples (what `flowrl.text.collect` produced)."""

from __future__ import annotations

import math

from flowrl.grpo import group_stats
from flowrl.text.collect import StepData
from flowrl.text.config import TextTrainConfig
from flowrl.text.latr import distinct_per_group


def rollout_metrics(cfg: TextTrainConfig, data: StepData, reward_names: list[str]) -> dict[str, float]:
    """TRL-named metrics of the step's samples: reward, reward_std, rewards/<fn>/mean|std, frac_reward_zero_std,
    completions/{mean,min,max}_length, completions/mean_terminated_length, completions/clipped_ratio."""
    ro, groups = data.rollout, data.rollout.group_ids.cpu()
    stats = group_stats(data.total, groups)
    lengths = ro.completion_mask.sum(-1).float().cpu()
    terminated = ~ro.truncated.cpu()
    out = {
        "reward": float(data.total.mean()),
        "reward_std": float(stats.std.mean()),
        "frac_reward_zero_std": float((stats.std == 0).float().mean()),
        "completions/mean_length": float(lengths.mean()),
        "completions/min_length": float(lengths.min()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(ro.truncated.float().mean()),
        "completions/mean_terminated_length": float(lengths[terminated].mean()) if terminated.any() else math.nan,
        "skipped_groups": float(data.skipped_groups),
        "num_tokens": float(lengths.sum()),
        "trained_groups_ratio": float(data.train_rows.numel() / max(len(groups), 1)),
        "guided_rows": float(data.guided.sum()),
        "completions/distinct_per_group": distinct_per_group(
            (ro.completion_ids * ro.completion_mask).tolist(), groups.tolist()
        ),
    }
    for k, name in enumerate(reward_names):
        col = data.rewards[:, k]
        out[f"rewards/{name}/mean"] = float(col.nanmean())
        out[f"rewards/{name}/std"] = float(col[~col.isnan()].std()) if (~col.isnan()).sum() > 1 else math.nan
    return out
