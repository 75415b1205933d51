"""`flowrl train`: parse the command line, resolve the config, call `flowrl.train.image.train`.

Kept free of model libraries so that ``--help`` and ``--show-config`` answer at once (`flowrl.runtime.cli`).
"""

from __future__ import annotations

import sys
from pathlib import Path

from flowrl.runtime.cli import TrainerCli, run_cli
from flowrl.train.image_config import ImageTrainConfig

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"
DEFAULT_PRESET = "shapes_diffusion_nft"

CLI = TrainerCli(
    prog="flowrl train",
    config_cls=ImageTrainConfig,
    presets_dir=PRESETS_DIR,
    default_preset=DEFAULT_PRESET,
    description="GRPO-train a flow-matching image model. Defaults: the shipped ShapeWorld model, preset "
    f"{DEFAULT_PRESET}, on CPU. Override any field with key.path=value.",
    epilog="Examples: flowrl train --preset shapes_mixgrpo train.iterations=20 | flowrl train method.guard=true | "
    "flowrl train --resume runs/<name>",
    preset_help=f"preset name ({', '.join(sorted(p.stem for p in PRESETS_DIR.glob('*.yaml')))}) or a YAML file",
    override_example="optim.lr=1e-4",
)


def preset_path(name: str) -> Path:
    """`name` as a file path, or the packaged preset `flowrl/presets/<name>.yaml`."""
    return CLI.preset_path(name)


def preset_names() -> list[str]:
    return CLI.preset_names()


def load_config(*, preset: str | None, overrides: list[str]) -> ImageTrainConfig:
    """Defaults < preset (default: shapes_diffusion_nft) < ``key.path=value`` overrides."""
    return CLI.load_config(preset=preset, overrides=overrides)


def resume_config(run_dir: Path, overrides: list[str]) -> ImageTrainConfig:
    """The config saved in a run folder, with ``key.path=value`` overrides (e.g. more iterations)."""
    return CLI.resume_config(run_dir, overrides)


def _train(cfg: ImageTrainConfig, resume: Path | None) -> None:
    from flowrl.train.image import train  # the model libraries load only now

    train(cfg, resume=resume)


def main(argv: list[str] | None = None) -> int:
    """`flowrl train [--preset NAME] [--resume RUN] [--show-config] [key.path=value ...]` -> exit code."""
    return run_cli(CLI, argv, train=_train)


if __name__ == "__main__":
    sys.exit(main())
