"""The `flowrl demo` page: base vs tuned samples side by side with scores, run curves, upload scoring, and a tab
that asks a base and a tuned VLM about a ShapeWorld image (`flowrl.demo.vlm_tab`, ``--vlm`` / ``--vlm-tuned``).

Start it with ``flowrl demo --run runs/<name>`` (see docs/demo.md); any model `flowrl train` accepts (ShapeWorld,
SD3 / SD3.5, FLUX.1), a ``--lora`` on a ``--model``, or the base alone. Model and run paths come only from the command
line; the page sends prompts, numbers and uploads, each validated by `flowrl.demo.inputs`.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence

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
from flowrl.demo.models import load_models
from flowrl.demo.run_view import RunView, load_run_view
from flowrl.demo.scoring import score_lines
from flowrl.demo.upload import read_upload
from flowrl.demo.vlm_tab import VLMPair, build_vlm_tab, load_vlm_pair
from flowrl.eval.generate import sample_prompt
from flowrl.eval.load_model import LoadedModel, add_model_arguments
from flowrl.train.prompts import eval_prompts
from rewards import load_reward
from rewards.base import RewardFn, check_reward_output

DISPLAY_SIZE = 256
LOOPBACK_HOSTS = ("127.0.0.1", "localhost", "::1")
NO_RUN_NOTE = (
    "**No run given: showing the base model only.** Start with `flowrl demo --run runs/<name>` (or `--lora PATH`) "
    "to compare it with a model trained by `flowrl train`."
)
KIND_NAMES = {"shapeworld": "ShapeWorld", "sd3": "SD3", "flux": "FLUX"}  # the page's title
# Example prompts of SD3 / FLUX models when no --prompts file is given
EXAMPLE_PROMPTS = ["a photo of a cat wearing a red hat", "a lighthouse on a cliff at sunset, oil painting"]


def _picture(image: torch.Tensor) -> Image.Image:
    """(3, H, W) in [0, 1] -> an RGB picture; images smaller than `DISPLAY_SIZE` are enlarged to it with nearest
    neighbour (crisp pixels), larger ones are shown at their size."""
    array = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()  # (H, W, 3)
    picture = Image.fromarray(array)
    if max(picture.size) >= DISPLAY_SIZE:
        return picture
    return picture.resize((DISPLAY_SIZE, DISPLAY_SIZE), Image.Resampling.NEAREST)


def _sample(
    model: LoadedModel, prompt: str, seed: int, steps: int, guidance: float, *, lora_off: bool = False
) -> torch.Tensor:
    """One image `(3, H, W)`; `lora_off`: with the model's LoRA switched off (the base side of a shared pipeline)."""
    if lora_off:
        model.adapter.transformer.disable_adapters()
    try:
        images = sample_prompt(
            model, prompt, num_samples=1, seed=seed, num_inference_steps=steps, guidance_scale=guidance
        )  # (1, 3, H, W)
    finally:
        if lora_off:
            model.adapter.transformer.enable_adapters()
    return images[0]


def generate(
    base: LoadedModel,
    tuned: LoadedModel | None,
    rewards: Sequence[RewardFn],
    prompt: object,
    seed: object,
    steps: object,
    guidance: object,
) -> tuple[Image.Image | None, str, Image.Image | None, str, str]:
    """Sample the prompt with both models from the same seed and score each image (when both hold the same adapter,
    `flowrl.demo.models.load_models` with a LoRA, the base side samples with its LoRA switched off).

    Returns:
        `tuple`: base picture, base scores, tuned picture, tuned scores (None / "" without a run), and a status
        line (plain text: it may echo the prompt); invalid inputs give no pictures and the reason in the status.
    """
    shapeworld = base.kind == "shapeworld"
    try:
        request = check_generation(prompt, seed, steps, guidance, shapeworld=shapeworld)
    except DemoInputError as e:
        gr.Warning(str(e))
        return None, "", None, "", f"Error: {e}"
    args = (request.prompt, request.seed, request.steps, request.guidance)
    shared = tuned is not None and base.adapter is tuned.adapter  # one pipeline: the base is the LoRA switched off
    base_image = _sample(base, *args, lora_off=shared)
    score = lambda image: score_lines(image, request.prompt, rewards, grader=shapeworld)  # noqa: E731
    outputs: list = [_picture(base_image), score(base_image), None, ""]
    if tuned is not None:
        tuned_image = _sample(tuned, *args)
        outputs[2:] = [_picture(tuned_image), score(tuned_image)]
    status = f"Generated {request.prompt!r}, seed {request.seed}, {request.steps} steps, guidance {request.guidance}."
    return (*outputs, status)


