"""train.rollout_batch: prompts rolled out together sample what they sample alone, so the update is the same.

Run: OMP_NUM_THREADS=1 pytest tests/models/test_rollout_batch.py -q
"""

from __future__ import annotations

import torch
from safetensors.torch import load_file
from tiny_pipelines import tiny_run_overrides

from flowrl.runtime.metrics import read_metrics
from flowrl.train.image import train
from flowrl.train.image_cli import load_config


def _run(folder, tmp_path, batch: int):
    overrides = tiny_run_overrides(folder, tmp_path) + [
        "model.gradient_checkpointing=false",
        "method.kwargs.group_size=2",
        "train.iterations=1",
        "train.prompts_per_iteration=2",
        "train.steps_per_epoch=1",
        f"train.rollout_batch={batch}",
        "eval.every=5",
        "eval.at_start=false",
        "optim.lr=1e-2",
        f"run.name=b{batch}",
    ]
    result = train(load_config(preset="sd35m_flow_grpo_pickscore", overrides=overrides))
    metrics = read_metrics(result.run_dir / "metrics.jsonl")[-1]
    return metrics, load_file(result.run_dir / "lora" / "pytorch_lora_weights.safetensors")


def test_batched_rollout_gives_the_unbatched_update(sd3_folder, tmp_path):
    one, lora_one = _run(sd3_folder, tmp_path, batch=1)
    two, lora_two = _run(sd3_folder, tmp_path, batch=2)
    assert one["nfe_rollout"] == two["nfe_rollout"] and one["edges"] == two["edges"]
    assert abs(one["reward_mean"] - two["reward_mean"]) < 1e-5  # the same samples, up to batched-forward numerics
    for k, v in lora_one.items():
        torch.testing.assert_close(lora_two[k], v, rtol=1e-4, atol=1e-6)
