"""The `flowrl` command: a thin dispatcher to the entry point of each subcommand.

Each subcommand lives in its own module with a ``main(argv) -> int`` and is imported only when called, so
``flowrl --help`` stays fast and a broken optional dependency only affects the command that needs it.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# name -> (module with `main(argv)`, one-line help)
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("flowrl.train.image_cli", "GRPO-train a flow-matching image model (default: ShapeWorld on CPU)"),
    "sample": ("flowrl.sample_cli", "write a PNG grid of samples from a model, a LoRA or a run for given prompts"),
    "eval": ("flowrl.eval.cli", "score images or the samples of a model or a run with rewards; compare two"),
    "train-text": ("flowrl.text.cli", "GRPO-train a causal language model (default: the tiny arithmetic LM)"),
    "eval-text": ("flowrl.text.eval_cli", "held-out exact match of a causal LM: greedy or VM-MCTS decoding"),
    "train-vlm": ("flowrl.vlm_cli", "GRPO-train a vision-language model on ShapeWorld questions (the text trainer)"),
    "demo": ("flowrl.demo.app", "open a Gradio page comparing a base model and a trained run"),
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowrl",
        description="Reinforcement learning for flow-matching image models and LLMs on one GRPO core.",
        epilog="Run `flowrl <command> --help` for the options of a command.",
    )
    parser.add_argument("--version", action="version", version=f"flowrl {_version()}")
    sub = parser.add_subparsers(dest="command", metavar="<command>")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    return parser


def _version() -> str:
    from flowrl import __version__

    return __version__


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    if not argv or argv[0] not in COMMANDS:
        parser.parse_args(argv)  # --help / --version / an unknown command (argparse lists the valid ones)
        parser.print_help()
        return 2
    name, rest = argv[0], argv[1:]
    module, _ = COMMANDS[name]
    return int(importlib.import_module(module).main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
