"""The image trainer end to end on a tiny random ShapeWorld model: every preset (with and without GRPO-Guard), resume,
bad input, NFE accounting, LoRA export. Run: pytest tests/train/test_image.py -q"""

import math
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flowrl.config import ConfigError
from flowrl.runtime.metrics import read_metrics
from flowrl.train.image import train
from flowrl.train.image_cli import PRESETS_DIR, load_config, main

FULL_FT = ["model.lora_rank=0", "method.kl_beta=0"]  # the default preset trains LoRA; these tests need all weights
PRESETS = sorted(p.stem for p in PRESETS_DIR.glob("shapes_*.yaml"))  # the CPU-sized presets
FORWARD_PRESETS = {"shapes_diffusion_nft", "shapes_awm"}  # trained on the forward process (no step log-probabilities)
SMALL = [
    "train.prompts_per_iteration=2",
    "eval.prompts_per_family=1",
    "eval.seeds=[0]",
    "eval.every=2",
    "eval.grid_prompts=2",
    "run.tensorboard=false",
    "reward.names=[toy_rewards:brightness]",
]


def _cfg(tiny_model, tmp_path, *extra, preset="shapes_flow_grpo"):
    return load_config(
        preset=preset, overrides=[f"model.path={tiny_model}", f"run.root={tmp_path}", "run.name=r", *SMALL, *extra]
    )


def test_preset_list_is_complete():
    methods = {
        "flow_grpo",
        "flow_grpo_fast",
        "dance_grpo",
        "mixgrpo",
        "mixgrpo_flash",
        "tempflow_grpo",
        "g2rpo",
        "branch_grpo",
        "tree_grpo",
        "dynamic_treerpo",
    }
    assert {f"shapes_{m}" for m in methods} <= set(PRESETS)


@pytest.mark.parametrize("guard", [False, True])
@pytest.mark.parametrize("preset", PRESETS)
def test_every_preset_runs_two_iterations(preset, guard, tiny_model, tmp_path):
    schedule = ["optim.schedule=linear"] if preset == "shapes_diffusion_nft" else []  # lr, then 0 at the last
    cfg = _cfg(
        tiny_model, tmp_path, "train.iterations=2", f"method.guard={str(guard).lower()}", *schedule, preset=preset
    )
    forward = preset in FORWARD_PRESETS
    if forward and guard:  # GRPO-Guard corrects step importance ratios; forward-process methods have none
        with pytest.raises(ConfigError, match="GRPO-Guard corrects the importance ratios"):
            train(cfg)
        return
    result = train(cfg)
    records = read_metrics(result.run_dir / "metrics.jsonl")
    last = records[-1]
    assert last["step"] == 2 and last["nfe_rollout"] > 0 and last["edges"] > 0 and last["nfe_train"] > 0
    assert last["eval/strict/overall"] is not None and (result.run_dir / "curves.png").is_file()
    lrs = [r["lr"] for r in records if "lr" in r]
    assert lrs == ([cfg.optim.lr, 0.0] if schedule else [cfg.optim.lr] * 2)
    # every evaluation after the base logs its paired change: final minus base accuracy, with a standard error
    first = records[0]
    assert last["eval/change/overall"] == pytest.approx(last["eval/strict/overall"] - first["eval/strict/overall"])
    assert last["eval/change_se/overall"] >= 0.0 and "eval/change/overall" not in first
    assert (result.run_dir / "samples" / "eval_00002.png").is_file()
    if cfg.model.lora_rank:  # LoRA presets: the adapter's B matrices start at zero, so a trained one is nonzero
        lora = load_file(result.run_dir / "lora" / "pytorch_lora_weights.safetensors")
        assert any(k.endswith("lora_B.weight") and bool(v.abs().sum() > 0) for k, v in lora.items()), "LoRA unchanged"
    else:
        trained = load_file(result.run_dir / "final" / "transformer" / "diffusion_pytorch_model.safetensors")
        base = load_file(tiny_model / "transformer" / "diffusion_pytorch_model.safetensors")
        assert any(not torch.equal(trained[k], base[k]) for k in base), "no parameter moved"
    if forward:  # trained on noised samples: the optimality probability is logged instead of step ratios
        assert 0.0 <= last["r_mean"] <= 1.0 and math.isfinite(last["loss"])
    else:
        assert any(k.startswith("ratio_mean/step_") for k in last) and "clip_ratio/region_mean" in last


