"""The `flowrl demo` page: base vs tuned ShapeWorld samples side by side with scores, run curves, upload scoring.

Start it with ``flowrl demo --run runs/<name>`` (see docs/demo.md). Model and run paths come only from the
command line; the page sends prompts, numbers and uploads, each validated by `flowrl.demo.inputs`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from PIL import Image

try:
    import gradio as gr
except ImportError as e:
    raise ImportError("flowrl demo needs Gradio, an optional dependency: pip install -e '.[demo]'") from e

from flowrl.demo.inputs import (
    MAX_GUIDANCE,
    MAX_PROMPT_CHARS,
    MAX_SEED,
    MAX_STEPS,
    MIN_GUIDANCE,
    MIN_STEPS,
    DemoInputError,
    check_generation,
    check_prompt,
)
from flowrl.demo.models import TunedModel, default_model_folder, load_base, load_tuned
from flowrl.demo.run_view import RunView, load_run_view
from flowrl.demo.scoring import score_lines
from flowrl.demo.upload import read_upload
from flowrl.shapes.model import ShapeWorldModel
from flowrl.shapes.sampling import sample_images
from flowrl.train.prompts import eval_prompts
from rewards import load_reward
from rewards.base import RewardFn, check_reward_output

DISPLAY_SIZE = 256
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
NO_RUN_NOTE = (
    "**No run given: showing the base model only.** Start with `flowrl demo --run runs/<name>` to compare it with "
    "a model trained by `flowrl train`."
)


def _picture(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] -> an RGB picture enlarged to `DISPLAY_SIZE` with nearest neighbour (crisp pixels)."""
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, 3)
    return Image.fromarray(array).resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.NEAREST)


def _sample(model: ShapeWorldModel, prompt: str, seed: int, steps: int, guidance: float) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    shift = float(model.meta.get("shift", 3.0))
    images = sample_images(
        model, [prompt], generator=generator, num_inference_steps=steps, guidance_scale=guidance, shift=shift
    )
    return images[0]  # (3, H, W)


def generate(
    base: ShapeWorldModel,
    tuned: TunedModel | None,
    rewards: Sequence[RewardFn],
    prompt: object,
    seed: object,
    steps: object,
    guidance: object,
) -> tuple[Image.Image | None, str, Image.Image | None, str, str]:
    """Sample the prompt with both models from the same seed and score each image.

    Returns:
        `tuple`: base picture, base scores, tuned picture, tuned scores (None / "" without a run), and a status
        line (plain text: it may echo the prompt); invalid inputs give no pictures and the reason in the status.
    """
    try:
        request = check_generation(prompt, seed, steps, guidance)
    except DemoInputError as e:
        gr.Warning(str(e))
        return None, "", None, "", f"Error: {e}"
    args = (request.prompt, request.seed, request.steps, request.guidance)
    base_image = _sample(base, *args)
    outputs: list = [_picture(base_image), score_lines(base_image, request.prompt, rewards), None, ""]
    if tuned is not None:
        tuned_image = _sample(tuned.model, *args)
        outputs[2:] = [_picture(tuned_image), score_lines(tuned_image, request.prompt, rewards)]
    status = f"Generated {request.prompt!r}, seed {request.seed}, {request.steps} steps, guidance {request.guidance}."
    return (*outputs, status)


def score_upload(
    size: int, rewards: Sequence[RewardFn], path: str | None, prompt: object
) -> tuple[Image.Image | None, str, str]:
    """Score an uploaded image against a prompt.

    Returns:
        `tuple`: the image as graded, its scores (markdown) and a plain-text status line, which holds the reason
        (and no picture or scores) when the prompt or the upload is invalid.
    """
    try:
        text = check_prompt(prompt)
        image = read_upload(path, size)
    except DemoInputError as e:
        gr.Warning(str(e))
        return None, "", f"Error: {e}"
    return _picture(image), score_lines(image, text, rewards), f"Scored the upload against {text!r}."


def _run_tab(run_view: RunView | None) -> None:
    if run_view is None:
        gr.Markdown("No run given (`--run`): no curves or sample grids to show.")
        return
    gr.Markdown(run_view.summary, elem_id="run-summary")
    if run_view.curves is not None:
        gr.Image(run_view.curves, type="pil", label="curves.png", interactive=False, elem_id="curves")
    else:
        gr.Markdown("This run has no curves.png yet (the trainer writes it at the end).")
    if run_view.grids:
        gr.Gallery(run_view.grids, label="held-out sample grids (samples/eval_*.png)", columns=2, elem_id="grids")


