"""ShapeWorld: a procedural world of coloured shapes, its prompt grammar, renderer, grader and tiny base model.

The grammar, sampler, renderer and grader import only torch, numpy and scipy, so a reward that uses the grader
loads fast. The model-side names (`load_shapeworld`, `sample_images`, `evaluate_model`, ...) import diffusers and
transformers, which takes seconds, so they are loaded on first access (PEP 562 module `__getattr__`).
"""

import importlib

from flowrl.shapes.grader import Detection, GradeResult, detect_objects, grade, score_detections
from flowrl.shapes.grammar import (
    COLORS,
    FAMILIES,
    RELATIONS,
    SHAPES,
    ObjectSpec,
    PromptSpec,
    composition_key,
    enumerate_family,
    format_prompt,
    parse_prompt,
    split_prompts,
    vocabulary,
)
from flowrl.shapes.palette import PALETTE
from flowrl.shapes.render import render_prompts, render_spec
from flowrl.shapes.sampler import sample_prompts, sample_specs

# name -> module that defines it; imported on first access.
_LAZY = {
    "PromptEmbeds": "flowrl.shapes.model",
    "ShapeWorldModel": "flowrl.shapes.model",
    "build_shapeworld": "flowrl.shapes.model",
    "encode_prompts": "flowrl.shapes.model",
    "load_shapeworld": "flowrl.shapes.model",
    "save_shapeworld": "flowrl.shapes.model",
    "velocity": "flowrl.shapes.model",
    "sample_images": "flowrl.shapes.sampling",
    "shifted_sigmas": "flowrl.shapes.sampling",
    "EvalResult": "flowrl.shapes.evaluate",
    "evaluate_model": "flowrl.shapes.evaluate",
    "stratified_prompts": "flowrl.shapes.evaluate",
    "build_tokenizer": "flowrl.shapes.tokenizer",
    "default_model_folder": "flowrl.shapes.sample_cli",
}


def __getattr__(name: str):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'flowrl.shapes' has no attribute {name!r}; public names: {', '.join(__all__)}.")


__all__ = [
    "COLORS",
    "FAMILIES",
    "PALETTE",
    "RELATIONS",
    "SHAPES",
    "Detection",
    "GradeResult",
    "ObjectSpec",
    "PromptSpec",
    "composition_key",
    "detect_objects",
    "enumerate_family",
    "format_prompt",
    "grade",
    "parse_prompt",
    "render_prompts",
    "render_spec",
    "sample_prompts",
    "sample_specs",
    "score_detections",
    "split_prompts",
    "vocabulary",
    *_LAZY,
]
