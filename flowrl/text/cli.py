"""`flowrl train-text`: parse the command line, resolve the config, call `flowrl.text.train.train`.

Kept free of model libraries so that ``--help`` and ``--show-config`` answer at once (`flowrl.runtime.cli`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from flowrl.runtime.cli import TrainerCli, run_cli
from flowrl.text.config import TextTrainConfig

PRESETS_DIR = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = "dapo"
PRESETS = ("grpo", "dr_grpo", "dapo", "bnpo", "gspo", "cispo")
# the LLM variants of docs/papers_llm.md, each a core variant plus the hooks it needs (flowrl/text/hooks.py)
LLM_PRESETS = (
    "ngrpo", "dcpo", "spo", "riskpo", "grpo_d", "kdrl", "llds", "d3s", "gtpo", "tw_grpo", "grpo_lambda", "unlikely",
    "think_short", "posterior_grpo", "tp_grpo", "mo_grpo", "dynamic_weighting", "disco", "drpo", "salsa", "knapsack",
    "gvm", "scaf_grpo", "guide", "segment_po",
)  # fmt: skip
# the chain task's methods (docs/text.md "The chain task"): GRPO, LATR tree rollouts, RGR rubric reward + guidance,
# SofT-GRPO soft-thinking rollouts, ReST-GRPO assembled prompts
CHAIN_PRESETS = ("chain_grpo", "chain_latr", "chain_rgr", "chain_soft", "chain_rest")

CLI = TrainerCli(
    prog="flowrl train-text",
    config_cls=TextTrainConfig,
    presets_dir=PRESETS_DIR,
    default_preset=DEFAULT_PRESET,
    description="GRPO-train a causal language model. Defaults: the shipped arithmetic LM (assets/arith_lm), "
    f"preset {DEFAULT_PRESET}, on CPU for 14 minutes. Override any field with key.path=value.",
    epilog="Examples: flowrl train-text --preset grpo train.time_limit_minutes=2 | flowrl train-text "
    "model.path=/my/model task.train_file=t.jsonl task.test_file=h.jsonl | flowrl train-text --resume runs/<name>",
    preset_help=f"preset name ({', '.join(PRESETS)}; LLM variants: {', '.join(LLM_PRESETS)}; chain task: "
    f"{', '.join(CHAIN_PRESETS)}) or a YAML file",
    override_example="optim.lr=2e-5",
    what="text preset",
)


def load_config(*, preset: str | None, overrides: list[str]) -> TextTrainConfig:
    """Defaults < preset (default: dapo) < ``key.path=value`` overrides."""
    return CLI.load_config(preset=preset, overrides=overrides)


def set_threads(cfg: TextTrainConfig) -> None:
    """``train.threads`` torch CPU threads before training (0 keeps torch's default); `train-vlm` uses it too."""
    if cfg.train.threads > 0:
        import torch

        torch.set_num_threads(cfg.train.threads)


def run_training(cfg: TextTrainConfig, resume: Path | None) -> None:
    """The text trainer on `cfg` (an image-conditioned policy for `train-vlm`), imported only when a run starts."""
    from flowrl.text.train import train  # the model libraries load only now

    train(cfg, resume=resume)


def main(argv: list[str] | None = None) -> int:
    """`flowrl train-text [--preset NAME] [--resume RUN] [--show-config] [key.path=value ...]` -> exit code."""
    return run_cli(CLI, argv, train=run_training, before_train=set_threads)


if __name__ == "__main__":
    sys.exit(main())
