"""The two models the demo compares, loaded by the loader `flowrl sample` and `flowrl eval` use
(`flowrl.eval.load_model`): any model `flowrl train` accepts.

* ``--run runs/<name>``: the run's base model (``model.path`` of its ``config.yaml``, or ``--model``) against its
  trained weights (``lora/`` or ``final/``, EMA when the run used it), both with the run's sampling settings;
* ``--model FOLDER --lora PATH``: the model against the model with the LoRA;
* ``--model FOLDER`` alone: the base only.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

from flowrl.eval.load_model import LoadedModel, load_model


class DemoModels(NamedTuple):
    """The base model and, when a run or a LoRA is given, the trained one (each says where it came from)."""

    base: LoadedModel
    tuned: LoadedModel | None


def default_model_folder() -> Path:
    """The shipped base model, ``assets/shapeworld`` of the flowrl repository."""
    return Path(__file__).resolve().parents[2] / "assets" / "shapeworld"


def load_models(args: argparse.Namespace) -> DemoModels:
    """Load the base and the trained model named by the options of `flowrl.eval.load_model.add_model_arguments`.

    Raises:
        FileNotFoundError, ValueError: from `load_model`, saying which folder or file is missing or wrong.
    """
    common = dict(
        kind=args.kind, device=args.device, dtype=args.dtype, resolution=args.resolution, lora_alpha=args.lora_alpha
    )
    if args.run is not None:
        base = load_model(args.model, run=args.run, trained=False, **common)
        return DemoModels(base, load_model(args.model, run=args.run, ema=not args.no_ema, **common))
    model = args.model if args.model is not None else default_model_folder()
    base = load_model(model, **common)
    return DemoModels(base, load_model(model, lora=args.lora, **common) if args.lora is not None else None)
