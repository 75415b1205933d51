"""Checkpoints that resume bit-exactly: one folder per step, written atomically, loaded without unpickling code.

The `state` dict has a fixed layout (every key optional except `"model"`)::

    {
        "model": model.state_dict(),          # dict[str, Tensor]            -> model.safetensors (+ model_extra.pt)
        "optimizer": optimizer.state_dict(),  # nested dict of tensors/numbers -> optimizer.pt
        "ema": ema_state_dict or None,        # dict[str, Tensor]            -> ema.safetensors (+ ema_extra.pt)
        "old_policy": lagged_weights or None, # dict[str, Tensor]            -> old_policy.safetensors (DiffusionNFT)
        "rng": capture_rng_state(...),        # from this module             -> rng.pt
        "trainer": {"step": 100, ...},        # plain Python scalars/lists   -> trainer.pt
        "config": resolved_yaml_text,         # str                          -> config.yaml
    }

Folder `run_dir/checkpoints/step_{step:06d}/` holds those files plus `meta.json` (`{"format": 1, "step": ...}`).
Plain tensors of model/EMA state dicts go to safetensors; entries that are not plain tensors (e.g. a module's extra
state) go to `*_extra.pt`. Everything `.pt` is checked at save time to contain only types that
`torch.load(weights_only=True)` accepts, and is loaded that way.

Atomicity: files are written into a hidden temp folder `checkpoints/.tmp-step_...` in the same directory, fsynced,
then renamed to `step_{step:06d}` with `os.replace`. `latest_checkpoint` only considers `step_*` folders that hold
`meta.json`, so a crash at any point leaves the previous checkpoint as the latest.
"""

from __future__ import annotations

import json
import os
import random
import re
import shutil
import uuid
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

CHECKPOINT_DIR = "checkpoints"
FORMAT = 1
STATE_KEYS = ("model", "optimizer", "ema", "old_policy", "rng", "trainer", "config")
_TENSOR_STATES = ("ema", "old_policy")  # optional tensor dicts, saved like the model
_STEP_RE = re.compile(r"step_(\d+)")
_TMP_PREFIX = ".tmp-"
_TRASH_PREFIX = ".trash-"
# Exact types that torch.load(weights_only=True) reconstructs without allowlisting (subclasses such as numpy.float64
# or defaultdict are refused by the loader, so they are matched by exact type here).
_SAFE_MAPPINGS = (dict, OrderedDict)
_SAFE_SEQUENCES = (list, tuple, set, torch.Size)
_SAFE_LEAVES = (
    torch.Tensor,
    torch.nn.Parameter,
    str,
    bytes,
    int,
    float,
    bool,
    complex,
    type(None),
    torch.dtype,
    torch.device,
)


def capture_rng_state(generators: Sequence[torch.Generator] = ()) -> dict[str, Any]:
    """Snapshot every random number generator a training step may draw from.

    Covers Python's `random`, NumPy's legacy global generator (`np.random.*`; `np.random.Generator` objects are not
    global and must be saved by their owner), torch's CPU generator, every CUDA device's generator when CUDA is
    available, and the explicit `generators` (e.g. a data sampler's or rollout's `torch.Generator`).

    Args:
        generators (`Sequence[torch.Generator]`, defaults to `()`): Extra generators, restored in the same order.

    Returns:
        `dict[str, Any]`: `{"python", "numpy", "torch", "cuda", "generators"}`, made only of tensors, ints, floats,
        lists and `None`, so it loads with `torch.load(weights_only=True)`.
    """
    version, mt, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {
        "python": [version, list(mt), gauss],
        "numpy": [name, torch.from_numpy(keys.astype(np.int64)), int(pos), int(has_gauss), float(cached)],
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
        "generators": [g.get_state() for g in generators],
    }