# DiffusionNFT with a fast-lagging old policy: its lagged weights must come back from the checkpoint too
RESUME_CASES = {"shapes_flow_grpo": [], "shapes_diffusion_nft": ["method.kwargs.decay_rate=0.2"]}


@pytest.mark.parametrize("preset", sorted(RESUME_CASES))
def test_resume_is_bit_exact(preset, tiny_model, tmp_path):
    extra = ["run.checkpoint_every=2", *FULL_FT, *RESUME_CASES[preset]]
    straight = train(_cfg(tiny_model, tmp_path / "a", "train.iterations=4", *extra, preset=preset))
    half = train(_cfg(tiny_model, tmp_path / "b", "train.iterations=2", *extra, preset=preset))
    assert main(["--resume", str(half.run_dir), "train.iterations=4"]) == 0
    a = load_file(straight.run_dir / "final" / "transformer" / "diffusion_pytorch_model.safetensors")
    b = load_file(half.run_dir / "final" / "transformer" / "diffusion_pytorch_model.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    steps = [r["step"] for r in read_metrics(half.run_dir / "metrics.jsonl")]
    assert steps == sorted(set(steps)) and steps[-1] == 4  # no duplicated lines after the resume


def test_mixgrpo_rollout_costs_at_most_half_of_flow_grpo(tiny_model, tmp_path):
    # Equal steps (T = 8) and group size (G = 8), 2 prompts, NFE read from the rollout counter.
    # Flow-GRPO: G independent chains x T steps = 64 rows per prompt.
    # MixGRPO with a shared x_T and its window at step l: l prefix rows + 1 row at the branch point + G rows on each of
    # the T - l - 1 later steps. With interval 1 the window starts at l = 4 in iteration 4: 4 + 1 + 8 * 3 = 29 <= 32.
    flow = train(_cfg(tiny_model, tmp_path / "f", "train.iterations=1", "eval.every=100"))
    mix = train(
        _cfg(
            tiny_model,
            tmp_path / "m",
            "train.iterations=5",
            "eval.every=100",
            "method.kwargs.interval=1",
            preset="shapes_mixgrpo",
        )
    )
    nfe_flow = read_metrics(flow.run_dir / "metrics.jsonl")[-1]["nfe_rollout"]
    nfe_mix = read_metrics(mix.run_dir / "metrics.jsonl")[-1]["nfe_rollout"]
    assert nfe_flow == 2 * 8 * 8
    assert nfe_mix == 2 * (4 + 1 + 8 * 3)
    assert nfe_mix <= nfe_flow / 2


def test_nan_reward_is_skipped_and_counted(tiny_model, tmp_path, capsys):
    cfg = _cfg(
        tiny_model,
        tmp_path,
        "train.iterations=1",
        "eval.every=100",
        "train.prompts_per_iteration=5",
        "reward.names=[toy_rewards:nan_for_circles]",
    )
    result = train(cfg)
    last = read_metrics(result.run_dir / "metrics.jsonl")[-1]
    assert last["skipped_prompts"] >= 1
    assert "NaN/inf" in capsys.readouterr().err


def test_wrong_shape_reward_is_an_error(tiny_model, tmp_path):
    with pytest.raises(ValueError, match=r"Reward 'toy_rewards:wrong_shape' returned shape \(\d+, 2\)"):
        train(_cfg(tiny_model, tmp_path, "train.iterations=1", "reward.names=[toy_rewards:wrong_shape]"))


def test_bad_input_gives_clear_errors(tiny_model, tmp_path, capsys):
    assert main(["--preset", "nope"]) == 2
    assert "Unknown preset 'nope'. Valid: [" in capsys.readouterr().err
    assert main(["train.iteratoins=3"]) == 2
    assert "Unknown key 'iteratoins' in `train`" in capsys.readouterr().err
    assert main([f"model.path={tmp_path / 'missing'}", f"run.root={tmp_path}"]) == 2
    assert "model folder" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="method.kwargs"):
        train(_cfg(tiny_model, tmp_path, "method.kwargs.window=3"))


