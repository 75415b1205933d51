"""Write and read score files (CSV and JSON), the summary table, and the Markdown report with image grids."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from flowrl.eval.stats import Comparison, Summary
from flowrl.runtime.plots import save_image_grid

ROW_FIELDS = ("index", "prompt", "image", "sample", "seed")


def write_scores(out: Path, rows: list[dict], names: list[str], scores: np.ndarray) -> tuple[Path, Path]:
    """``scores.csv`` (one line per image: the row fields, then one column per reward) and ``scores.json``
    (``{"rewards": [...], "rows": [{..., "scores": {name: value}}]}``). Returns both paths."""
    out.mkdir(parents=True, exist_ok=True)
    with (out / "scores.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow([*ROW_FIELDS, *names])
        for row, values in zip(rows, scores, strict=True):
            writer.writerow([row.get(k, "") for k in ROW_FIELDS] + [repr(float(v)) for v in values])
    records = [
        {
            **{k: row.get(k) for k in ROW_FIELDS},
            "metadata": row.get("metadata", {}),
            "scores": dict(zip(names, map(float, v), strict=True)),
        }
        for row, v in zip(rows, scores, strict=True)
    ]
    (out / "scores.json").write_text(json.dumps({"rewards": names, "rows": records}, indent=1, allow_nan=True) + "\n")
    return out / "scores.csv", out / "scores.json"


def read_scores(path: str | Path) -> tuple[list[dict], list[str], np.ndarray]:
    """Read a ``scores.json`` or ``scores.csv`` written by `write_scores` (or the ``scores.json`` of an output
    folder of `flowrl eval`): rows, reward names, `(N, K)` scores."""
    path = Path(path)
    if path.is_dir():
        path = path / "scores.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"Score file {path} does not exist; pass a scores.json or scores.csv from flowrl eval."
        )
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        names = list(data["rewards"])
        rows = data["rows"]
        scores = np.array([[r["scores"][n] for n in names] for r in rows], dtype=np.float64).reshape(
            len(rows), len(names)
        )
        return rows, names, scores
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        names = [c for c in reader.fieldnames or [] if c not in ROW_FIELDS]
        if "prompt" not in (reader.fieldnames or []):
            raise ValueError(f"{path} has no 'prompt' column; it is not a flowrl eval score file.")
        records = list(reader)
    scores = np.array([[float(r[n]) for n in names] for r in records], dtype=np.float64).reshape(
        len(records), len(names)
    )
    return records, names, scores


def summary_markdown(summaries: dict[str, Summary], *, confidence: float = 0.95) -> str:
    """A Markdown table: reward, n, mean, std, CI."""
    pct = f"{100 * confidence:g}%"
    lines = [f"| reward | n | mean | std | {pct} CI |", "|---|---:|---:|---:|---|"]
    for name, s in summaries.items():
        lines.append(f"| {name} | {s.n} | {s.mean:.4f} | {s.std:.4f} | [{s.ci_low:.4f}, {s.ci_high:.4f}] |")
    return "\n".join(lines)


def write_summary(out: Path, summaries: dict[str, Summary]) -> Path:
    """``summary.json`` and ``summary.csv`` (one line per reward). Returns the JSON path."""
    (out / "summary.json").write_text(json.dumps({k: s._asdict() for k, s in summaries.items()}, indent=1) + "\n")
    with (out / "summary.csv").open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f)
        writer.writerow(["reward", *Summary._fields])
        for name, s in summaries.items():
            writer.writerow([name, *s])
    return out / "summary.json"


def comparison_markdown(comparisons: dict[str, Comparison], a: str, b: str) -> str:
    """A Markdown table of `--compare A B`: per reward, A's win rate over prompts and mean A - B, each with its
    95% bootstrap CI over prompts."""
    lines = [
        f"A = `{a}`, B = `{b}`; win rate = share of prompts where A's mean score beats B's (ties count half).",
        "",
        "| reward | prompts | A win rate | 95% CI | ties | mean A - B | 95% CI |",
        "|---|---:|---:|---|---:|---:|---|",
    ]
    for name, c in comparisons.items():
        lines.append(
            f"| {name} | {c.prompts} | {c.win_rate:.3f} | [{c.win_ci_low:.3f}, {c.win_ci_high:.3f}] | "
            f"{c.tie_rate:.3f} | {c.mean_diff:+.4f} | [{c.ci_low:+.4f}, {c.ci_high:+.4f}] |"
        )
    return "\n".join(lines)


def _common_size(images: list[torch.Tensor]) -> torch.Tensor:
    """Stack images for display, resizing (bilinear) any that differ from the largest one's size."""
    h = max(img.shape[1] for img in images)
    w = max(img.shape[2] for img in images)
    resized = [
        img if img.shape[1:] == (h, w) else F.interpolate(img[None], size=(h, w), mode="bilinear", antialias=True)[0]
        for img in images
    ]
    return torch.stack(resized).clamp(0, 1)  # (N, 3, H, W)


def write_report(
    out: Path,
    *,
    title: str,
    summaries: dict[str, Summary],
    names: list[str],
    scores: np.ndarray,
    rows: list[dict],
    images: list[torch.Tensor],
    k: int = 4,
    notes: list[str] = (),
) -> Path:
    """``report.md``: the summary table and, per reward, a grid of its `k` best and `k` worst samples
    (``grid_<reward>.png``, top row best, bottom row worst, each captioned with its score and prompt)."""
    lines = [f"# {title}", "", *notes, "", summary_markdown(summaries), ""]
    for j, name in enumerate(names):
        finite = np.flatnonzero(np.isfinite(scores[:, j]))
        if len(finite) == 0:
            lines += [f"## {name}", "", "No finite scores.", ""]
            continue
        order = finite[np.argsort(-scores[finite, j], kind="stable")]
        n = min(k, len(order))
        best, worst = order[:n], order[::-1][:n]
        picked = [*best, *worst]
        captions = [f"{scores[i, j]:.3f} {rows[i]['prompt']}" for i in picked]
        scale = max(1, 128 // max(images[picked[0]].shape[1:]))
        grid_name = f"grid_{''.join(c if c.isalnum() or c in '._-' else '_' for c in name)}.png"
        save_image_grid(
            _common_size([images[i] for i in picked]), out / grid_name, nrow=n, captions=captions, scale=scale
        )
        lines += [
            f"## {name}",
            "",
            f"Top row: the {n} best samples; bottom row: the {n} worst.",
            "",
            f"![{name}]({grid_name})",
            "",
        ]
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    return path
