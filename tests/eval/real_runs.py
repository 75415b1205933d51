"""Tiny random SD3 / FLUX pipelines (tests/models/tiny_pipelines.py) and real `flowrl train` runs on them, for the
tests of `flowrl sample`, `flowrl eval` and `flowrl demo` on the real-model kinds. Each run is one iteration of the
model's published preset at test size (32 px, 2 steps, groups of 2), with EMA on so the EMA path is exercised."""

from __future__ import annotations

from pathlib import Path

from tests.file_module import load_file_module

TESTS = Path(__file__).resolve().parents[1]
PROMPTS = ["a photo of a cat", "a red car in the rain"]
PRESETS = {"sd3": "sd35m_flow_grpo_pickscore", "flux": "flux_mixgrpo"}


def tiny_pipelines():
    """The module tests/models/tiny_pipelines.py (`build_sd3`, `build_flux`)."""
    return load_file_module(TESTS / "models" / "tiny_pipelines.py", "tiny_pipelines_for_eval")


def write_prompts(folder: Path) -> Path:
    """A training-style prompts file (one prompt a line)."""
    path = folder / "prompts.txt"
    path.write_text("\n".join(PROMPTS) + "\n")
    return path


def train_run(kind: str, model: Path, root: Path, *, lora_rank: int, name: str, ema_decay: float = 0.5) -> Path:
    """Train one iteration of `PRESETS[kind]` on the tiny pipeline and return the run folder."""
    from flowrl.train.image import train
    from flowrl.train.image_cli import load_config

    root.mkdir(parents=True, exist_ok=True)
    prompts = write_prompts(root)
    cfg = load_config(
        preset=PRESETS[kind],
        overrides=[
            f"model.path={model}",
            "model.resolution=32",
            "eval.resolution=32",
            "model.mixed_precision='no'",  # quoted: YAML reads a bare no as False
            f"model.lora_rank={lora_rank}",
            "model.lora_alpha=8",
            "method.kwargs.num_inference_steps=2",
            "method.kwargs.group_size=2",
            f"train.prompts_file={prompts}",
            f"eval.prompts_file={prompts}",
            "train.iterations=1",
            "train.prompts_per_iteration=2",
            f"train.ema_decay={ema_decay}",
            "optim.lr=1e-2",
            "eval.num_inference_steps=2",
            "eval.grid_prompts=2",
            "eval.seeds=[0]",
            # a reward without ties (a hash of the image bytes): JPEG sizes of two near-blank 32 px samples can tie,
            # which zeroes both advantages of a group, leaves the LoRA at its zero init and the samples unchanged
            "reward.names=[uniform_noise]",
            "reward.weights=[1.0]",
            "run.tensorboard=false",
            f"run.root={root}",
            f"run.name={name}",
        ],
    )
    return train(cfg).run_dir
