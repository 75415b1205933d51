"""The SD3.5-M and FLUX.1-dev presets (published recipes) load, validate, build their method, and two of each train
for two iterations through `flowrl.train.image.train` on the tiny random pipelines (sizes overridden, recipe kept).

Run: OMP_NUM_THREADS=1 pytest tests/models/test_presets.py -q
"""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from tiny_pipelines import tiny_run_overrides

from flowrl.runtime.metrics import read_metrics
from flowrl.train.image import train
from flowrl.train.image_cli import PRESETS_DIR, load_config

PRESETS = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml") if p.stem.startswith(("sd35m_", "flux_")))


def test_every_published_recipe_has_a_preset():
    expected = {
        "sd35m_flow_grpo_pickscore",
        "sd35m_flow_grpo_ocr",
        "sd35m_flow_grpo_geneval",
        "sd35m_tempflow_grpo",
        "sd35m_grpo_guard",
        "flux_mixgrpo",
        "flux_mixgrpo_flash",
        "flux_g2rpo",
        "flux_branch_grpo",
        "flux_dance_grpo",
    }
    assert expected <= set(PRESETS)


@pytest.mark.parametrize("name", PRESETS)
def test_preset_validates_and_builds_its_method(name):
    from flowrl.train.estimators import make_method

    cfg = load_config(preset=name, overrides=[])
    method = make_method(cfg, 0)
    assert cfg.train.prompts_per_iteration % cfg.train.steps_per_epoch == 0
    assert cfg.model.mixed_precision == "bf16" and cfg.eval.resolution == cfg.model.resolution
    assert cfg.train.prompts_file and cfg.eval.prompts_file
    if name.startswith("sd35m_"):
        # Flow-GRPO SD3.5-M: LoRA r32 / alpha 64, CFG 4.5, 10 steps, shift 3, 512 px (docs/flow_methods.md, flow_grpo)
        assert cfg.model.kind == "sd3" and cfg.model.resolution == 512
        assert (cfg.model.lora_rank, cfg.model.lora_alpha, cfg.guidance_scale) == (32, 64.0, 4.5)
        assert method.plan.num_inference_steps == 10
    else:
        # FLUX.1-dev recipes: CFG off, distilled guidance 3.5 in the embedding, full fine-tuning, FastVideo shift 3
        assert cfg.model.kind == "flux" and cfg.model.embedded_guidance == 3.5
        assert cfg.guidance_scale == 1.0 and cfg.model.lora_rank == 0 and cfg.method.kwargs["shift"] == 3.0
    assert float(method.plan.sigmas[0]) == 1.0 and float(method.plan.sigmas[-1]) == 0.0


TINY = {  # the recipe's structure at test size: 3 steps, groups of 2, 32 px, one prompt per iteration
    "sd35m_flow_grpo_pickscore": ["method.kwargs.group_size=2", "train.steps_per_epoch=1"],
    "sd35m_flow_grpo_geneval": ["method.kwargs.group_size=2", "train.steps_per_epoch=1"],
    "sd35m_flow_grpo_ocr": ["method.kwargs.group_size=2", "train.steps_per_epoch=1"],
    "sd35m_grpo_guard": ["method.kwargs.group_size=2", "train.steps_per_epoch=1"],
    "sd35m_tempflow_grpo": ["method.kwargs.num_seeds=1", "method.kwargs.num_probes=2"],
    "flux_mixgrpo": ["method.kwargs.group_size=2", "method.kwargs.window_size=2"],
    "flux_mixgrpo_flash": ["method.kwargs.group_size=2", "method.kwargs.window_size=1"],
    "flux_g2rpo": ["method.kwargs.group_size=2", "method.kwargs.probe_steps=[0, 1]"],
    "flux_branch_grpo": ["method.kwargs.split_points=[0]"],
    "flux_dance_grpo": ["method.kwargs.group_size=2", "train.steps_per_epoch=1"],
}


def test_every_image_preset_has_a_tiny_run():
    assert set(TINY) == set(PRESETS)


@pytest.mark.parametrize("name", sorted(TINY))
def test_preset_trains_two_iterations_on_a_tiny_pipeline(name, sd3_folder, flux_folder, tmp_path):
    folder = sd3_folder if name.startswith("sd35m_") else flux_folder
    overrides = tiny_run_overrides(folder, tmp_path) + [
        "model.gradient_checkpointing=false",
        "train.iterations=2",
        "train.prompts_per_iteration=1",
        "train.micro_batch_edges=4",
        "eval.every=2",
        "eval.grid_prompts=2",
        "reward.weights=[1.0]",
        "optim.lr=1e-3",
        "run.name=r",
        *TINY[name],
    ]
    cfg = load_config(preset=name, overrides=overrides)
    result = train(cfg)
    last = read_metrics(result.run_dir / "metrics.jsonl")[-1]
    assert last["step"] == 2 and last["edges"] > 0 and last["nfe_train"] > 0
    if cfg.model.lora_rank > 0:
        lora = load_file(result.run_dir / "lora" / "pytorch_lora_weights.safetensors")
        assert any(k.endswith("lora_B.weight") and v.abs().sum() > 0 for k, v in lora.items()), "LoRA did not move"
    else:
        sub = "final/transformer/diffusion_pytorch_model.safetensors"
        trained, base = load_file(result.run_dir / sub), load_file(folder / "transformer" / sub.split("/", 2)[2])
        assert any(not torch.equal(trained[k], base[k]) for k in base), "no parameter moved"
