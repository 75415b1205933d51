"""Which adapter a model folder needs: ShapeWorld, SD3 / SD3.5 or FLUX.1.

A folder is a ShapeWorld model when it holds ShapeWorld's metadata file (``flowrl_shapeworld.json``); otherwise it
must be a diffusers pipeline folder, whose ``model_index.json`` names the pipeline class in ``_class_name``.
"""

from __future__ import annotations

import json
from pathlib import Path

MODEL_KINDS = ("shapeworld", "sd3", "flux")
SHAPEWORLD_META = "flowrl_shapeworld.json"
# diffusers pipeline class (`model_index.json` `_class_name`) -> model kind (`model.kind` of `flowrl train`)
PIPELINE_KINDS = {"StableDiffusion3Pipeline": "sd3", "FluxPipeline": "flux"}


def detect_kind(folder: str | Path) -> str:
    """The model kind of a local model folder (one of `MODEL_KINDS`).

    Args:
        folder (`str | Path`): a ShapeWorld model folder or a diffusers pipeline folder.

    Returns:
        `str`: 'shapeworld', 'sd3' or 'flux'.

    Raises:
        FileNotFoundError: the folder is missing or is neither kind of model folder.
        ValueError: ``model_index.json`` names a pipeline flowrl has no adapter for.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"Model folder {str(folder)!r} does not exist.")
    if (folder / SHAPEWORLD_META).is_file():
        return "shapeworld"
    index = folder / "model_index.json"
    if not index.is_file():
        raise FileNotFoundError(
            f"{folder} is neither a ShapeWorld model folder (no {SHAPEWORLD_META}) nor a diffusers pipeline folder "
            "(no model_index.json). Pass the folder of a downloaded pipeline, e.g. `hf download "
            "stabilityai/stable-diffusion-3.5-medium --local-dir <folder>`, or assets/shapeworld."
        )
    name = json.loads(index.read_text()).get("_class_name")
    if name not in PIPELINE_KINDS:
        raise ValueError(
            f"{index} names the pipeline {name!r}; flowrl has adapters for {sorted(PIPELINE_KINDS)} (kinds "
            f"{MODEL_KINDS}). Pass --kind to override the detection if the folder holds one of those."
        )
    return PIPELINE_KINDS[name]
