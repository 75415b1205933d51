"""The two models the demo compares: the base folder and the weights a `flowrl train` run left.

A run folder holds either ``final/`` (a full ShapeWorld model folder, full fine-tuning) or
``lora/pytorch_lora_weights.safetensors`` (diffusers LoRA layout, applied to a fresh copy of the base). When the
run used EMA, the latest checkpoint's ``ema.safetensors`` holds the averaged trained tensors (the weights the trainer
evaluated); they are copied onto the trained parameters when their count and shapes match.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import NamedTuple

import torch
import yaml
from safetensors.torch import load_file

from flowrl.shapes.model import ShapeWorldModel, load_shapeworld
from flowrl.train.checkpoint import latest_checkpoint

LORA_FILE = "pytorch_lora_weights.safetensors"
EMA_FILE = "ema.safetensors"


class TunedModel(NamedTuple):
    """A trained model and a one-line description of where its weights came from (shown in the page)."""

    model: ShapeWorldModel
    source: str


def default_model_folder() -> Path:
    """The shipped base model, ``assets/shapeworld`` of the flowrl repository."""
    return Path(__file__).resolve().parents[2] / "assets" / "shapeworld"


def load_base(folder: str | Path) -> ShapeWorldModel:
    """Load the base ShapeWorld model folder given on the command line.

    Raises:
        FileNotFoundError: the folder is missing or is not a ShapeWorld model folder, with how to get one.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(
            f"Base model folder {str(folder)!r} does not exist. Pass --model with a ShapeWorld model folder (as "
            "written by scripts/pretrain_shapes.py or flowrl.shapes.save_shapeworld), or ship assets/shapeworld."
        )
    return load_shapeworld(folder)


def _ema_targets(transformer: torch.nn.Module, lora: bool) -> list[torch.nn.Parameter]:
    """The trained parameters in the order the trainer's EMA stored them (see `flowrl.train.ema.EMA.state_dict`)."""
    if lora:
        return [p for name, p in transformer.named_parameters() if "lora_" in name]
    return list(transformer.parameters())


@torch.no_grad()
def _apply_ema(transformer: torch.nn.Module, run_dir: Path, *, lora: bool) -> str:
    """Copy the latest checkpoint's EMA tensors onto the trained parameters; return a note for the page."""
    checkpoint = latest_checkpoint(run_dir)
    if checkpoint is None or not (checkpoint / EMA_FILE).is_file():
        return ""
    ema = load_file(checkpoint / EMA_FILE)
    targets = _ema_targets(transformer, lora)
    shadow = [ema.get(str(i)) for i in range(len(ema))]
    matches = len(shadow) == len(targets) and all(
        s is not None and s.shape == p.shape for s, p in zip(shadow, targets, strict=True)
    )
    if not matches:
        print(
            f"flowrl demo: warning: {checkpoint / EMA_FILE} holds {len(ema)} EMA tensors that do not match the "
            f"{len(targets)} trained parameters (a layer-tuning run?); showing the saved final weights instead.",
            file=sys.stderr,
        )
        return ""
    for p, s in zip(targets, shadow, strict=True):
        p.copy_(s.to(p.dtype))
    return f", EMA weights from {checkpoint.name}"


def _run_model_config(run_dir: Path) -> dict:
    """The ``model`` section of the run's ``config.yaml`` ({} when absent); refuses runs of other model kinds."""
    path = run_dir / "config.yaml"
    config = yaml.safe_load(path.read_text()) if path.is_file() else None
    model = config.get("model") if isinstance(config, dict) else None
    model = model if isinstance(model, dict) else {}
    kind = model.get("kind", "shapeworld")
    if kind != "shapeworld":
        raise ValueError(
            f"{path} trained a {kind!r} model; flowrl demo compares ShapeWorld runs only (model.kind: shapeworld)."
        )
    return model


def load_tuned(run_dir: str | Path, base_folder: str | Path) -> TunedModel:
    """Load the trained model of a `flowrl train` run folder.

    Args:
        run_dir (`str | Path`): the run folder, holding ``final/`` or ``lora/``.
        base_folder (`str | Path`): the base model folder LoRA weights are applied to.

    Returns:
        `TunedModel`.

    Raises:
        FileNotFoundError: the run folder is missing or holds neither ``final/`` nor ``lora/``.
        ValueError: the run's ``config.yaml`` names another model kind (SD3, FLUX).
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise FileNotFoundError(f"Run folder {str(run_dir)!r} does not exist; pass --run with a `flowrl train` run.")
    trained_on = _run_model_config(run_dir).get("path")
    final, lora = run_dir / "final", run_dir / "lora" / LORA_FILE
    if final.is_dir():
        try:
            model = load_shapeworld(final)
        except FileNotFoundError as e:
            raise FileNotFoundError(
                f"{e} flowrl demo compares ShapeWorld image runs; text runs (flowrl train-text) have no images."
            ) from None
        note = _apply_ema(model.transformer, run_dir, lora=False)
        return TunedModel(model, f"full fine-tune {final}{note}")
    if lora.is_file():
        model = load_base(base_folder)
        model.transformer.load_lora_adapter(str(lora.parent), prefix="transformer", weight_name=LORA_FILE)
        model.transformer.eval()
        note = _apply_ema(model.transformer, run_dir, lora=True)
        config_note = f" (the run's config.yaml trained it on {trained_on})" if trained_on else ""
        return TunedModel(model, f"LoRA {lora} on {base_folder}{config_note}{note}")
    raise FileNotFoundError(
        f"Run folder {str(run_dir)!r} holds neither final/ nor lora/{LORA_FILE}: the run has not finished (the "
        "trainer writes them at the end) or is not a `flowrl train` run. Finish or resume it with `flowrl train`."
    )
