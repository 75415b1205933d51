"""Load the model `flowrl sample`, `flowrl eval` and `flowrl demo` draw from: any model `flowrl train` accepts.

Three ways to name it, combinable as on the command line:

* ``--model FOLDER``: a ShapeWorld model folder or a diffusers pipeline folder (SD3 / SD3.5, FLUX.1); the kind is
  detected from the folder (`flowrl.models.detect.detect_kind`) unless ``--kind`` says it;
* ``--lora PATH``: a LoRA in diffusers' layout loaded on top of it (`flowrl.models.lora.load_lora`);
* ``--run runs/<name>``: a `flowrl train` run folder. Its ``config.yaml`` gives the base model (``model.path``,
  overridden by ``--model``), the kind and the evaluation defaults (steps, guidance, resolution); its weights are
  ``lora/`` (LoRA, applied to the base), ``final/`` (a complete model folder, ShapeWorld full fine-tuning) or
  ``final/transformer/`` (SD3 / FLUX full fine-tuning, swapped into the base pipeline). When the run trained with
  EMA (``train.ema_decay > 0``) those saved weights are the EMA copy, the weights every evaluation of the trainer
  used; ``--no-ema`` loads the raw (not averaged) trained weights of the latest checkpoint instead.

Every model is wrapped in its `flowrl.models` adapter, so sampling goes through the same velocity, CFG and decoding
code as training.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NamedTuple

import torch

from flowrl.models.detect import MODEL_KINDS, SHAPEWORLD_META, detect_kind

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
# Sampling defaults of a base model without a run: SD3.5-M's model card (40 steps, CFG 4.5; Flow-GRPO's eval uses the
# same) and FLUX.1-dev's (28 steps, no true CFG: the distilled guidance 3.5 goes to the guidance embedding).
DEFAULT_SAMPLING = {"sd3": (40, 4.5), "flux": (28, 1.0)}
DEFAULT_RESOLUTION = 512  # SD3 / FLUX, as the adapters' and the trainer's default
EMBEDDED_GUIDANCE = 3.5  # FLUX.1-dev, when the transformer has a guidance embedding
RAW_FILE = "model.safetensors"  # a checkpoint's trained weights (LoRA peft keys, or the full transformer state)


class LoadedModel(NamedTuple):
    """A model ready to sample, with its sampling defaults.

    Args:
        adapter: the `flowrl.models` adapter (`ImageAdapter`).
        kind (`str`): 'shapeworld', 'sd3' or 'flux'.
        num_inference_steps (`int`): default Euler steps.
        guidance_scale (`float`): default CFG scale (FLUX: true CFG, 1 = none).
        image_size (`int`): image height and width in pixels.
        source (`str`): one line saying where the weights came from (shown in reports and the demo).
        grid (`str`): time grid of the sampler (`flowrl.flow.grid.GRIDS`): the run's ``method.grid``, else the
            pipeline's own (`flowrl.train.estimators.MODEL_GRIDS`: 'sd3' for SD3 and ShapeWorld, 'linear' for FLUX).
        folder (`Path`): the model folder the adapter loaded (the base of a LoRA, or a run's complete ``final/``).
        lora (`Path`, *optional*): the LoRA loaded on the transformer (switch it off with
            ``adapter.transformer.disable_adapters()`` to sample the base model), None when there is none.
    """

    adapter: object
    kind: str
    num_inference_steps: int
    guidance_scale: float
    image_size: int
    source: str
    grid: str
    folder: Path
    lora: Path | None = None


class _RunWeights(NamedTuple):
    base: Path
    kind: str
    model_folder: Path  # the folder the adapter loads (the base, or a run's complete final/ folder)
    transformer: Path | None  # a run's final/transformer/ to swap in
    lora: Path | None
    lora_alpha: float | None
    steps: int
    guidance: float
    resolution: int
    embedded_guidance: float
    max_sequence_length: int  # T5 tokens per prompt the run trained with (0 = the adapter's default)
    ema_decay: float  # > 0: the run trained with EMA, and its final weights are the EMA copy
    grid: str  # the time grid the run evaluated on


def _model_folder(folder: Path) -> bool:
    return (folder / SHAPEWORLD_META).is_file() or (folder / "model_index.json").is_file()


def _run_weights(run: Path, model: str | Path | None) -> _RunWeights:
    """What a run folder's config and files say to load."""
    from flowrl.config import ConfigError
    from flowrl.train.adapters import resolve_model_path
    from flowrl.train.estimators import grid_name
    from flowrl.train.image_cli import resume_config

    if not run.is_dir():
        raise FileNotFoundError(f"Run folder {str(run)!r} does not exist; pass --run with a `flowrl train` run.")
    try:
        cfg = resume_config(run, [])
    except ConfigError as e:
        raise ValueError(f"{e} (--run takes the folder `flowrl train` wrote, e.g. runs/<name>)") from None
    m = cfg.model
    try:
        base = Path(model) if model is not None else resolve_model_path(m.path)
    except FileNotFoundError:
        raise FileNotFoundError(
            f"{run}/config.yaml trained on model.path {m.path!r}, which is not a folder here; pass --model with the "
            "local folder of that base model."
        ) from None
    final, lora = run / "final", run / "lora"
    transformer = None
    model_folder = base
    if m.lora_rank > 0:
        if not lora.is_dir():
            raise FileNotFoundError(_unfinished(run, f"lora/ (the run trained LoRA rank {m.lora_rank})"))
    elif _model_folder(final):
        model_folder = final
    elif (final / "transformer").is_dir():
        transformer = final / "transformer"
    else:
        raise FileNotFoundError(_unfinished(run, "final/ (the run fine-tuned every weight)"))
    resolution = cfg.eval.resolution or m.resolution
    return _RunWeights(
        base=base,
        kind=m.kind,
        model_folder=model_folder,
        transformer=transformer,
        lora=lora if m.lora_rank > 0 else None,
        lora_alpha=m.lora_alpha,
        steps=cfg.eval.num_inference_steps,
        guidance=cfg.eval.guidance_scale,
        resolution=resolution,
        embedded_guidance=m.embedded_guidance,
        max_sequence_length=m.max_sequence_length,
        ema_decay=cfg.train.ema_decay,
        grid=grid_name(cfg),
    )


def _unfinished(run: Path, what: str) -> str:
    return (
        f"Run folder {run} has no {what}: the trainer writes the final weights when the run ends. Finish or resume "
        f"it with `flowrl train --resume {run}`."
    )


def _shapeworld_defaults(folder: Path) -> tuple[int, float, int]:
    meta = json.loads((folder / SHAPEWORLD_META).read_text())
    return int(meta["num_inference_steps"]), float(meta["guidance_scale"]), int(meta["image_size"])


def build_adapter(
    kind: str,
    folder: Path,
    *,
    transformer: Path | None = None,
    guidance_scale: float,
    device: str,
    dtype: torch.dtype,
    resolution: int,
    embedded_guidance: float = EMBEDDED_GUIDANCE,
    max_sequence_length: int = 0,
):
    """The adapter of `kind` on a local folder, for sampling (no reference copy; the LoRA, if any, is loaded later).

    Args:
        kind (`str`): one of `MODEL_KINDS`.
        folder (`Path`): the model folder.
        transformer (`Path`, *optional*): a saved transformer folder to use instead of the pipeline's (sd3, flux).
        guidance_scale (`float`): the adapter's CFG scale.
        device (`str`): torch device.
        dtype (`torch.dtype`): the pipeline's loading dtype (sd3, flux); bfloat16 also runs under bf16 autocast.
        resolution (`int`): image size in pixels (sd3, flux; 0 = 512).
        embedded_guidance (`float`): FLUX.1-dev's guidance-embedding value (ignored without a guidance embedding).
        max_sequence_length (`int`): T5 tokens per prompt (sd3, flux); 0 = the adapter's default.
    """
    if kind == "shapeworld":
        from flowrl.models.shapeworld import load_shapeworld_adapter

        if dtype != torch.float32 or resolution or transformer is not None:
            raise ValueError(
                "The ShapeWorld model samples in float32 at its own size: leave --dtype at float32 and --resolution "
                "at 0 for it."
            )
        return load_shapeworld_adapter(folder, guidance_scale=guidance_scale, device=device, reference_copy=False)
    if kind not in ("sd3", "flux"):
        raise ValueError(f"Unknown model kind {kind!r}. Valid: {list(MODEL_KINDS)}.")
    import diffusers

    from flowrl.pipelines import pipeline_class

    pipeline_cls = pipeline_class("StableDiffusion3Pipeline" if kind == "sd3" else "FluxPipeline")
    transformer_cls = diffusers.SD3Transformer2DModel if kind == "sd3" else diffusers.FluxTransformer2DModel
    parts = {}
    if transformer is not None:
        parts["transformer"] = transformer_cls.from_pretrained(transformer, dtype=dtype, local_files_only=True)
    pipe = pipeline_cls.from_pretrained(folder, dtype=dtype, local_files_only=True, **parts).to(device)
    size = resolution or DEFAULT_RESOLUTION
    common = dict(
        guidance_scale=guidance_scale,
        height=size,
        width=size,
        mixed_precision="bf16" if dtype == torch.bfloat16 else "no",
        reference_copy=False,  # sampling only: no frozen copy of the transformer
    )
    if max_sequence_length:
        common["max_sequence_length"] = max_sequence_length
    if kind == "sd3":
        from flowrl.models.sd3 import SD3Adapter

        return SD3Adapter(pipe, **common)
    from flowrl.models.flux import FluxAdapter

    embedded = embedded_guidance if pipe.transformer.config.guidance_embeds else None
    return FluxAdapter(pipe, embedded_guidance=embedded, **common)


@torch.no_grad()
def load_raw_weights(transformer: torch.nn.Module, run: Path, *, lora: bool) -> str:
    """Load the latest checkpoint's trained weights (not the EMA copy the trainer saves as the final weights) into
    `transformer`: the LoRA weights into the loaded LoRA, or the full state dict.

    Returns:
        `str`: a note for the source line (", raw weights of <checkpoint>").

    Raises:
        FileNotFoundError: the run has no checkpoint with trained weights.
        ValueError: the checkpoint's weights do not fit the model (e.g. a layer-tuning run), with what differs.
    """
    from safetensors.torch import load_file

    from flowrl.models.lora import ADAPTER
    from flowrl.runtime.checkpoint import latest_checkpoint

    checkpoint = latest_checkpoint(run)
    if checkpoint is None or not (checkpoint / RAW_FILE).is_file():
        raise FileNotFoundError(
            f"--no-ema needs the raw trained weights of the latest checkpoint, but {run}/checkpoints holds none; drop "
            "--no-ema to use the run's final (EMA) weights."
        )
    state = load_file(checkpoint / RAW_FILE)
    if lora:
        from peft.utils import set_peft_model_state_dict

        result = set_peft_model_state_dict(transformer, state, adapter_name=ADAPTER)
        unexpected = list(result.unexpected_keys)
    else:
        unexpected = list(transformer.load_state_dict(state, strict=False).unexpected_keys)
        missing = [k for k in transformer.state_dict() if k not in state]
        unexpected += [f"missing {k}" for k in missing]
    if unexpected:
        raise ValueError(
            f"{checkpoint / RAW_FILE} does not fit the run's model ({len(unexpected)} keys, e.g. {unexpected[:3]}); "
            "drop --no-ema to use the run's final weights."
        )
    return f", raw weights of {checkpoint.name}"


def load_model(
    model: str | Path | None = None,
    *,
    kind: str | None = None,
    lora: str | Path | None = None,
    lora_alpha: float | None = None,
    run: str | Path | None = None,
    trained: bool = True,
    ema: bool = True,
    device: str = "cpu",
    dtype: str = "float32",
    resolution: int = 0,
) -> LoadedModel:
    """Load a base model, a LoRA on it, or a training run's weights (see the module docstring).

    Args:
        model (`str | Path`, *optional*): model folder; with `run`, overrides the run's ``model.path``.
        kind (`str`, *optional*): 'shapeworld', 'sd3' or 'flux'; None detects it from the folder.
        lora (`str | Path`, *optional*): a diffusers-layout LoRA to load on the model (not with `run`).
        lora_alpha (`float`, *optional*): alpha of a LoRA file saved without metadata.
        run (`str | Path`, *optional*): a `flowrl train` run folder.
        trained (`bool`, defaults to True): with `run`, False loads the run's base model (with the run's sampling
            settings) instead of its trained weights: the "before" side of a comparison.
        ema (`bool`, defaults to True): with `run`: its final weights (the EMA copy when it trained with EMA); False
            loads the raw trained weights of its latest checkpoint instead.
        device (`str`, defaults to "cpu"): torch device.
        dtype (`str`, defaults to "float32"): loading dtype of an SD3 / FLUX pipeline (a key of `DTYPES`).
        resolution (`int`, defaults to 0): SD3 / FLUX image size in pixels; 0 = the run's evaluation resolution,
            else 512.

    Returns:
        `LoadedModel`.

    Raises:
        FileNotFoundError: a folder or weights file is missing (the message says which and how to get it).
        ValueError: conflicting or invalid options.
    """
    from flowrl.train.estimators import MODEL_GRIDS

    if dtype not in DTYPES:
        raise ValueError(f"Unknown dtype {dtype!r}. Valid: {sorted(DTYPES)}.")
    if kind is not None and kind not in MODEL_KINDS:
        raise ValueError(f"Unknown model kind {kind!r}. Valid: {list(MODEL_KINDS)}.")
    if run is not None and lora is not None:
        raise ValueError("--lora and --run both name trained weights; pass one (a run's LoRA is its lora/ folder).")
    if model is None and run is None:
        raise ValueError("Name a model: --model FOLDER (a ShapeWorld or diffusers pipeline folder) or --run RUN.")
    torch_dtype = DTYPES[dtype]
    if run is not None:
        run = Path(run)
        w = _run_weights(run, model)
        if not trained:
            w = w._replace(model_folder=w.base, transformer=None, lora=None)
        if kind is not None and kind != w.kind:
            raise ValueError(f"--kind {kind} but {run}/config.yaml trained model.kind {w.kind!r}; drop --kind.")
        kind = w.kind
        model_folder, lora, lora_alpha = w.model_folder, w.lora, lora_alpha if lora_alpha is not None else w.lora_alpha
        steps, guidance, embedded, grid = w.steps, w.guidance, w.embedded_guidance, w.grid  # the run's evaluation
        tokens = w.max_sequence_length
        resolution = 0 if kind == "shapeworld" else resolution or w.resolution
    else:
        model_folder = Path(model)
        kind = kind or detect_kind(model_folder)
        w, embedded, grid, tokens = None, EMBEDDED_GUIDANCE, MODEL_GRIDS[kind], 0
        if kind == "shapeworld":
            steps, guidance, _ = _shapeworld_defaults(model_folder)
        else:
            steps, guidance = DEFAULT_SAMPLING[kind]
    adapter = build_adapter(
        kind,
        model_folder,
        transformer=w.transformer if w is not None else None,
        guidance_scale=guidance,
        device=device,
        dtype=torch_dtype,
        resolution=resolution,
        embedded_guidance=embedded,
        max_sequence_length=tokens,
    )
    if kind == "shapeworld":
        image_size = _shapeworld_defaults(model_folder)[2]
    else:
        image_size = adapter.height
    if w is not None:
        if not trained:
            what = f"base model {model_folder} of run {run}"
        elif w.lora is not None:
            what = f"LoRA {w.lora} of run {run} on {model_folder}"
        elif w.transformer is not None:
            what = f"full fine-tune {w.transformer} of run {run} in {model_folder}"
        else:
            what = f"full fine-tune {model_folder} of run {run}"
    else:
        what = f"{kind} model {model_folder}" + (f" + LoRA {lora}" if lora is not None else "")
    if lora is not None:
        from flowrl.models.lora import load_lora

        load_lora(adapter.transformer, lora, lora_alpha=lora_alpha)
    if w is not None and trained and w.ema_decay > 0:  # the saved final weights are the EMA copy
        if ema:
            what += f", EMA weights (train.ema_decay {w.ema_decay:g})"
        else:
            what += load_raw_weights(adapter.transformer, run, lora=w.lora is not None)
    adapter.transformer.eval()
    lora = Path(lora) if lora is not None else None
    return LoadedModel(adapter, kind, steps, guidance, image_size, what, grid, Path(model_folder), lora)


def add_model_arguments(parser: argparse.ArgumentParser, *, model_help: str) -> None:
    """The model options shared by `flowrl sample`, `flowrl eval` and `flowrl demo`."""
    parser.add_argument("--model", default=None, help=model_help)
    parser.add_argument("--kind", choices=MODEL_KINDS, default=None, help="model kind (default: detected)")
    parser.add_argument("--lora", default=None, help="a diffusers-layout LoRA folder to load on --model")
    parser.add_argument("--lora-alpha", type=float, default=None, help="--lora: alpha, if the file has no metadata")
    parser.add_argument("--run", default=None, help="a `flowrl train` run folder: its config and final weights")
    parser.add_argument(
        "--no-ema", action="store_true", help="--run: the raw weights of its last checkpoint, not the EMA copy"
    )
    parser.add_argument("--device", default="cpu", help="torch device for the model (and the rewards)")
    parser.add_argument("--dtype", choices=sorted(DTYPES), default="float32", help="SD3 / FLUX loading dtype")
    parser.add_argument("--resolution", type=int, default=0, help="SD3 / FLUX image size (0: the run's, else 512)")


def model_from_args(args: argparse.Namespace, *, model: str | Path | None = None) -> LoadedModel:
    """`load_model` with the options of `add_model_arguments` (`model` replaces ``args.model``)."""
    return load_model(
        model if model is not None else args.model,
        kind=args.kind,
        lora=args.lora,
        lora_alpha=args.lora_alpha,
        run=args.run,
        ema=not args.no_ema,
        device=args.device,
        dtype=args.dtype,
        resolution=args.resolution,
    )