@pytest.mark.parametrize("credit", [[], ["train.advantage_std=global", "train.unbiased_std=false"]])
def test_two_processes_give_the_one_process_update(credit, tiny_model, tmp_path):
    # torchrun, 2 CPU processes (gloo): each rolls out 1 of the 2 prompts; the loss is normalised by the global edge
    # count and gradients are summed, so the weights after one iteration must equal the 1-process run's up to float
    # summation order. Measured difference ~7e-7 against a weight change of ~6e-4; tolerance 1e-5.
    import os
    import subprocess
    import sys

    args = [
        "--preset",
        "shapes_flow_grpo",  # a step log-prob method (the default, DiffusionNFT, has its own 2-process test)
        f"model.path={tiny_model}",
        "train.iterations=1",
        "train.prompts_per_iteration=2",
        "eval.every=100",
        "eval.prompts_per_family=1",
        "eval.seeds=[0]",
        "run.tensorboard=false",
        "reward.names=[toy_rewards:brightness]",
        *FULL_FT,
        *credit,  # global: the std of both processes' rewards (gathered), the same on each
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    one = subprocess.run(
        [sys.executable, "-m", "flowrl.train.image", *args, f"run.root={tmp_path}", "run.name=one"],
        env=env,
        capture_output=True,
        text=True,
    )
    assert one.returncode == 0, one.stderr[-2000:]
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node",
            "2",
            "-m",
            "flowrl.train.image",
            *args,
            f"run.root={tmp_path}",
            "run.name=two",
        ],
        env=env,
        capture_output=True,
        text=True,
    )
    assert two.returncode == 0, two.stderr[-8000:]
    name = "final/transformer/diffusion_pytorch_model.safetensors"
    a, b, base = (
        load_file(p)
        for p in (
            tmp_path / "one" / name,
            tmp_path / "two" / name,
            tiny_model / "transformer" / "diffusion_pytorch_model.safetensors",
        )
    )
    assert max((a[k] - base[k]).abs().max().item() for k in a) > 1e-4  # the update is not trivially zero
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)
    assert (
        read_metrics(tmp_path / "two" / "metrics.jsonl")[-1]["edges"]
        == read_metrics(tmp_path / "one" / "metrics.jsonl")[-1]["edges"]
    )


