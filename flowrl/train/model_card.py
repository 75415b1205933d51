"""The model card: a ``README.md`` the trainer writes next to a run's final weights (``lora/`` or ``final/``).

It says what the weights are (base model, LoRA or full fine-tuning), how they were trained (method, preset, rewards,
steps, EMA), what was measured before and after training (the trainer's paired evaluation), the command that
launched the run and one that reproduces it, and how to use the weights with flowrl and with diffusers alone.
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Protocol

from flowrl.train.image_config import ImageTrainConfig

CARD_FILE = "README.md"
PIPELINES = {"sd3": "StableDiffusion3Pipeline", "flux": "FluxPipeline"}
TRANSFORMERS = {"StableDiffusion3Pipeline": "SD3Transformer2DModel", "FluxPipeline": "FluxTransformer2DModel"}


class Summary(Protocol):
    """An evaluation (`flowrl.train.evaluation.EvalSummary`): strict accuracies, mean scores, samples."""

    strict: Mapping[str, float]
    score: Mapping[str, float]
    count: int


def _metrics(summary: Summary | None) -> dict[str, float]:
    if summary is None:
        return {}
    return {
        **{f"eval/strict/{k}": v for k, v in summary.strict.items()},
        **{f"eval/score/{k}": v for k, v in summary.score.items()},
    }


def card_folder(saved: str | Path) -> Path:
    """Where the card goes: the folder `save_trained` returned (``lora/``, ``final/``), or ``final/`` when it
    returned ``final/transformer/``."""
    saved = Path(saved)
    return saved.parent if saved.name == "transformer" else saved


def launch_command(argv: Sequence[str]) -> str | None:
    """The shell command that started this process, when it was `flowrl train` or ``python -m flowrl.train.image``
    (None for a run started from Python, e.g. ``train(cfg)``)."""
    if not argv:
        return None
    if Path(argv[0]).name == "flowrl":
        return shlex.join(["flowrl", *argv[1:]])
    if Path(argv[0]).as_posix().endswith("flowrl/train/image.py"):
        return shlex.join(["python", "-m", "flowrl.train.image", *argv[1:]])
    return None


def _preset(argv: Sequence[str]) -> str | None:
    for i, arg in enumerate(argv):
        if arg == "--preset" and i + 1 < len(argv):
            return argv[i + 1]
        if arg.startswith("--preset="):
            return arg.split("=", 1)[1]
    return None


def _pipeline_class(cfg: ImageTrainConfig, base: Path | None) -> str | None:
    """The diffusers pipeline class of the base model (its ``model_index.json``; SD3 / FLUX by kind)."""
    if base is not None and (base / "model_index.json").is_file():
        return json.loads((base / "model_index.json").read_text()).get("_class_name")
    return PIPELINES.get(cfg.model.kind)


def _measurements(base: Summary | None, final: Summary | None) -> list[str]:
    if final is None:
        return ["No evaluation of the trained model was run."]
    before = _metrics(base)
    lines = ["| metric | base | trained | change |", "|---|---:|---:|---:|"]
    for key, value in _metrics(final).items():
        b = before.get(key)
        base_text = f"{b:.4f}" if b is not None else "–"
        change = f"{value - b:+.4f}" if b is not None else "–"
        lines.append(f"| `{key}` | {base_text} | {value:.4f} | {change} |")
    lines += [
        "",
        f"The trainer's evaluation: the same prompts and seeds before and after training ({final.count} samples, "
        "Euler ODE; EMA weights when EMA was on). `eval/strict/*`: ShapeWorld grader accuracy; `eval/score/*`: mean "
        "reward (`overall` = the weighted sum).",
    ]
    return lines


def _diffusers_snippet(cfg: ImageTrainConfig, folder: Path, pipeline: str, base: Path) -> list[str]:
    """A few lines of diffusers that load the base model and these weights and draw one image."""
    size = cfg.eval.resolution or cfg.model.resolution
    steps, guidance = cfg.eval.num_inference_steps, cfg.eval.guidance_scale
    if pipeline == "FluxPipeline":
        guidance = cfg.model.embedded_guidance  # FluxPipeline's guidance_scale is the distilled guidance
    call = f"num_inference_steps={steps}, guidance_scale={guidance:g}"
    call += f", height={size}, width={size}" if size else ""
    if cfg.model.max_sequence_length:  # the T5 length the run trained and evaluated with
        call += f", max_sequence_length={cfg.model.max_sequence_length}"
    meta = base / "flowrl_shapeworld.json"
    if meta.is_file():  # ShapeWorld: no T5, so the pipeline appends as many zero tokens as the model was trained with
        call += f", max_sequence_length={json.loads(meta.read_text()).get('max_sequence_length', 0)}"
    dtype = "torch.bfloat16"
    q = lambda path: json.dumps(str(path))  # noqa: E731  a path as a double-quoted Python string
    lines = ["```python", "import torch", f"from diffusers import {pipeline}", ""]
    if cfg.model.lora_rank > 0:
        lines += [
            f'pipe = {pipeline}.from_pretrained({q(base)}, torch_dtype={dtype}).to("cuda")',
            f"pipe.load_lora_weights({q(folder)})",
        ]
    elif (folder / "model_index.json").is_file():  # a complete pipeline folder
        lines += [f'pipe = {pipeline}.from_pretrained({q(folder)}, torch_dtype={dtype}).to("cuda")']
    else:
        transformer = TRANSFORMERS[pipeline]
        lines[2] = f"from diffusers import {pipeline}, {transformer}"
        lines += [
            f"transformer = {transformer}.from_pretrained({q(folder / 'transformer')}, torch_dtype={dtype})",
            f"pipe = {pipeline}.from_pretrained({q(base)}, transformer=transformer, torch_dtype={dtype})",
            'pipe = pipe.to("cuda")',
        ]
    lines += [f'image = pipe("<your prompt>", {call}).images[0]', "```"]
    return lines


def write_model_card(
    saved: str | Path,
    cfg: ImageTrainConfig,
    *,
    run_dir: str | Path,
    iterations: int,
    base: Summary | None,
    final: Summary | None,
    argv: Sequence[str] | None = None,
) -> Path:
    """Write ``README.md`` into the final weights' folder (see `card_folder`).

    Args:
        saved (`str | Path`): what `ImageAdapter.save_trained` returned (``lora/``, ``final/`` or
            ``final/transformer/``).
        cfg (`ImageTrainConfig`): the run's resolved config.
        run_dir (`str | Path`): the run folder (its ``config.yaml`` is the reproduction preset).
        iterations (`int`): training iterations done.
        base (`Summary`, *optional*), final (`Summary`, *optional*): the trainer's evaluations of the base and of
            the trained model (None when not run).
        argv (`Sequence[str]`, *optional*): the process's command line (default ``sys.argv``).

    Returns:
        `Path`: the card.
    """
    argv = list(sys.argv if argv is None else argv)
    folder, run_dir = card_folder(saved), Path(run_dir)
    m, method, t = cfg.model, cfg.method, cfg.train
    base_dir = next((p for p in (Path(m.path), Path(__file__).resolve().parents[2] / m.path) if p.is_dir()), None)
    weights = f"LoRA rank {m.lora_rank}, alpha {m.lora_alpha:g} (diffusers layout)" if m.lora_rank > 0 else "all"
    kwargs = ", ".join(f"{k}={v}" for k, v in method.kwargs.items()) or "the method's defaults"
    rewards = ", ".join(f"`{n}` × {w:g}" for n, w in zip(cfg.reward.names, cfg.reward.weights, strict=True))
    ema = "off"
    if t.ema_decay > 0:
        ema = f"on, decay {t.ema_decay:g}: these weights are the EMA copy (every evaluation used it); the raw "
        ema += "ones are in the last checkpoint (`flowrl sample --run ... --no-ema`)"
    preset = _preset(argv)
    launched = launch_command(argv)
    example = "a red circle" if m.kind == "shapeworld" else "a photo of a cat"
    lines = [
        f"# {run_dir.name}: `{method.name}` fine-tune of `{m.path}`",
        "",
        f"Trained by `flowrl train` ({iterations} iterations). The run folder `{run_dir}` holds the resolved config "
        "(`config.yaml`), metrics, sample grids and checkpoints.",
        "",
        "| | |",
        "|---|---|",
        f"| base model | `{m.path}` ({m.kind}) |",
        f"| trained weights | {weights} |",
        f"| method | `{method.name}` ({kwargs}){', GRPO-Guard' if method.guard else ''} |",
        f"| preset | {f'`{preset}`' if preset else 'none on the command line (see config.yaml)'} |",
        f"| rewards | {rewards} |",
        f"| steps | {iterations} iterations × {t.prompts_per_iteration} prompts, lr {cfg.optim.lr:g} "
        f"({cfg.optim.name}), guidance {cfg.guidance_scale:g} |",
        f"| EMA | {ema} |",
        "",
        "## Measured before / after",
        "",
        *_measurements(base, final),
        "",
        "## Command",
        "",
        "Launched with:" if launched else "Started from Python (`flowrl.train.image.train(cfg)`); no command line.",
        *(["", "```bash", launched, "```"] if launched else []),
        "",
        "Reproduce it (the run's resolved config as the preset, into a new run folder):",
        "",
        "```bash",
        shlex.join(["flowrl", "train", "--preset", str(run_dir / "config.yaml"), f"run.name={run_dir.name}-repro"]),
        "```",
        "",
        "## Use the weights",
        "",
        "```bash",
        shlex.join(["flowrl", "sample", "--run", str(run_dir), "--prompt", example, "--out", "samples.png"]),
        shlex.join(["flowrl", "demo", "--run", str(run_dir)]),
        "```",
    ]
    pipeline = _pipeline_class(cfg, base_dir)
    if pipeline in TRANSFORMERS and base_dir is not None:
        lines += ["", "With diffusers alone:", "", *_diffusers_snippet(cfg, folder, pipeline, base_dir.resolve())]
    path = folder / CARD_FILE
    path.write_text("\n".join(lines) + "\n")
    return path
