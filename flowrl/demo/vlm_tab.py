"""The demo's "Ask the VLM" tab: a ShapeWorld image, a question, and the base and tuned VLMs' answers side by side.

The image is a held-out (or training) ShapeWorld scene drawn by the renderer for a seed, with a sampled question and
the answer computed from the scene; or, when the demo's image model is ShapeWorld's, the image model's own drawing of
the scene's prompt (then there is no reference answer: the drawing may not show what the prompt says). The person may
ask any question of the ShapeWorld question grammar (`flowrl.shapes.questions`); both VLMs answer greedily
(`flowrl.vlm.evaluate.generate_completions`), as ``flowrl eval --vlm`` scores them.

Models come only from the command line: ``--vlm FOLDER`` (the base, default ``assets/shapeworld_vlm``) and
``--vlm-tuned PATH`` (a ``flowrl train-vlm`` run folder, whose ``final/`` is used, or a VLM folder). Without
``--vlm-tuned`` the tab shows the base alone and says so.
"""

from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from flowrl.demo.inputs import MAX_SEED, DemoInputError
from flowrl.shapes.questions import answer_question, format_question, parse_question, sample_items
from flowrl.shapes.scene import Scene, draw_scene

MAX_QUESTION_CHARS = 200
MAX_NEW_TOKENS = 24
SPLITS = {"held-out compositions": "test", "training compositions": "train"}
SOURCES = ("drawn scene (renderer)", "image model")
NO_TUNED_NOTE = (
    "**No tuned VLM given: showing the base VLM only.** Start with `flowrl demo --vlm-tuned runs/<name>` (a "
    "`flowrl train-vlm` run folder, or a VLM folder) to compare it with a trained one."
)


class VLMSide(NamedTuple):
    """One VLM of the tab: the keyed-image model, its tokenizer and where it came from."""

    model: object  # flowrl.vlm.model.KeyedImageVLM
    tokenizer: object
    source: str


class VLMPair(NamedTuple):
    base: VLMSide
    tuned: VLMSide | None


class TabImage(NamedTuple):
    """The tab's current image: uint8 (H, W, 3) pixels, the sampled question, the scene it shows (None when the image
    model drew the picture: its drawing may not show the scene, so no answer is known) and a caption."""

    pixels: np.ndarray
    question: str
    scene: Scene | None
    caption: str


def default_vlm_folder() -> Path:
    """The shipped VLM, ``assets/shapeworld_vlm`` of the flowrl repository."""
    return Path(__file__).resolve().parents[2] / "assets" / "shapeworld_vlm"


def tuned_folder(path: str | Path) -> Path:
    """The VLM folder of `path`: a ``flowrl train-vlm`` run folder's ``final/``, or `path` itself.

    Raises:
        FileNotFoundError: `path` does not exist, or is a run folder without ``final/`` (the run has not finished).
    """
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(
            f"--vlm-tuned {str(path)!r} does not exist: give a train-vlm run folder or a VLM folder."
        )
    if (path / "config.json").is_file():
        return path
    if (path / "final" / "config.json").is_file():
        return path / "final"
    raise FileNotFoundError(
        f"--vlm-tuned {str(path)!r} is neither a VLM folder (config.json) nor a finished train-vlm run (final/): "
        "a run writes final/ when it ends."
    )


def load_vlm_pair(base: str | Path | None = None, tuned: str | Path | None = None) -> VLMPair:
    """The base VLM (default the shipped one) and, when `tuned` is given, the tuned one.

    Raises:
        FileNotFoundError, ValueError: a folder is missing, or is not a VLM (`flowrl.vlm.model.load_vlm` names why).
    """
    from flowrl.vlm.model import load_vlm

    base_path = Path(base) if base is not None else default_vlm_folder()
    model, tok = load_vlm(base_path)
    out = VLMPair(VLMSide(model.eval(), tok, f"base VLM {base_path}"), None)
    if tuned is not None:
        folder = tuned_folder(tuned)
        t_model, t_tok = load_vlm(folder)
        out = out._replace(tuned=VLMSide(t_model.eval(), t_tok, f"tuned VLM {folder}"))
    return out


