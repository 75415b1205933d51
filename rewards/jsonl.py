"""The lines of a JSON Lines file, parsed one by one, for readers that report every bad line at once."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path


def jsonl_lines(path: str | Path) -> Iterator[tuple[int, object]]:
    """``(line number, parsed value)`` for each non-blank line of `path` (UTF-8), numbered from 1.

    A line that is not valid JSON yields its `json.JSONDecodeError` as the value instead of raising, so a reader can
    collect every bad line into one message.
    """
    for line, text in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        if not text.strip():
            continue
        try:
            yield line, json.loads(text)
        except json.JSONDecodeError as err:
            yield line, err
