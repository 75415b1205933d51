"""`flowrl train-vlm`: the text trainer (`flowrl.text.train.train`) with an image-conditioned policy.

The same config schema (`flowrl.text.config.TextTrainConfig`), run engine, hooks and core as ``flowrl train-text``;
only the presets differ (`flowrl/vlm/presets/`): they point at the shipped ShapeWorld VLM (`assets/shapeworld_vlm`),
its question task files and the question rewards. A LLaVA model folder loads as a policy whose prompts name their
images (`flowrl.text.policy.load_policy`, `flowrl.vlm.model.KeyedImageVLM`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from flowrl.runtime.cli import TrainerCli, run_cli
from flowrl.text.cli import run_training, set_threads
from flowrl.text.config import TextTrainConfig

PRESETS_DIR = Path(__file__).resolve().parent / "vlm" / "presets"
DEFAULT_PRESET = "grpo"

CLI = TrainerCli(
    prog="flowrl train-vlm",
    config_cls=TextTrainConfig,
    presets_dir=PRESETS_DIR,
    default_preset=DEFAULT_PRESET,
    description="GRPO-train a vision-language model on ShapeWorld questions. Defaults: the shipped tiny LLaVA "
    f"(assets/shapeworld_vlm), preset {DEFAULT_PRESET}, on CPU for 10 minutes. Override fields with key.path=value.",
    epilog="Examples: flowrl train-vlm --preset grpo_d | flowrl train-vlm train.time_limit_minutes=2 | "
    "flowrl train-vlm --resume runs/<name>",
    preset_help="preset name (grpo, grpo_d, tw_grpo, ton, grpo_care, vas, vade, reg_grpo) or a YAML file",
    override_example="optim.lr=5e-5",
    what="VLM preset",
)


def main(argv: list[str] | None = None) -> int:
    """`flowrl train-vlm [--preset NAME] [--resume RUN] [--show-config] [key.path=value ...]` -> exit code."""
    return run_cli(CLI, argv, train=run_training, before_train=set_threads)


if __name__ == "__main__":
    sys.exit(main())