def test_fsdp_two_processes_give_the_one_process_update_and_resume(tiny_model, tmp_path):
    # train.sharding=fsdp, 2 CPU processes (gloo): each rank holds half of every weight, gradient and AdamW moment.
    # One process, unsharded, trains 2 iterations straight; the sharded run trains 1 iteration, is resumed from its
    # checkpoint (full tensors gathered on save, cut again on resume) and trains the 2nd. 4 prompts in 2 optimizer
    # steps per epoch: with seed 0, the 2nd epoch's first step of iteration 0 takes prompts 1 and 3, both on rank 1,
    # so rank 0 must run zero-loss passes to keep FSDP's collectives in step. Measured differences ~1e-7 against a
    # weight change of ~1e-3 (checkpoints, EMA and AdamW moments alike); tolerance 1e-5.
    import os
    import subprocess
    import sys

    args = [
        "--preset",
        "shapes_flow_grpo",  # FSDP runs the step log-prob methods (not the forward-process default)
        f"model.path={tiny_model}",
        "train.prompts_per_iteration=4",
        "train.steps_per_epoch=2",
        "train.ema_decay=0.5",
        "run.checkpoint_every=1",
        "eval.every=100",
        "eval.prompts_per_family=1",
        "eval.seeds=[0]",
        "run.tensorboard=false",
        "reward.names=[toy_rewards:brightness]",
        f"run.root={tmp_path}",
        *FULL_FT,
    ]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    torchrun = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "-m", "flowrl.train.image"]
    runs = [
        [sys.executable, "-m", "flowrl.train.image", *args, "train.iterations=2", "run.name=one"],
        [*torchrun, *args, "train.iterations=1", "train.sharding=fsdp", "run.name=two"],
        [*torchrun, "--resume", str(tmp_path / "two"), "train.iterations=2"],
    ]
    for cmd in runs:
        done = subprocess.run(cmd, env=env, capture_output=True, text=True)
        assert done.returncode == 0, done.stderr[-8000:]
    assert "sharding: fsdp" in (tmp_path / "two" / "config.yaml").read_text()
    name = "final/transformer/diffusion_pytorch_model.safetensors"
    a, b = load_file(tmp_path / "one" / name), load_file(tmp_path / "two" / name)
    base = load_file(tiny_model / "transformer" / "diffusion_pytorch_model.safetensors")
    assert max((a[k] - base[k]).abs().max().item() for k in a) > 1e-4  # the update is not trivially zero
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], atol=1e-5, rtol=0)
    # the sharded checkpoints hold the unsharded layout and values: model, EMA and the optimizer's moments
    for step in ("step_000001", "step_000002"):
        one, two = (tmp_path / run / "checkpoints" / step for run in ("one", "two"))
        for file in ("model.safetensors", "ema.safetensors"):
            x, y = load_file(one / file), load_file(two / file)
            assert x.keys() == y.keys()
            for k in x:
                torch.testing.assert_close(x[k], y[k], atol=1e-5, rtol=0)
        x, y = (torch.load(d / "optimizer.pt", weights_only=True) for d in (one, two))
        assert x["param_groups"] == y["param_groups"] and x["state"].keys() == y["state"].keys()
        for i in x["state"]:
            for k in x["state"][i]:
                torch.testing.assert_close(x["state"][i][k], y["state"][i][k], atol=1e-5, rtol=0)
    steps = [r["step"] for r in read_metrics(tmp_path / "two" / "metrics.jsonl")]
    assert steps == [0, 1, 2]


def test_fsdp_refuses_what_it_cannot_shard(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="train.sharding=fsdp shards full fine-tuning"):
        _cfg(tiny_model, tmp_path, "train.sharding=fsdp", "model.lora_rank=4")
    with pytest.raises(ConfigError, match="LayerTuning-RL"):
        _cfg(tiny_model, tmp_path, "train.sharding=fsdp", preset="shapes_dynamic_treerpo")
    with pytest.raises(ValueError, match="needs a torch.distributed process group"):  # plain `python -m`, no launcher
        train(_cfg(tiny_model, tmp_path, "train.sharding=fsdp", "train.iterations=1", *FULL_FT))


def test_lora_weights_load_in_diffusers_and_change_the_output(tiny_model, tmp_path):
    from diffusers import SD3Transformer2DModel

    result = train(
        _cfg(tiny_model, tmp_path, "train.iterations=1", "model.lora_rank=4", "optim.lr=1e-2", "eval.every=100")
    )
    lora = result.run_dir / "lora" / "pytorch_lora_weights.safetensors"
    assert lora.is_file() and all(k.startswith("transformer.") for k in load_file(lora))
    model = SD3Transformer2DModel.from_pretrained(tiny_model / "transformer").eval()
    x, t = torch.randn(2, 4, 8, 8), torch.tensor([500.0, 250.0])  # (B, C, h, w) latents of the v2 tiny model
    enc, pooled = torch.randn(2, 12, 32), torch.randn(2, 32)  # two text encoders of width 16, concatenated

    def run():
        with torch.no_grad():
            return model(hidden_states=x, encoder_hidden_states=enc, pooled_projections=pooled, timestep=t).sample

    before = run()
    model.load_lora_adapter(str(lora.parent), prefix="transformer", weight_name=lora.name)
    assert not torch.allclose(run(), before)
    # rank and alpha travel with the file (alpha 16 / rank 4: scale 4, not the loader's default scale 1)
    assert [(c.r, c.lora_alpha) for c in model.peft_config.values()] == [(4, 16)]


