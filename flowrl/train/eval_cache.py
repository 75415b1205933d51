"""A cache of base-model evaluations: the same model and evaluation settings always give the same numbers.

The evaluation before training (the paired baseline of a run's final lines) depends only on the model folder's
files and the evaluation settings (prompts, seeds, steps, CFG, grid, shift): LoRA starts as the identity (B = 0), a
fully fine-tuned policy starts as the base, and EMA starts at the policy. So every run of the shipped model with
the default evaluation would repeat the same minutes of sampling; this cache keeps the result under
``<run.root>/.base_eval_cache/<key>.json`` where the key is a SHA-256 of the model folder's files (their bytes)
and of the settings. Change either and the key changes. ``eval.cache_base=false`` turns it off.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

CACHE_DIR = ".base_eval_cache"


def folder_digest(folder: str | Path) -> str:
    """SHA-256 over the relative paths and bytes of every file in `folder` (sorted; hidden files skipped)."""
    digest = hashlib.sha256()
    root = Path(folder)
    for path in sorted(p for p in root.rglob("*") if p.is_file() and not p.name.startswith(".")):
        digest.update(str(path.relative_to(root)).encode())
        with path.open("rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def cache_key(model_folder: str | Path, settings: dict) -> str:
    """The key of one (model, evaluation settings) pair; `settings` must be JSON-serialisable."""
    text = json.dumps(settings, sort_keys=True, default=str)
    return hashlib.sha256(f"{folder_digest(model_folder)}|{text}".encode()).hexdigest()[:32]


def load(root: str | Path, key: str) -> dict | None:
    """The cached evaluation of `key`, or None."""
    path = Path(root) / CACHE_DIR / f"{key}.json"
    return json.loads(path.read_text()) if path.is_file() else None


def store(root: str | Path, key: str, record: dict) -> None:
    """Write `record` for `key` atomically (temp file, then os.replace)."""
    folder = Path(root) / CACHE_DIR
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{key}.tmp"
    tmp.write_text(json.dumps(record))
    os.replace(tmp, folder / f"{key}.json")
