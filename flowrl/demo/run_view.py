"""What the demo shows of a run folder: its curves plot, its held-out sample grids and a metrics summary.

Images are opened here, in the server process, and handed to Gradio as pictures, so the page never serves or reads
a path of its own choosing.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

from PIL import Image

from flowrl.runtime.metrics import read_metrics

MAX_GRIDS = 8
_HEADLINES = ("eval/strict/overall", "eval/score/overall", "reward_mean")


class RunView(NamedTuple):
    """A run's pictures and summary.

    Args:
        curves (`Image.Image | None`): ``curves.png``, or None when the run has none yet.
        grids (`list[tuple[Image.Image, str]]`): the last `MAX_GRIDS` ``samples/eval_*.png`` with their names.
        summary (`str`): markdown summary of ``metrics.jsonl`` (first and last value of the headline metrics).
    """

    curves: Image.Image | None
    grids: list[tuple[Image.Image, str]]
    summary: str


def _open(path: Path) -> Image.Image:
    with Image.open(path) as img:
        return img.convert("RGB")


def _summary(run_dir: Path) -> str:
    path = run_dir / "metrics.jsonl"
    if not path.is_file():
        return f"No metrics.jsonl in {run_dir}."
    records = read_metrics(path)
    lines = [f"**{run_dir}**: {len(records)} logged steps."]
    for key in _HEADLINES:
        values = [(r["step"], r[key]) for r in records if r.get(key) is not None]
        if values:
            (s0, v0), (s1, v1) = values[0], values[-1]
            lines.append(f"- `{key}`: {v0:.4f} at step {s0} → {v1:.4f} at step {s1}")
    return "\n".join(lines)


def load_run_view(run_dir: str | Path) -> RunView:
    """Read the curves, the latest sample grids and the metrics summary of a `flowrl train` run folder."""
    run_dir = Path(run_dir)
    curves = run_dir / "curves.png"
    grids = sorted((run_dir / "samples").glob("eval_*.png"))[-MAX_GRIDS:]
    return RunView(
        curves=_open(curves) if curves.is_file() else None,
        grids=[(_open(path), path.stem) for path in grids],
        summary=_summary(run_dir),
    )
