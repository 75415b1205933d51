"""Dynamic-TreeRPO LayerTuning-RL (our reading): weights, bounds, the flow-matching term, and its effect in training.

Run: pytest tests/train/test_layer_tuning.py -q"""

import math

import torch
from safetensors.torch import load_file

from flowrl.runtime.metrics import read_metrics
from flowrl.shapes.render import render_prompts
from flowrl.train.image import train
from flowrl.train.image_cli import load_config
from flowrl.train.layer_tuning import flow_matching_loss, prompt_weight, reward_adaptive_clip_bounds


def test_prompt_weight_and_clip_bounds_hand_derived():
    # base 0.5, mean reward 0.4 -> 0.5 * 0.6 = 0.3; rewards outside [0, 1] are clamped first
    assert math.isclose(prompt_weight(torch.tensor([0.2, 0.6]), base=0.5), 0.3, rel_tol=1e-6)
    assert prompt_weight(torch.tensor([1.5, 1.0]), base=0.5) == 0.0
    # eps = 1e-3 * (1 + 0.5 * tanh|A|): A = 0 -> 1e-3; A = 2 -> 1e-3 * (1 + 0.5 * 0.96403)
    lo, hi = reward_adaptive_clip_bounds(torch.tensor([0.0, -2.0]), clip_range=1e-3, scale=0.5)
    torch.testing.assert_close(lo, torch.tensor([1e-3, 1e-3 * (1 + 0.5 * math.tanh(2.0))]))
    assert torch.equal(lo, hi)


def test_flow_matching_loss_of_a_zero_velocity():
    # With v = 0 the loss is mean((eps - x0)^2), x0 the renders in [-1, 1]; replay the documented draws:
    # render seed, then sigma (K,), then noise, all from the same generator.
    K, prompt = 3, "two red circles"
    gen = torch.Generator().manual_seed(7)
    seed = int(torch.randint(0, 2**31 - 1, (1,), generator=gen))
    x0 = render_prompts([prompt] * K, seed=seed, size=32) * 2 - 1
    torch.rand(K, generator=gen)
    noise = torch.randn(x0.shape, generator=gen)
    cond = (torch.zeros(1, 4, 8), torch.zeros(1, 8))
    loss = flow_matching_loss(
        lambda x, s, c: torch.zeros_like(x),
        lambda images: images * 2 - 1,  # an identity "encoder" to [-1, 1]
        prompt,
        cond,
        num_targets=K,
        image_size=32,
        generator=torch.Generator().manual_seed(7),
    )
    torch.testing.assert_close(loss, ((noise - x0) ** 2).mean())


def test_layer_tuning_trains_when_rl_has_no_signal(tmp_path, tiny_model):
    # A constant reward gives no advantage anywhere, so plain tree RL cannot move the weights.
    # With LayerTuning-RL the flow-matching term on rendered targets still trains them.
    common = [
        f"model.path={tiny_model}",
        f"run.root={tmp_path}",
        "train.iterations=2",
        "train.prompts_per_iteration=2",
        "reward.names=[toy_rewards:constant]",
        "eval.every=100",
        "eval.prompts_per_family=1",
        "eval.seeds=[0]",
        "run.tensorboard=false",
    ]
    base = load_file(tiny_model / "transformer" / "diffusion_pytorch_model.safetensors")
    for name, sft, moved in (("sft_off", 0.0, False), ("sft_on", 0.5, True)):
        cfg = load_config(
            preset="shapes_dynamic_treerpo", overrides=[*common, f"run.name={name}", f"method.sft_weight={sft}"]
        )
        run = train(cfg).run_dir
        after = load_file(run / "final" / "transformer" / "diffusion_pytorch_model.safetensors")
        assert any(not torch.equal(after[k], base[k]) for k in base) == moved
        if moved:
            last = read_metrics(run / "metrics.jsonl")[-1]
            assert last["sft/weight_mean"] == 0.5 and last["sft/loss"] > 0
