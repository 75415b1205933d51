"""Every random draw of a run derives from `train.seed`: two runs of one config end with identical weights (the LoRA
initialisation included), and a run killed with SIGKILL at a random moment, then resumed, ends where the
uninterrupted run ends (LoRA and full fine-tuning), each run in its own process.
Run: pytest tests/train/test_reproducibility.py -q"""

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from flowrl.train.image import train
from flowrl.train.image_cli import load_config

SMALL = [
    "train.prompts_per_iteration=2",
    "eval.prompts_per_family=1",
    "eval.seeds=[0]",
    "eval.every=100",
    "eval.grid_prompts=2",
    "run.tensorboard=false",
    "reward.names=[toy_rewards:brightness]",
]
MODES = {"lora": ["model.lora_rank=4", "optim.lr=1e-2"], "full": ["model.lora_rank=0", "method.kl_beta=0"]}


def _weights(run_dir: Path, mode: str) -> dict[str, torch.Tensor]:
    if mode == "lora":
        return load_file(run_dir / "lora" / "pytorch_lora_weights.safetensors")
    return load_file(run_dir / "final" / "transformer" / "diffusion_pytorch_model.safetensors")


def _equal(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def _args(tiny_model: Path, root: Path, *extra: str) -> list[str]:
    return [f"model.path={tiny_model}", f"run.root={root}", "run.name=r", *SMALL, *extra]


def test_two_runs_of_one_seed_end_with_identical_lora_weights(tiny_model, tmp_path):
    runs = []
    for i, global_seed in enumerate((1, 2)):  # whatever the caller's global generator holds
        torch.manual_seed(global_seed)
        cfg = load_config(
            preset="shapes_flow_grpo", overrides=_args(tiny_model, tmp_path / str(i), "train.iterations=1")
        )
        runs.append(_weights(train(cfg).run_dir, "lora"))
    assert _equal(*runs)
    lora_a = [k for k in runs[0] if "lora_A" in k]
    assert lora_a  # the A matrices (random at initialisation; B starts at zero) are among the identical tensors
    other = load_config(
        preset="shapes_flow_grpo", overrides=_args(tiny_model, tmp_path / "s1", "train.iterations=1", "train.seed=1")
    )
    assert not _equal(runs[0], _weights(train(other).run_dir, "lora"))  # the seed does matter


@pytest.mark.slow  # six training processes: minutes on a loaded 2-core machine
@pytest.mark.parametrize("mode", sorted(MODES))
def test_kill_9_at_a_random_moment_then_resume_ends_like_the_uninterrupted_run(mode, tiny_model, tmp_path):
    extra = ["train.iterations=5", "run.checkpoint_every=1", *MODES[mode]]
    # every run in its own process, as users run them (the CLI fixes MKL's code path: bit-equal across processes)
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent), "OMP_NUM_THREADS": "1"}
    env.pop("MKL_CBWR", None)
    straight = [sys.executable, "-m", "flowrl.train.image", *_args(tiny_model, tmp_path / "straight", *extra)]
    done = subprocess.run(straight, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-4000:]
    cmd = [sys.executable, "-m", "flowrl.train.image", *_args(tiny_model, tmp_path / "killed", *extra)]
    run_dir = tmp_path / "killed" / "r"
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        seen = {}
        while 2 not in seen:  # the time of one iteration: between the first two checkpoints
            for k in (1, 2):
                if k not in seen and (run_dir / "checkpoints" / f"step_{k:06d}" / "meta.json").is_file():
                    seen[k] = time.monotonic()
            assert proc.poll() is None, proc.stderr.read()[-4000:]
            time.sleep(0.02)
        delay = random.uniform(0.0, 1.5 * (seen[2] - seen[1]))  # inside iteration 3 or 4, checkpoint writes included
        time.sleep(delay)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, f"the run ended before the kill (delay {delay:.2f} s)"
    resumed = subprocess.run([*cmd[:3], "--resume", str(run_dir)], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-4000:]
    assert _equal(_weights(tmp_path / "straight" / "r", mode), _weights(run_dir, mode)), f"killed after {delay:.2f} s"
