"""ShapeWorld question task files, and binding a task's images to the policy.

A row of a VLM task JSONL is a text-task row (`flowrl.text.data.load_jsonl`) whose prompt holds the ``<image>``
placeholder, plus where its image comes from::

    {"prompt": "<image> how many red circles are there ?", "answer": "two", "family": "count",
     "think": "red circle red circle", "image_family": "counting", "scene": [["red", "circle", 3, 4, 9], ...]}

``scene`` lists the objects (colour, shape, x, y, side) drawn by `flowrl.shapes.scene.draw_scene` at ``size``
(default 32): the image is re-drawn on load, so a 5,000-row task file is a few hundred kB. A row may instead give
``image``: a PNG path relative to the task file. `bind_images` registers each row's image with the policy and puts
its 16 key tokens in place of ``<image>`` (`flowrl.vlm.images`).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from flowrl.shapes.questions import QuestionItem, describe, format_question, parse_question, sample_items
from flowrl.shapes.scene import Scene, SceneObject, draw_scene
from flowrl.vlm.tokenizer import IMAGE_TOKEN


def item_row(item: QuestionItem) -> dict:
    """The task row of a sampled item (prompt with ``<image>``, answer, family, reasoning text, scene)."""
    objects = [[o.color, o.shape, o.x, o.y, o.side] for o in item.scene.objects]
    return {
        "prompt": f"{IMAGE_TOKEN} {format_question(item.question)}",
        "answer": item.answer,
        "family": item.question.family,
        "think": describe(item.scene),
        "image_family": item.image_family,
        "image_prompt": item.image_prompt,
        "scene": objects,
        "size": item.scene.size,
    }


def write_task(path: str | Path, *, n: int, split: str, seed: int) -> list[dict]:
    """Sample `n` items of `split` (`flowrl.shapes.questions.sample_items`) and write them as JSONL."""
    rows = [item_row(it) for it in sample_items(n, split=split, seed=seed)]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    Path(path).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return rows


def row_scene(row: dict) -> Scene:
    return Scene(tuple(SceneObject(*o) for o in row["scene"]), int(row.get("size", 32)))


def row_image(row: dict, *, base: Path | None = None) -> np.ndarray:
    """The uint8 (H, W, 3) image of a row: its drawn ``scene``, or its ``image`` PNG file.

    Raises:
        ValueError: the row has neither ``scene`` nor ``image``.
        FileNotFoundError: the image file does not exist.
    """
    if "pixels" in row:  # a synthesised image (flowrl.vlm.synth)
        return np.asarray(row["pixels"], dtype=np.uint8)
    if "scene" in row:
        return (draw_scene(row_scene(row)).permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    if "image" in row:
        from PIL import Image

        path = Path(row["image"]) if base is None else base / row["image"]
        if not path.is_file():
            raise FileNotFoundError(f"Image file {str(path)!r} of row {row['prompt'][:60]!r} does not exist.")
        return np.asarray(Image.open(path).convert("RGB"))
    raise ValueError(
        f"Row {str(row.get('prompt'))[:60]!r} names no image: a VLM task row needs 'scene' (ShapeWorld objects) or "
        "'image' (a PNG path relative to the task file)."
    )


def question_text(prompt: str) -> str:
    """The question of a prompt, unbound (``<image> question``) or bound (16 ``<k..>`` key tokens, then the question):
    its words without the ``<...>`` tokens (no word of the question grammar starts with ``<``). Not validated."""
    return " ".join(w for w in prompt.split() if not w.startswith("<"))


def check_question(prompt: str) -> str:
    """The question of a ShapeWorld prompt (``<image> question``), validated against the question grammar."""
    if not prompt.startswith(IMAGE_TOKEN):
        raise ValueError(f"A VLM prompt starts with {IMAGE_TOKEN!r} (where the image goes), got {prompt[:60]!r}.")
    question = prompt[len(IMAGE_TOKEN) :].strip()
    parse_question(question)  # raises naming what is outside the grammar
    return question


def bind_images(model, rows: list[dict], *, base: Path | None = None, shapeworld: bool = True) -> list[dict]:
    """Rows whose ``<image>`` is replaced by the key tokens of their image, registered with `model`
    (`flowrl.vlm.model.KeyedImageVLM.register_many`). With `shapeworld`, questions are checked against the
    ShapeWorld question grammar (`parse_question`)."""
    images = []
    for row in rows:
        prompt = str(row["prompt"])
        if shapeworld:
            check_question(prompt)
        elif IMAGE_TOKEN not in prompt:
            raise ValueError(f"A VLM prompt holds {IMAGE_TOKEN!r} where the image goes, got {prompt[:60]!r}.")
        images.append(row_image(row, base=base))
    keys = model.register_many(images)
    return [
        {**row, "prompt": str(row["prompt"]).replace(IMAGE_TOKEN, key, 1)} for row, key in zip(rows, keys, strict=True)
    ]


def sft_target(row: dict, *, drop_thought: bool = False) -> str:
    """The SFT completion of a row (EOS added by the caller); `drop_thought` empties the reasoning (TON's thought
    dropout, arXiv 2505.16854)."""
    think = "" if drop_thought else f" {row['think']}"
    return f"<think>{think} </think> <answer> {row['answer']} </answer>"
