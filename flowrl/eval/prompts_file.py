"""Read a prompts file (JSONL or CSV) into rows; bad rows are reported by line number.

JSONL: one object per line with a string ``"prompt"``; optional ``"image"`` (a file name, relative to the image
folder) and any other keys, kept as the row's metadata. CSV: a header with a ``prompt`` column (optional ``image``;
other columns become metadata). Plain text (``.txt``, the format of training's ``train.prompts_file``): one prompt a
line, ``#`` starts a comment line. Blank lines are ignored.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path
from typing import NamedTuple

from rewards.jsonl import jsonl_lines


class PromptRow(NamedTuple):
    """One usable row.

    Args:
        line (`int`): 1-based line number in the file.
        prompt (`str`): the prompt.
        image (`str | None`): image file name, if the file gives one.
        metadata (`dict`): the row's other fields.
    """

    line: int
    prompt: str
    image: str | None
    metadata: dict


class BadRow(NamedTuple):
    """A row that could not be used: its line number and why."""

    line: int
    reason: str


def _row(line: int, obj: object) -> PromptRow | BadRow:
    if not isinstance(obj, dict):
        return BadRow(line, f"expected an object with a 'prompt', got {type(obj).__name__}")
    prompt = obj.get("prompt")
    if not isinstance(prompt, str) or not prompt.strip():
        return BadRow(line, f"'prompt' must be a non-empty string, got {prompt!r}")
    image = obj.get("image")
    if image is not None and (not isinstance(image, str) or not image):
        return BadRow(line, f"'image' must be a file name, got {image!r}")
    meta = {k: v for k, v in obj.items() if k not in ("prompt", "image")}
    return PromptRow(line, prompt, image or None, meta)


def read_prompts(path: str | Path) -> tuple[list[PromptRow], list[BadRow]]:
    """Parse `path` (``.jsonl`` / ``.json`` lines, ``.csv`` or ``.txt``) into good and bad rows.

    Args:
        path (`str | Path`): the prompts file.

    Returns:
        `(rows, bad)`: usable rows in file order, and the bad ones with their line numbers and reasons.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"Prompts file {path} does not exist; pass a .jsonl or .csv file with 'prompt', or a .txt file."
        )
    rows: list[PromptRow] = []
    bad: list[BadRow] = []
    if path.suffix.lower() == ".csv":
        with path.open(newline="", encoding="utf-8") as f:
            reader = csv.reader(f)
            header = next(reader, None)
            if header is None or "prompt" not in header:
                raise ValueError(f"{path}: the CSV header must have a 'prompt' column; got {header}.")
            for record in reader:
                line = reader.line_num
                if not any(cell.strip() for cell in record):
                    continue
                if len(record) != len(header):
                    bad.append(BadRow(line, f"{len(record)} fields for {len(header)} columns {header}"))
                    continue
                fields = {k: v for k, v in zip(header, record, strict=True) if not (k == "image" and v == "")}
                item = _row(line, fields)
                (rows if isinstance(item, PromptRow) else bad).append(item)
        return rows, bad
    if path.suffix.lower() == ".txt":
        for line, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            if text.strip() and not text.startswith("#"):
                rows.append(PromptRow(line, text.strip(), None, {}))
        return rows, bad
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise ValueError(
            f"{path}: unknown prompts format {path.suffix!r}; use .jsonl (a JSON object a line), .csv, or .txt (one "
            "prompt a line)."
        )
    for line, obj in jsonl_lines(path):
        if isinstance(obj, json.JSONDecodeError):
            bad.append(BadRow(line, f"invalid JSON ({obj.msg})"))
            continue
        item = _row(line, obj)
        (rows if isinstance(item, PromptRow) else bad).append(item)
    return rows, bad
