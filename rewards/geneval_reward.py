"""GenEval as a reward: any detector and colour classifier, each a `Detector` / `ColourClassifier` object or a
``"package.module:factory"`` string; the rules are `rewards.geneval`.

Names in `rewards.REWARDS`: ``geneval`` (Flow-GRPO's training reward, the partial ``score``), ``geneval_strict``
(its strict pass: exact counts) and ``geneval_correct`` (GenEval's pass, the paper's accuracy). The default detector
is ``"shapeworld"`` (`flowrl.shapes.geneval`), which also brings its colour classifier and reads the metadata of a
ShapeWorld prompt off its text. Each sample's metadata is, first found: the ``metadata`` the caller passes (the
extra keys of a ``flowrl eval`` JSONL row), the row of `metadata_file` with the same prompt, or the ShapeWorld
grammar (``"shapeworld"`` detector only).
"""

from __future__ import annotations

import inspect
import pkgutil
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import torch

from rewards.geneval import ColourClassifier, Detector, judge_detections
from rewards.geneval_prompts import check_metadata, read_geneval_prompts
from rewards.images import check_images

Output = Literal["score", "strict", "correct"]
_SHAPEWORLD = "shapeworld"
_SETTINGS = [  # judge_detections' keyword settings
    p.name
    for p in inspect.signature(judge_detections).parameters.values()
    if p.kind is p.KEYWORD_ONLY and p.name != "colour_classifier"
]


def _build(spec: object, what: str, **kwargs: Any) -> Any:
    """`spec` itself, or ``pkgutil.resolve_name(spec)(**kwargs)`` for a ``"package.module:factory"`` string."""
    if not isinstance(spec, str):
        return spec
    if ":" not in spec:
        raise ValueError(f"{what} {spec!r} is neither {_SHAPEWORLD!r} nor 'package.module:factory'.")
    return pkgutil.resolve_name(spec)(**{k: v for k, v in kwargs.items() if v is not None})


class GenEvalReward:
    """GenEval-style reward ``(images, prompts, metadata) -> (B,)``: Flow-GRPO's partial score, its strict pass, or
    GenEval's pass (`rewards.geneval`).

    Args:
        output (`str`, defaults to "score"): "score", "strict" (1.0 / 0.0) or "correct" (1.0 / 0.0).
        detector (`str | Detector`, defaults to "shapeworld"): a detector or ``"package.module:factory"``; the
            factory gets the non-None of `device`, `dtype`, `path` as keyword arguments.
        colour_classifier (`str | ColourClassifier`, *optional*): likewise; default: ShapeWorld's palette classifier
            with the ShapeWorld detector, none otherwise (a ``color`` clause is then an error).
        metadata_file (`str | Path | Sequence`, *optional*): GenEval prompts file(s) (`rewards.geneval_prompts`)
            looked up by prompt when the caller passes no metadata (training passes none; give the train and the
            evaluation file).
        settings: ``threshold``, ``counting_threshold``, ``max_objects``, ``nms_threshold``,
            ``position_threshold``, ``position_quirk``: GenEval's and the reward server's settings, defaults and
            meaning as in `rewards.geneval.judge_detections`; another name is a TypeError.
    """

    def __init__(
        self,
        *,
        output: Output = "score",
        detector: str | Detector = _SHAPEWORLD,
        colour_classifier: str | ColourClassifier | None = None,
        metadata_file: str | Path | Sequence[str | Path] | None = None,
        device: str | None = None,
        dtype: torch.dtype | None = None,
        path: str | None = None,
        **settings: Any,
    ) -> None:
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise TypeError(f"GenEvalReward got unknown setting(s) {unknown}; valid: {', '.join(_SETTINGS)}.")
        if output not in ("score", "strict", "correct"):
            raise ValueError(f"output must be 'score', 'strict' or 'correct', got {output!r}.")
        self.output = output
        self.name = "geneval" if output == "score" else f"geneval_{output}"
        self._from_prompt: Callable[[str], dict] | None = None
        if detector == _SHAPEWORLD:
            from flowrl.shapes.geneval import PaletteColourClassifier, ShapeWorldDetector, shapes_metadata

            detector = ShapeWorldDetector()
            colour_classifier = PaletteColourClassifier() if colour_classifier is None else colour_classifier
            self._from_prompt = shapes_metadata
        self.detector: Detector = _build(detector, "detector", device=device, dtype=dtype, path=path)
        self.colour_classifier: ColourClassifier | None = _build(
            colour_classifier, "colour_classifier", device=device, dtype=dtype
        )
        self._by_prompt: dict[str, dict] = {}
        files = [metadata_file] if isinstance(metadata_file, str | Path) else list(metadata_file or [])
        for file in files:
            for row in read_geneval_prompts(file):
                seen = self._by_prompt.setdefault(row.prompt, row.metadata)
                if seen != row.metadata:
                    raise ValueError(
                        f"{self.name}: prompt {row.prompt!r} has two different metadata ({file} line {row.line}); "
                        "a prompt must mean one thing across metadata_file."
                    )
        self._settings = settings

    def metadata_for(self, prompt: str, given: Mapping | None, index: int) -> dict:
        """Sample `index`'s checked metadata: `given` when it has GenEval keys, else by prompt (class docstring)."""
        if given and "include" in given:
            return check_metadata({"prompt": prompt, **given}, where=f"{self.name}: metadata of sample {index}")
        if prompt in self._by_prompt:
            return self._by_prompt[prompt]
        if self._from_prompt is not None:
            return check_metadata(self._from_prompt(prompt), where=f"{self.name}: prompt {prompt!r}")
        raise ValueError(
            f"{self.name}: no GenEval metadata for prompt {prompt!r} (sample {index}). Pass metadata (a JSONL prompts "
            "file with 'tag' and 'include' for flowrl eval) or metadata_file= holding this prompt (docs/geneval.md)."
        )

    def _check_vocabulary(self, metadata: dict) -> None:
        labels = getattr(self.detector, "labels", None)
        colors = getattr(self.colour_classifier, "colors", None)
        for clause in metadata["include"] + metadata.get("exclude", []):
            if labels is not None and clause["class"] not in labels:
                raise ValueError(
                    f"{self.name}: class {clause['class']!r} of prompt {metadata['prompt']!r} is not a label of the "
                    f"detector (a class it never reports would always fail). Its labels: {', '.join(labels)}."
                )
            if colors is not None and "color" in clause and clause["color"] not in colors:
                raise ValueError(
                    f"{self.name}: colour {clause['color']!r} of prompt {metadata['prompt']!r} is not one the "
                    f"colour classifier reports: {', '.join(colors)}."
                )

    @torch.no_grad()
    def __call__(self, images: torch.Tensor, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        images = check_images(self.name, images)
        given = metadata if metadata is not None else [None] * len(prompts)
        metas = [self.metadata_for(p, m, i) for i, (p, m) in enumerate(zip(prompts, given, strict=True))]
        for meta in metas:
            self._check_vocabulary(meta)
        scores = []
        for image, meta, detections in zip(images, metas, self.detector(images), strict=True):
            result = judge_detections(
                image, detections, meta, colour_classifier=self.colour_classifier, **self._settings
            )
            scores.append({"score": result.score, "strict": float(result.strict), "correct": float(result.correct)})
        return torch.tensor([s[self.output] for s in scores], dtype=torch.float32)
