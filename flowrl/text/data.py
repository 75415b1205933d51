"""Text tasks from JSONL files: one row per line with a 'prompt' and an 'answer' (extra columns are kept)."""

from __future__ import annotations

import json
from pathlib import Path

import torch


def load_jsonl(path: str | Path, *, what: str = "task file") -> list[dict]:
    """Rows of a JSONL file; each must be an object with string-able 'prompt' and 'answer'.

    Raises:
        FileNotFoundError: no such file.
        ValueError: invalid JSON (with the line number), a row without 'prompt' / 'answer', or no rows at all.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"The {what} {str(path)!r} does not exist.")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as e:
            raise ValueError(f"{path}:{n}: not valid JSON ({e}); each line must be one JSON object.") from e
        if not isinstance(row, dict) or "prompt" not in row or "answer" not in row:
            raise ValueError(
                f"{path}:{n}: each row must be an object with 'prompt' and 'answer' keys, got {line[:80]!r}."
            )
        rows.append(row)
    if not rows:
        raise ValueError(
            f"The {what} {str(path)!r} holds no rows. Write one JSON object per line, e.g. "
            '{"prompt": "12+34=", "answer": "46"}.'
        )
    return rows


def step_rows(num_rows: int, per_step: int, *, seed: int, step: int) -> list[int]:
    """Row indices of one step: consecutive slices of a fresh permutation per epoch, derived from (seed, epoch) only,
    so any step's prompts can be recomputed (resume needs no data-loader state)."""
    out = []
    for k in range(step * per_step, (step + 1) * per_step):
        epoch, pos = divmod(k, num_rows)
        perm = torch.randperm(num_rows, generator=torch.Generator().manual_seed(seed * 1_000_003 + epoch))
        out.append(int(perm[pos]))
    return out