def build_demo(
    base: ShapeWorldModel,
    tuned: TunedModel | None = None,
    *,
    rewards: Sequence[RewardFn] = (),
    run_view: RunView | None = None,
    base_source: str = "base model",
) -> gr.Blocks:
    """Build the demo page.

    Args:
        base (`ShapeWorldModel`): the base model.
        tuned (`TunedModel`, *optional*): the trained model; without it the page shows the base only and says so.
        rewards (`Sequence[RewardFn]`): extra rewards scored next to the grader.
        run_view (`RunView`, *optional*): the run's curves and sample grids for the "Run" tab.
        base_source (`str`): where the base weights came from, shown under its image.

    Returns:
        `gr.Blocks`: call ``.launch(server_name="127.0.0.1")`` on it.
    """
    rewards = list(rewards)
    steps_default = int(base.meta.get("num_inference_steps", 10))
    guidance_default = float(base.meta.get("guidance_scale", 4.0))
    examples = eval_prompts(2)
    with gr.Blocks(title="flowrl demo", analytics_enabled=False) as demo:
        gr.Markdown("# flowrl demo: base vs tuned ShapeWorld model")
        if tuned is None:
            gr.Markdown(NO_RUN_NOTE, elem_id="no-run-note")
        with gr.Tab("Compare"):
            with gr.Row():
                prompt = gr.Textbox(
                    value=examples[0],
                    label=f"Prompt (ShapeWorld grammar, at most {MAX_PROMPT_CHARS} characters)",
                    max_lines=1,
                    elem_id="prompt",
                    scale=3,
                )
                seed = gr.Number(value=0, label=f"Seed (0 to {MAX_SEED})", precision=0, elem_id="seed")
            with gr.Row():
                steps = gr.Slider(MIN_STEPS, MAX_STEPS, value=steps_default, step=1, label="Steps", elem_id="steps")
                guidance = gr.Slider(
                    MIN_GUIDANCE, MAX_GUIDANCE, value=guidance_default, step=0.5, label="Guidance", elem_id="guidance"
                )
            gr.Examples([[p] for p in examples], inputs=[prompt], label="Held-out example prompts")
            button = gr.Button("Generate", variant="primary", elem_id="generate")
            status = gr.Textbox(label="Status", interactive=False, max_lines=4, elem_id="status")
            with gr.Row():
                with gr.Column():
                    base_image = gr.Image(
                        type="pil", label="base", interactive=False, buttons=["download"], elem_id="base-image"
                    )
                    base_scores = gr.Markdown(elem_id="base-scores")
                    gr.Markdown(f"<small>{base_source}</small>")
                with gr.Column(visible=tuned is not None):
                    tuned_image = gr.Image(
                        type="pil", label="tuned", interactive=False, buttons=["download"], elem_id="tuned-image"
                    )
                    tuned_scores = gr.Markdown(elem_id="tuned-scores")
                    gr.Markdown(f"<small>{tuned.source if tuned is not None else ''}</small>")
            button.click(
                lambda *args: generate(base, tuned, rewards, *args),
                inputs=[prompt, seed, steps, guidance],
                outputs=[base_image, base_scores, tuned_image, tuned_scores, status],
                api_name="generate",
            )
        with gr.Tab("Run"):
            _run_tab(run_view)
        with gr.Tab("Score an image"):
            with gr.Row():
                upload = gr.File(label="Image (PNG or JPEG)", file_types=["image"], elem_id="upload")
                upload_prompt = gr.Textbox(value=examples[0], label="Prompt", max_lines=1, elem_id="upload-prompt")
            score_button = gr.Button("Score", elem_id="score")
            with gr.Row():
                upload_view = gr.Image(type="pil", label="as graded", interactive=False, elem_id="upload-view")
                upload_scores = gr.Markdown(elem_id="upload-scores")
            upload_status = gr.Textbox(label="Status", interactive=False, max_lines=4, elem_id="upload-status")
            size = int(base.meta["image_size"])
            score_button.click(
                lambda path, text: score_upload(size, rewards, path, text),
                inputs=[upload, upload_prompt],
                outputs=[upload_view, upload_scores, upload_status],
                api_name="score",
            )
    return demo


def _checked_reward(name: str, size: int) -> RewardFn:
    """Load a reward and score one grey image with it, so a reward that cannot score images fails at start-up."""
    reward = load_reward(name)
    try:
        check_reward_output(name, reward(torch.full((1, 3, size, size), 0.5), ["a red circle"], None), 1)
    except Exception as e:
        reason = f"{type(e).__name__}: {e}"
        raise ValueError(f"--reward {name} cannot score an image ({reason}); pick an image reward.") from e
    return reward


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowrl demo", description="Open a local Gradio page comparing a base and a tuned ShapeWorld model."
    )
    parser.add_argument("--run", type=Path, help="a `flowrl train` run folder (final/ or lora/); omit: base only")
    parser.add_argument("--model", type=Path, default=default_model_folder(), help="base model folder")
    parser.add_argument(
        "--reward", action="append", default=[], help="extra reward to show (repeatable), e.g. jpeg_compressibility"
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``flowrl demo``; returns the exit status."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        base = load_base(args.model)
        tuned = load_tuned(args.run, args.model) if args.run is not None else None
        run_view = load_run_view(args.run) if args.run is not None else None
        rewards = [_checked_reward(name, int(base.meta["image_size"])) for name in args.reward]
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"flowrl demo: {e}", file=sys.stderr)
        return 2
    if args.host not in LOOPBACK_HOSTS:
        print(
            f"flowrl demo: warning: binding to {args.host}, so other machines that reach it can use the page and "
            "this machine's CPU. Use the default --host 127.0.0.1 unless you mean to share it.",
            file=sys.stderr,
        )
    demo = build_demo(base, tuned, rewards=rewards, run_view=run_view, base_source=f"base model {args.model}")
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=False, ssr_mode=False, max_file_size="10mb"
    )
    return 0
