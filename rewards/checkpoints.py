"""Where reward checkpoints live, and how they load: local paths first, a hub id only when the user passes one.

A reward looks for its file under ``$FLOWRL_REWARDS_HOME`` (default ``~/.cache/flowrl/rewards``) unless it is given
``path=``. A missing file raises `MissingCheckpointError` naming the reward, the path looked at, the file
expected and where it is published. Weights load with safetensors or ``torch.load(weights_only=True)`` only.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import NamedTuple

import torch

HOME_ENV = "FLOWRL_REWARDS_HOME"


class Checkpoint(NamedTuple):
    """An official checkpoint a reward needs.

    Args:
        reward (`str`): the reward's name.
        default (`str`): file or folder name under the rewards home.
        expected (`str`): what must be there (e.g. "config.json and model.safetensors").
        published (`str`): where the original is published.
        hub_file (`str | None`): file name inside the hub repository for single-file checkpoints; None for folders.
    """

    reward: str
    default: str
    expected: str
    published: str
    hub_file: str | None = None


class MissingCheckpointError(FileNotFoundError):
    """A reward's checkpoint is not on disk (the message says where to get it)."""


def rewards_home() -> Path:
    """``$FLOWRL_REWARDS_HOME``, default ``~/.cache/flowrl/rewards``."""
    return Path(os.environ.get(HOME_ENV, "~/.cache/flowrl/rewards")).expanduser()


def resolve(spec: Checkpoint, path: str | os.PathLike | None = None, *, hub_id: str | None = None) -> Path:
    """The local path of `spec`: `path` if given, else ``rewards_home() / spec.default``; or a hub download.

    Args:
        spec (`Checkpoint`): what the reward needs.
        path (`str | os.PathLike`, *optional*): an explicit local file or folder.
        hub_id (`str`, *optional*): a Hugging Face repository id; only then is anything downloaded (through
            `huggingface_hub`, into its cache).

    Returns:
        `Path`: an existing file or folder.
    """
    if hub_id is not None:
        import huggingface_hub

        if spec.hub_file is None:
            return Path(huggingface_hub.snapshot_download(hub_id))
        return Path(huggingface_hub.hf_hub_download(hub_id, spec.hub_file))
    where = Path(path).expanduser() if path is not None else rewards_home() / spec.default
    if not where.exists():
        raise MissingCheckpointError(
            f"Reward {spec.reward!r}: no checkpoint at {where} (expected {spec.expected}). It is published at "
            f"{spec.published}. Put it there, pass path=<local path>, set ${HOME_ENV} to the folder holding "
            f"{spec.default!r}, or pass hub_id=<repository> to download it."
        )
    return where


def load_state_dict(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """Load a state dict from ``.safetensors`` or a pickle (``torch.load(weights_only=True)``), unwrapping a
    top-level ``{"state_dict": ...}`` (open_clip / HPSv2 layout)."""
    path = Path(path)
    if path.suffix == ".safetensors":
        from safetensors.torch import load_file

        return load_file(str(path))
    obj = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(
            f"{path} does not hold a state dict (a dict of tensors, or {{'state_dict': ...}}); it holds a "
            f"{type(obj).__name__}. Pass the checkpoint file itself, not a training snapshot or a model pickle."
        )
    return obj


def check_vocab(reward: str, tokenizer_size: int, vocab_size: int, *, source: str) -> None:
    """Raise if the tokenizer can produce ids the model's embedding table does not have."""
    if tokenizer_size > vocab_size:
        raise ValueError(
            f"Reward {reward!r}: the tokenizer from {source} has {tokenizer_size} tokens but the checkpoint's text "
            f"embedding has {vocab_size} rows; pass the tokenizer that belongs to this checkpoint (tokenizer_path= / "
            "vocab_path=)."
        )