def check_seed(seed: object) -> int:
    if isinstance(seed, bool) or not isinstance(seed, int | float) or seed != seed or seed != int(seed):
        raise DemoInputError(f"Seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}.")
    if not 0 <= seed <= MAX_SEED:
        raise DemoInputError(f"Seed must be a whole number from 0 to {MAX_SEED}, got {seed!r}.")
    return int(seed)


def check_question_text(question: object) -> str:
    """The question with single spaces, or `DemoInputError` when it is empty, too long or outside the grammar."""
    if not isinstance(question, str):
        raise DemoInputError(f"The question must be text, got {type(question).__name__}.")
    text = " ".join(question.split())
    if not text:
        raise DemoInputError("The question is empty: ask e.g. 'how many red circles are there ?'.")
    if len(question) > MAX_QUESTION_CHARS:
        raise DemoInputError(f"The question is {len(question)} characters long; the limit is {MAX_QUESTION_CHARS}.")
    try:
        parse_question(text)
    except ValueError as e:
        raise DemoInputError(f"Not a ShapeWorld question: {e}") from None
    return text


def new_image(seed: object, split: object, source: object, image_model=None) -> TabImage:
    """A scene of `split` (a `SPLITS` label) for `seed`, its sampled question and answer; `source` "image model"
    draws the scene's prompt with `image_model` (a ShapeWorld `LoadedModel`) from the same seed instead."""
    seed = check_seed(seed)
    if split not in SPLITS:
        raise DemoInputError(f"Unknown split {split!r}; pick one of {sorted(SPLITS)}.")
    if source not in SOURCES or (source == SOURCES[1] and image_model is None):
        valid = [SOURCES[0]] + ([SOURCES[1]] if image_model is not None else [])
        raise DemoInputError(f"Unknown image source {source!r}; pick one of {valid}.")
    item = sample_items(1, split=SPLITS[split], seed=seed)[0]
    question = format_question(item.question)
    if source == SOURCES[0]:
        image = draw_scene(item.scene)  # (3, H, W) in [0, 1]
        caption = f"scene drawn for {item.image_prompt!r} ({split}, seed {seed})"
        scene = item.scene
    else:
        from flowrl.eval.generate import sample_prompt

        image = sample_prompt(
            image_model, item.image_prompt, num_samples=1, seed=seed,
            num_inference_steps=image_model.num_inference_steps, guidance_scale=image_model.guidance_scale,
        )[0]  # fmt: skip
        caption = f"the image model's drawing of {item.image_prompt!r} (seed {seed}): no reference answer"
        scene = None
    pixels = (image.clamp(0, 1) * 255).round().to(torch.uint8).permute(1, 2, 0).numpy()
    return TabImage(np.ascontiguousarray(pixels), question, scene, caption)


def answer(side: VLMSide, pixels: np.ndarray, question: str) -> str:
    """The VLM's greedy completion for the image and question (one row)."""
    from flowrl.vlm.evaluate import generate_completions

    prompt = f"{side.model.register(pixels)} {question}"
    with torch.no_grad():
        texts, _, ended = generate_completions(side.model, side.tokenizer, [prompt], max_new_tokens=MAX_NEW_TOKENS)
    return texts[0] + ("" if ended[0] else " [cut at the token budget]")


def answer_lines(completion: str, reference: str | None) -> str:
    """Markdown of one side: the extracted answer, right / wrong against the reference, and the whole completion
    (as code, so it is shown as text)."""
    from flowrl.vlm.rewards import extract_answer

    got = extract_answer(completion)
    verdict = ""
    if reference is not None:
        verdict = " (right)" if got == reference else f" (wrong: the scene's answer is `{reference}`)"
    return f"**answer:** `{got if got is not None else 'none (no <answer> block)'}`{verdict}\n\n`{completion}`"


def reference_answer(image: TabImage, question: str) -> tuple[str | None, str]:
    """The answer of `question` computed from the drawn scene, and a note when there is none (the image model drew
    the picture, or the question is not decidable on this scene, e.g. a colour question about a missing shape)."""
    if image.scene is None:
        return None, " No reference answer: the image model drew this picture."
    try:
        return answer_question(parse_question(question), image.scene), ""
    except ValueError as e:
        return None, f" No reference answer: {e}"