def restore_rng_state(state: dict[str, Any], generators: Sequence[torch.Generator] = ()) -> None:
    """Restore generators captured by `capture_rng_state` (the same `generators`, in the same order).

    Args:
        state (`dict[str, Any]`): The output of `capture_rng_state`, possibly after a save/load round trip.
        generators (`Sequence[torch.Generator]`, defaults to `()`): Generators to restore, matching those captured.

    Raises:
        ValueError: the number of `generators` or of CUDA devices differs from the captured one.
    """
    if len(generators) != len(state["generators"]):
        raise ValueError(
            f"restore_rng_state got {len(generators)} generators but the state holds {len(state['generators'])}; "
            "pass the same generators, in the same order, as to capture_rng_state."
        )
    cuda = state["cuda"]
    n_cuda = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if cuda is not None and len(cuda) != n_cuda:
        raise ValueError(
            f"The RNG state holds {len(cuda)} CUDA generator states but this process sees {n_cuda} CUDA devices, so "
            "the run cannot continue bit-exactly. Resume on the same devices, or set state['cuda'] = None to accept "
            "fresh CUDA randomness."
        )
    version, mt, gauss = state["python"]
    random.setstate((version, tuple(mt), gauss))
    name, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((name, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    torch.set_rng_state(state["torch"])
    if cuda is not None:
        torch.cuda.set_rng_state_all(cuda)
    for g, s in zip(generators, state["generators"], strict=True):
        g.set_state(s)


def _check_weights_only(obj: object, where: str) -> None:
    # Fail at save time, naming the offending entry, instead of at resume time inside torch.load.
    if type(obj) in _SAFE_MAPPINGS:
        for k, v in obj.items():
            _check_weights_only(k, f"{where} key {k!r}")
            _check_weights_only(v, f"{where}[{k!r}]")
    elif type(obj) in _SAFE_SEQUENCES:
        for i, v in enumerate(obj):
            _check_weights_only(v, f"{where}[{i}]")
    elif type(obj) not in _SAFE_LEAVES:
        raise TypeError(
            f"{where} is a {type(obj).__module__}.{type(obj).__name__}, which torch.load(weights_only=True) cannot "
            "load back. Convert it to tensors or plain Python values (e.g. `.tolist()`, `torch.from_numpy`, `int(x)`)."
        )


def _fsynced_torch_save(obj: object, path: Path) -> None:
    with path.open("wb") as f:
        torch.save(obj, f)
        f.flush()
        os.fsync(f.fileno())


def _save_tensor_dict(sd: dict[str, Any], folder: Path, stem: str, where: str) -> list[str]:
    # Plain tensors -> {stem}.safetensors (tied/shared or non-contiguous ones are copied); the rest -> {stem}_extra.pt.
    plain, extra, seen = {}, {}, set()
    for k, v in sd.items():
        if type(v) in (torch.Tensor, torch.nn.Parameter):
            v = v.detach()
            ptr = (v.untyped_storage().data_ptr(), v.device)
            shared = ptr in seen and v.untyped_storage().nbytes() > 0
            seen.add(ptr)
            plain[k] = v.clone() if shared or not v.is_contiguous() else v
        else:
            extra[k] = v
    files = [f"{stem}.safetensors"]
    save_file(plain, str(folder / files[0]), metadata={"format": str(FORMAT)})
    _fsync_file(folder / files[0])
    if extra:
        _check_weights_only(extra, where)
        files.append(f"{stem}_extra.pt")
        _fsynced_torch_save(extra, folder / files[1])
    return files


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _checkpoints(run_dir: Path) -> list[tuple[int, Path]]:
    # Complete checkpoints (named step_N, holding meta.json), sorted by step.
    root = run_dir / CHECKPOINT_DIR
    if not root.is_dir():
        return []
    found = []
    for p in root.iterdir():
        m = _STEP_RE.fullmatch(p.name)
        if m and (p / "meta.json").is_file():
            found.append((int(m.group(1)), p))
    return sorted(found)


def _remove(path: Path) -> None:
    # Rename first so a crash mid-delete never leaves a partial step_* folder behind.
    trash = path.with_name(f"{_TRASH_PREFIX}{path.name}-{uuid.uuid4().hex[:8]}")
    os.replace(path, trash)
    shutil.rmtree(trash)


def save_checkpoint(run_dir: str | Path, step: int, state: dict[str, Any], *, keep_last: int | None = 3) -> Path:
    """Write `state` to `run_dir/checkpoints/step_{step:06d}/` atomically, then prune old checkpoints.

    Re-saving an existing step replaces that checkpoint. Leftover temp folders from crashed saves are removed.

    Args:
        run_dir (`str` or `Path`):
            The run folder.
        step (`int`):
            Optimizer step the state belongs to (training continues at this step after `load_checkpoint`).
        state (`dict[str, Any]`):
            The layout described in this module's docstring; `"model"` is required, the other keys of
            `STATE_KEYS` are optional (`None` or absent means not saved).
        keep_last (`int`, *optional*, defaults to `3`):
            Keep only the newest `keep_last` checkpoints (deleted after the new one is in place); `None` keeps all.

    Returns:
        `Path`: the checkpoint folder.

    Raises:
        KeyError: `state` has a key outside `STATE_KEYS`, or lacks `"model"`.
        TypeError: an entry would not load with `torch.load(weights_only=True)` (the message names it).
        FileExistsError: a checkpoint of a later step exists (the run was resumed from an older checkpoint).
    """
    if keep_last is not None and keep_last < 1:
        raise ValueError(f"keep_last must be >= 1 or None (keep all), got {keep_last}.")
    unknown = [k for k in state if k not in STATE_KEYS]
    if unknown or state.get("model") is None:
        raise KeyError(
            f"Checkpoint state keys must be among {', '.join(STATE_KEYS)} with 'model' required; got {sorted(state)}. "
            "Put extra counters under state['trainer']."
        )
    if state.get("config") is not None and not isinstance(state["config"], str):
        raise TypeError(f"state['config'] must be the resolved YAML text (str), got {type(state['config']).__name__}.")
    run_dir = Path(run_dir)
    later = [p for s, p in _checkpoints(run_dir) if s > step]
    if later:
        raise FileExistsError(
            f"Saving step {step} but {later[-1]} is newer: this run was resumed from an older checkpoint, and its "
            "later checkpoints belong to the abandoned continuation. Move or delete them before resuming from an "
            "older step."
        )
    for name in ("optimizer", "rng", "trainer"):
        if state.get(name) is not None:
            _check_weights_only(state[name], f"state[{name!r}]")

    root = run_dir / CHECKPOINT_DIR
    root.mkdir(parents=True, exist_ok=True)
    for p in root.iterdir():  # leftovers of saves or deletions that crashed
        if p.name.startswith((_TMP_PREFIX, _TRASH_PREFIX)):
            shutil.rmtree(p)
    final = root / f"step_{step:06d}"
    tmp = root / f"{_TMP_PREFIX}{final.name}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    try:
        files = _save_tensor_dict(state["model"], tmp, "model", "state['model']")
        for name in _TENSOR_STATES:
            if state.get(name) is not None:
                files += _save_tensor_dict(state[name], tmp, name, f"state[{name!r}]")
        for name in ("optimizer", "rng", "trainer"):
            if state.get(name) is not None:
                _fsynced_torch_save(state[name], tmp / f"{name}.pt")
                files.append(f"{name}.pt")
        if state.get("config") is not None:
            (tmp / "config.yaml").write_text(state["config"], encoding="utf-8")
            _fsync_file(tmp / "config.yaml")
            files.append("config.yaml")
        meta = json.dumps({"format": FORMAT, "step": int(step), "files": files}, indent=1)
        (tmp / "meta.json").write_text(meta, encoding="utf-8")  # written last: marks the folder complete
        _fsync_file(tmp / "meta.json")
        if final.exists():
            _remove(final)
        os.replace(tmp, final)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    fd = os.open(root, os.O_RDONLY)  # make the rename durable
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    if keep_last is not None:
        for _, p in _checkpoints(run_dir)[:-keep_last]:
            _remove(p)
    return final


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The complete checkpoint folder with the highest step under `run_dir/checkpoints/`, or `None` if there is none.

    Temp folders of interrupted saves and `step_*` folders without `meta.json` are never returned.
    """
    found = _checkpoints(Path(run_dir))
    return found[-1][1] if found else None


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint folder written by `save_checkpoint`, with `torch.load(weights_only=True)` only.

    Args:
        path (`str` or `Path`): A `step_*` folder, e.g. `latest_checkpoint(run_dir)`.
        map_location (`str` or `torch.device`, defaults to `"cpu"`): Device for the loaded tensors.

    Returns:
        `dict[str, Any]`: `{"step": int, "model", "optimizer", "ema", "old_policy", "rng", "trainer", "config"}`,
        with `None` for parts that were not saved. Feed `"rng"` to `restore_rng_state`, the others to
        `load_state_dict`.
    """
    path = Path(path)
    meta_path = path / "meta.json"
    if not meta_path.is_file():
        raise FileNotFoundError(f"{path} is not a complete checkpoint (no meta.json); use latest_checkpoint(run_dir).")
    meta = json.loads(meta_path.read_text(encoding="utf-8"))
    if meta["format"] != FORMAT:
        raise ValueError(f"{path} has checkpoint format {meta['format']}; this flowrl reads format {FORMAT}.")
    files = set(meta["files"])
    device = str(torch.device(map_location))

    def tensors(stem: str) -> dict[str, Any] | None:
        if f"{stem}.safetensors" not in files:
            return None
        sd: dict[str, Any] = load_file(str(path / f"{stem}.safetensors"), device=device)
        if f"{stem}_extra.pt" in files:
            sd.update(torch.load(path / f"{stem}_extra.pt", map_location=map_location, weights_only=True))
        return sd

    out: dict[str, Any] = {"step": meta["step"], "model": tensors("model")}
    out.update({name: tensors(name) for name in _TENSOR_STATES})
    for name in ("optimizer", "rng", "trainer"):
        out[name] = (
            # RNG states must stay CPU byte tensors whatever the map_location
            torch.load(path / f"{name}.pt", map_location="cpu" if name == "rng" else map_location, weights_only=True)
            if f"{name}.pt" in files
            else None
        )
    out["config"] = (path / "config.yaml").read_text(encoding="utf-8") if "config.yaml" in files else None
    return out