def score_upload(
    size: int, rewards: Sequence[RewardFn], path: str | None, prompt: object, *, shapeworld: bool = True
) -> tuple[Image.Image | None, str, str]:
    """Score an uploaded image against a prompt (resized to `size`; with the ShapeWorld grader when `shapeworld`).

    Returns:
        `tuple`: the image as graded, its scores (markdown) and a plain-text status line, which holds the reason
        (and no picture or scores) when the prompt or the upload is invalid.
    """
    try:
        text = check_prompt(prompt, shapeworld=shapeworld)
        image = read_upload(path, size)
    except DemoInputError as e:
        gr.Warning(str(e))
        return None, "", f"Error: {e}"
    scores = score_lines(image, text, rewards, grader=shapeworld)
    return _picture(image), scores, f"Scored the upload against {text!r}."


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
    base: LoadedModel,
    tuned: LoadedModel | None = None,
    *,
    rewards: Sequence[RewardFn] = (),
    run_view: RunView | None = None,
    examples: Sequence[str] = (),
    vlm: VLMPair | None = None,
) -> gr.Blocks:
    """Build the demo page.

    Args:
        base (`LoadedModel`): the base model (`flowrl.eval.load_model`).
        tuned (`LoadedModel`, *optional*): the trained model; without it the page shows the base only and says so.
        rewards (`Sequence[RewardFn]`): extra rewards scored next to the grader (the grader: ShapeWorld only).
        run_view (`RunView`, *optional*): the run's curves and sample grids for the "Run" tab.
        examples (`Sequence[str]`): example prompts (default: two held-out ShapeWorld prompts, or `EXAMPLE_PROMPTS`).
        vlm (`VLMPair`, *optional*): the base and tuned VLMs of the "Ask the VLM" tab (`flowrl.demo.vlm_tab`); the
            tab is left out without it. A ShapeWorld image model (the tuned one when given) can draw its images.

    Returns:
        `gr.Blocks`: call ``.launch(server_name="127.0.0.1")`` on it.
    """
    rewards = list(rewards)
    shapeworld = base.kind == "shapeworld"
    examples = list(examples) or (eval_prompts(2) if shapeworld else EXAMPLE_PROMPTS)
    grammar = "ShapeWorld grammar, " if shapeworld else ""
    with gr.Blocks(title="flowrl demo", analytics_enabled=False) as demo:
        gr.Markdown(f"# flowrl demo: base vs tuned {KIND_NAMES[base.kind]} model")
        if tuned is None:
            gr.Markdown(NO_RUN_NOTE, elem_id="no-run-note")
        with gr.Tab("Compare"):
            with gr.Row():
                prompt = gr.Textbox(
                    value=examples[0],
                    label=f"Prompt ({grammar}at most {MAX_PROMPT_CHARS} characters)",
                    max_lines=1,
                    elem_id="prompt",
                    scale=3,
                )
                seed = gr.Number(value=0, label=f"Seed (0 to {MAX_SEED})", precision=0, elem_id="seed")
            with gr.Row():
                steps = gr.Slider(
                    MIN_STEPS, MAX_STEPS, value=base.num_inference_steps, step=1, label="Steps", elem_id="steps"
                )
                guidance = gr.Slider(
                    MIN_GUIDANCE,
                    MAX_GUIDANCE,
                    value=base.guidance_scale,
                    step=0.5,
                    label="Guidance",
                    elem_id="guidance",
                )
            gr.Examples([[p] for p in examples], inputs=[prompt], label="Example prompts")
            button = gr.Button("Generate", variant="primary", elem_id="generate")
            status = gr.Textbox(label="Status", interactive=False, max_lines=4, elem_id="status")
            with gr.Row():
                with gr.Column():
                    base_image = gr.Image(
                        type="pil", label="base", interactive=False, buttons=["download"], elem_id="base-image"
                    )
                    base_scores = gr.Markdown(elem_id="base-scores")
                    gr.Markdown(f"<small>{base.source}</small>")
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
            score_button.click(
                lambda path, text: score_upload(base.image_size, rewards, path, text, shapeworld=shapeworld),
                inputs=[upload, upload_prompt],
                outputs=[upload_view, upload_scores, upload_status],
                api_name="score",
            )
        if vlm is not None:
            with gr.Tab("Ask the VLM"):
                image_model = (tuned if tuned is not None else base) if shapeworld else None
                build_vlm_tab(vlm, image_model=image_model, picture=_picture)
    return demo