def ask(pair: VLMPair, image: TabImage | None, question: object) -> tuple[str, str, str]:
    """Both VLMs' answers to `question` about `image`: base markdown, tuned markdown ("" without a tuned VLM) and a
    plain-text status line (on bad input: the reason, and no answers)."""
    if image is None:
        return "", "", "Error: no image yet: click 'New image' first."
    try:
        text = check_question_text(question)
    except DemoInputError as e:
        return "", "", f"Error: {e}"
    reference, note = reference_answer(image, text)
    base = answer_lines(answer(pair.base, image.pixels, text), reference)
    tuned = "" if pair.tuned is None else answer_lines(answer(pair.tuned, image.pixels, text), reference)
    return base, tuned, f"Answered {text!r}." + note


def build_vlm_tab(pair: VLMPair, *, image_model=None, picture=None) -> None:
    """The tab's widgets and events; call inside ``with gr.Tab(...)`` of a `gr.Blocks`.

    Args:
        pair (`VLMPair`): the base VLM and, optionally, the tuned one.
        image_model (`LoadedModel`, *optional*): a ShapeWorld image model; offers "image model" as image source.
        picture (`Callable`): `(3, H, W)` float tensor -> the displayed PIL picture (the demo's enlargement).
    """
    import gradio as gr

    def show(image: TabImage):
        return picture(torch.from_numpy(image.pixels).permute(2, 0, 1).float() / 255)

    def on_new(seed, split, source):
        try:
            image = new_image(seed, split, source, image_model)
        except DemoInputError as e:
            gr.Warning(str(e))
            return None, "", gr.skip(), None, f"Error: {e}", "", ""
        return show(image), image.caption, image.question, image, f"New image: seed {int(seed)}.", "", ""

    def on_ask(image, question):
        base, tuned, status = ask(pair, image, question)
        if status.startswith("Error: "):
            gr.Warning(status[len("Error: ") :])
        return base, tuned, status

    if pair.tuned is None:
        gr.Markdown(NO_TUNED_NOTE, elem_id="vlm-no-tuned-note")
    sources = list(SOURCES) if image_model is not None else [SOURCES[0]]
    with gr.Row():
        seed = gr.Number(value=0, label=f"Seed (0 to {MAX_SEED})", precision=0, elem_id="vlm-seed")
        split = gr.Radio(list(SPLITS), value=next(iter(SPLITS)), label="Scene compositions", elem_id="vlm-split")
        source = gr.Radio(sources, value=SOURCES[0], label="Image", elem_id="vlm-source")
    new_button = gr.Button("New image", elem_id="vlm-new")
    state = gr.State(None)
    with gr.Row():
        view = gr.Image(type="pil", label="image", interactive=False, elem_id="vlm-image")
        with gr.Column():
            caption = gr.Markdown(elem_id="vlm-caption")
            question = gr.Textbox(
                label=f"Question (ShapeWorld question grammar, at most {MAX_QUESTION_CHARS} characters)",
                max_lines=1,
                elem_id="vlm-question",
            )
            ask_button = gr.Button("Ask both VLMs", variant="primary", elem_id="vlm-ask")
    status = gr.Textbox(label="Status", interactive=False, max_lines=4, elem_id="vlm-status")
    with gr.Row():
        with gr.Column():
            gr.Markdown("### base VLM")
            base_out = gr.Markdown(elem_id="vlm-base-answer")
            gr.Markdown(f"<small>{pair.base.source}</small>")
        with gr.Column(visible=pair.tuned is not None):
            gr.Markdown("### tuned VLM")
            tuned_out = gr.Markdown(elem_id="vlm-tuned-answer")
            gr.Markdown(f"<small>{pair.tuned.source if pair.tuned is not None else ''}</small>")
    new_button.click(
        on_new,
        inputs=[seed, split, source],
        outputs=[view, caption, question, state, status, base_out, tuned_out],
        api_name="vlm_new_image",
    )
    ask_button.click(on_ask, inputs=[state, question], outputs=[base_out, tuned_out, status], api_name="vlm_ask")