def test_nfe_budget_stops_the_run_with_a_final_eval(tiny_model, tmp_path):
    # Flow-GRPO, 2 prompts x 8 chains x 8 steps = 128 rollout NFE per iteration (+ training NFE): a budget of 100
    # is crossed by the first iteration, which is then evaluated and checkpointed.
    result = train(_cfg(tiny_model, tmp_path, "train.iterations=10", "train.max_nfe=100", "eval.every=100"))
    assert result.iterations == 1 and result.final is not None
    last = read_metrics(result.run_dir / "metrics.jsonl")[-1]
    assert last["step"] == 1 and last["nfe_total"] == last["nfe_rollout"] + last["nfe_train"] >= 128
    assert (result.run_dir / "checkpoints" / "step_000001").is_dir()


def test_prompts_file(tiny_model, tmp_path, capsys):
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n\n")
    assert main([f"model.path={tiny_model}", f"run.root={tmp_path}", f"train.prompts_file={empty}"]) == 2
    assert "holds no prompts" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_text("a red circle\na purple circle\n")
    assert main([f"model.path={tiny_model}", f"run.root={tmp_path}", f"train.prompts_file={bad}"]) == 2
    assert "purple" in capsys.readouterr().err
    good = tmp_path / "good.txt"
    good.write_text("a red circle\n")
    result = train(_cfg(tiny_model, tmp_path, "train.iterations=1", "eval.every=100", f"train.prompts_file={good}"))
    assert result.iterations == 1


def test_pooled_credit_sgd_and_unscaled_advantages_train(tiny_model, tmp_path):
    """The learning-signal options of docs/shapeworld_rl.md: on-policy ratios stay 1 in the first epoch with pooled
    log-probs, and SGD moves the weights."""
    cfg = _cfg(
        tiny_model,
        tmp_path,
        "train.iterations=1",
        "train.inner_epochs=1",
        "method.logprob_pool=8",
        "method.adv_scale=none",
        "optim.name=sgd",
        "optim.lr=10.0",
        *FULL_FT,
    )
    before = load_file(next(tiny_model.glob("transformer/*.safetensors")))
    result = train(cfg)
    last = read_metrics(result.run_dir)[-1]
    ratio_means = [v for k, v in last.items() if k.startswith("ratio_mean/step_")]
    assert ratio_means and all(abs(v - 1.0) < 1e-6 for v in ratio_means)  # on-policy: rescored old log-probs
    after = load_file(next((result.run_dir / "final").glob("transformer/*.safetensors")))
    assert any(not torch.equal(before[k], after[k]) for k in before)


def test_forward_process_methods_refuse_edge_loss_options(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="method.clip_range, method.logprob_pool apply to the step log-probability"):
        train(_cfg(tiny_model, tmp_path, "method.clip_range=0.1", "method.logprob_pool=4", preset="shapes_awm"))


def test_learning_signal_options_are_validated(tiny_model, tmp_path):
    with pytest.raises(ConfigError, match="method.adv_scale applies to group advantages"):
        train(_cfg(tiny_model, tmp_path, "method.adv_scale=none", preset="shapes_tree_grpo"))
    with pytest.raises(ConfigError, match="logprob_pool must be >= 1"):
        _cfg(tiny_model, tmp_path, "method.logprob_pool=0")
    with pytest.raises(ConfigError, match="adamw"):
        _cfg(tiny_model, tmp_path, "optim.name=adam")
