"""`flowrl train`: parse the command line, resolve the config, call `flowrl.train.image.train`.

Kept free of model libraries so that ``--help`` and ``--show-config`` answer at once.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from flowrl.config import ConfigError, dump_yaml, from_dict, load_yaml_file, merge, parse_overrides
from flowrl.train.image_config import ImageTrainConfig

PRESETS_DIR = Path(__file__).resolve().parents[1] / "presets"
DEFAULT_PRESET = "shapes_flow_grpo"


def preset_path(name: str) -> Path:
    """`name` as a file path, or the packaged preset `flowrl/presets/<name>.yaml`."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name)
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        raise ConfigError(f"Unknown preset {name!r}. Valid: {preset_names()}, or a path to a YAML file.")
    return path


def preset_names() -> list[str]:
    return sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))


def load_config(*, preset: str | None, overrides: list[str]) -> ImageTrainConfig:
    """Defaults < preset (default: shapes_flow_grpo) < ``key.path=value`` overrides."""
    data = load_yaml_file(preset_path(preset or DEFAULT_PRESET))
    return from_dict(ImageTrainConfig, merge(data, parse_overrides(overrides)))


def resume_config(run_dir: Path, overrides: list[str]) -> ImageTrainConfig:
    """The config saved in a run folder, with ``key.path=value`` overrides (e.g. more iterations)."""
    saved = run_dir / "config.yaml"
    if not saved.is_file():
        raise ConfigError(f"{run_dir} has no config.yaml: not a flowrl run folder.")
    return from_dict(ImageTrainConfig, merge(load_yaml_file(saved), parse_overrides(overrides)))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flowrl train",
        description="GRPO-train a flow-matching image model. Defaults: the shipped ShapeWorld model, preset "
        f"{DEFAULT_PRESET}, on CPU. Override any field with key.path=value.",
        epilog="Examples: flowrl train --preset shapes_mixgrpo train.iterations=20 | flowrl train method.guard=true | "
        "flowrl train --resume runs/<name>",
    )
    parser.add_argument("--preset", help=f"preset name ({', '.join(preset_names())}) or a YAML file")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides (e.g. optim.lr=1e-4)")
    args = parser.parse_args(argv)
    try:
        if args.resume is not None:
            cfg = resume_config(args.resume, args.overrides)
        else:
            cfg = load_config(preset=args.preset, overrides=args.overrides)
        if args.show_config:
            print(dump_yaml(cfg), end="")
            return 0
        from flowrl.train.image import train  # the model libraries load only now

        train(cfg, resume=args.resume)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"flowrl train: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