def _checked_reward(name: str, size: int, device: str) -> RewardFn:
    """Load a reward and score one grey image with it, so a reward that cannot score images fails at start-up."""
    from flowrl.eval.cli import PREFERENCE_REWARDS

    reward = load_reward(name, device=device) if name in PREFERENCE_REWARDS else load_reward(name)
    try:
        check_reward_output(name, reward(torch.full((1, 3, size, size), 0.5), ["a red circle"], None), 1)
    except Exception as e:
        reason = f"{type(e).__name__}: {e}"
        raise ValueError(f"--reward {name} cannot score an image ({reason}); pick an image reward.") from e
    return reward


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flowrl demo",
        description="Open a local Gradio page comparing a base model with a trained run (or a LoRA) side by side.",
    )
    add_model_arguments(parser, model_help="base model folder (default: the run's model.path, else assets/shapeworld)")
    parser.add_argument("--prompts", help="example prompts file (.txt one a line, .jsonl or .csv)")
    parser.add_argument(
        "--reward", action="append", default=[], help="extra reward to show (repeatable), e.g. jpeg_compressibility"
    )
    parser.add_argument(
        "--vlm", default=None, help="base VLM folder of the 'Ask the VLM' tab (default: assets/shapeworld_vlm)"
    )
    parser.add_argument(
        "--vlm-tuned", default=None, help="tuned VLM: a flowrl train-vlm run folder (its final/) or a VLM folder"
    )
    parser.add_argument("--no-vlm", action="store_true", help="leave out the 'Ask the VLM' tab")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback only)")
    parser.add_argument("--port", type=int, default=7860, help="port (default 7860)")
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of ``flowrl demo``; returns the exit status."""
    args = _parser().parse_args(argv)
    os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
    try:
        base, tuned = load_models(args)
        run_view = load_run_view(args.run) if args.run is not None else None
        rewards = [_checked_reward(name, base.image_size, args.device) for name in args.reward]
        examples = []
        if args.prompts:
            from flowrl.eval.prompts_file import read_prompts

            examples = [row.prompt for row in read_prompts(args.prompts)[0]][:8]
        if args.no_vlm and (args.vlm or args.vlm_tuned):
            raise ValueError("--no-vlm leaves out the VLM tab: drop it, or drop --vlm / --vlm-tuned.")
        vlm = None if args.no_vlm else load_vlm_pair(args.vlm, args.vlm_tuned)
    except (FileNotFoundError, ValueError, ImportError) as e:
        print(f"flowrl demo: {e}", file=sys.stderr)
        return 2
    if args.host not in LOOPBACK_HOSTS:
        print(
            f"flowrl demo: warning: binding to {args.host}, so other machines that reach it can use the page and "
            "this machine's CPU. Use the default --host 127.0.0.1 unless you mean to share it.",
            file=sys.stderr,
        )
    demo = build_demo(base, tuned, rewards=rewards, run_view=run_view, examples=examples, vlm=vlm)
    demo.queue(default_concurrency_limit=1).launch(
        server_name=args.host, server_port=args.port, share=False, ssr_mode=False, max_file_size="10mb"
    )
    return 0
