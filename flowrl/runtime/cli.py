"""The command-line entry both trainers share: ``[--preset NAME] [--resume RUN] [--show-config] [key.path=value ...]``.

Defaults (the config dataclass) < preset YAML < ``key.path=value`` overrides; ``--resume RUN`` starts from the
config saved in the run folder instead of a preset. Kept free of model libraries so that ``--help`` and
``--show-config`` answer at once: the trainer is imported only when it runs.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flowrl.config import ConfigError, dump_yaml, from_dict, load_yaml_file, merge, parse_overrides


def examples_parser(prog: str, description: str, doc: str) -> argparse.ArgumentParser:
    """A command's parser whose ``--help`` ends with its module docstring after the first paragraph (the examples),
    line breaks kept: `flowrl eval` and `flowrl sample`."""
    formatter = argparse.RawDescriptionHelpFormatter
    return argparse.ArgumentParser(
        prog=prog, description=description, formatter_class=formatter, epilog=doc.split("\n\n", 1)[1]
    )


@dataclass(frozen=True)
class TrainerCli:
    """What differs between the trainers' command lines."""

    prog: str  # "flowrl train"
    config_cls: type
    presets_dir: Path
    default_preset: str
    description: str
    epilog: str
    preset_help: str  # the --preset help text (lists the presets)
    override_example: str  # "optim.lr=1e-4"
    what: str = "preset"  # "text preset": the unknown-preset error names it

    def preset_names(self) -> list[str]:
        return sorted(p.stem for p in self.presets_dir.glob("*.yaml"))

    def preset_path(self, name: str) -> Path:
        """`name` as a file path, or the packaged preset `<presets_dir>/<name>.yaml`."""
        if name.endswith((".yaml", ".yml")) or "/" in name:
            return Path(name)
        path = self.presets_dir / f"{name}.yaml"
        if not path.is_file():
            raise ConfigError(f"Unknown {self.what} {name!r}. Valid: {self.preset_names()}, or a path to a YAML file.")
        return path

    def load_config(self, *, preset: str | None, overrides: list[str]) -> Any:
        """Defaults < preset (default: `default_preset`) < ``key.path=value`` overrides."""
        data = load_yaml_file(self.preset_path(preset or self.default_preset))
        return from_dict(self.config_cls, merge(data, parse_overrides(overrides)))

    def resume_config(self, run_dir: Path, overrides: list[str]) -> Any:
        """The config saved in a run folder, with ``key.path=value`` overrides (e.g. more iterations)."""
        saved = run_dir / "config.yaml"
        if not saved.is_file():
            raise ConfigError(f"{run_dir} has no config.yaml: not a flowrl run folder.")
        return from_dict(self.config_cls, merge(load_yaml_file(saved), parse_overrides(overrides)))


def setup_logging(level: int = logging.INFO) -> None:
    """Send the library's log records (``logging.getLogger("flowrl...")``) to stderr as ``[flowrl] message``."""
    log = logging.getLogger("flowrl")
    if not log.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("[flowrl] %(message)s"))
        log.addHandler(handler)
    log.setLevel(level)


def run_cli(
    cli: TrainerCli,
    argv: list[str] | None,
    *,
    train: Callable[[Any, Path | None], object],
    before_train: Callable[[Any], None] | None = None,
) -> int:
    """Parse `argv`, resolve the config, print it (``--show-config``) or call ``train(cfg, resume)`` -> exit code
    (2 with a one-line message for a config, missing-file or value error)."""
    parser = argparse.ArgumentParser(prog=cli.prog, description=cli.description, epilog=cli.epilog)
    parser.add_argument("--preset", help=cli.preset_help)
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help=f"key.path=value overrides (e.g. {cli.override_example})")
    args = parser.parse_args(argv)
    # MKL (torch's CPU BLAS) picks kernels by memory alignment unless told not to: float results then differ in the
    # last bits between two processes, and a CPU run would not repeat from its seed (read at MKL's first call)
    os.environ.setdefault("MKL_CBWR", "AUTO,STRICT")
    try:
        if args.resume is not None:
            cfg = cli.resume_config(args.resume, args.overrides)
        else:
            cfg = cli.load_config(preset=args.preset, overrides=args.overrides)
        if args.show_config:
            print(dump_yaml(cfg), end="")
            return 0
        setup_logging()
        if before_train is not None:
            before_train(cfg)
        train(cfg, args.resume)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"{cli.prog}: error: {e}", file=sys.stderr)
        return 2
    return 0
