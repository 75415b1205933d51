"""The two models the demo compares, loaded by the loader `flowrl sample` and `flowrl eval` use
(`flowrl.eval.load_model`): any model `flowrl train` accepts.

* ``--run runs/<name>``: the run's base model (``model.path`` of its ``config.yaml``, or ``--model``) against its
  trained weights (``lora/`` or ``final/``, EMA when the run used it), both with the run's sampling settings;
* ``--model FOLDER --lora PATH``: the model against the model with the LoRA;
* ``--model FOLDER`` alone: the base only.

With a LoRA (``--lora``, or a run that trained one) the two sides share ONE pipeline: the base is the tuned model
with its LoRA switched off while it samples, so an SD3.5 or FLUX page holds the model once.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import NamedTuple

from flowrl.eval.load_model import LoadedModel, load_model


class DemoModels(NamedTuple):
    """The base model and, when a run or a LoRA is given, the trained one (each says where it came from). With a
    LoRA both hold the same adapter (``base.adapter is tuned.adapter``); the base switches its LoRA off to sample."""

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
        tuned = load_model(args.model, run=args.run, ema=not args.no_ema, **common)
        if tuned.lora is not None:
            return DemoModels(_lora_off(tuned, f" of run {args.run}"), tuned)
        return DemoModels(load_model(args.model, run=args.run, trained=False, **common), tuned)
    model = args.model if args.model is not None else default_model_folder()
    if args.lora is not None:
        tuned = load_model(model, lora=args.lora, **common)
        return DemoModels(_lora_off(tuned, ""), tuned)
    return DemoModels(load_model(model, **common), None)


def _lora_off(tuned: LoadedModel, note: str) -> LoadedModel:
    """The base side of a LoRA comparison: the tuned model, described as the base (its LoRA off when sampling)."""
    return tuned._replace(source=f"base model {tuned.folder}{note} (the tuned pipeline with its LoRA off)")
