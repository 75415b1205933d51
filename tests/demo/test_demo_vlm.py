"""The demo's "Ask the VLM" tab: images, questions and both VLMs' answers, without and with a browser.

The base is the shipped VLM (`assets/shapeworld_vlm`, 0.75M parameters: an answer takes ~0.1 s); the "tuned" one is a
perturbed copy saved as a `flowrl train-vlm` run folder (``final/``). The browser test drives headless Debian Chromium
with Playwright, like tests/demo/test_demo_browser.py, and skips the same way.
"""

import importlib.util
import re

import numpy as np
import pytest
import torch

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")

from flowrl.demo.browser import CHROMIUM  # noqa: E402
from flowrl.demo.inputs import DemoInputError  # noqa: E402
from flowrl.demo.vlm_tab import (  # noqa: E402
    NO_TUNED_NOTE,
    SOURCES,
    ask,
    default_vlm_folder,
    load_vlm_pair,
    new_image,
    reference_answer,
    tuned_folder,
)

HELD_OUT = "held-out compositions"
browser = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not found: `apt-get install -y chromium`"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the Playwright package is missing: `pip install playwright` (do not run `playwright install`)",
    ),
]


@pytest.fixture(scope="module")
def vlm_run(tmp_path_factory):
    """A train-vlm-like run folder whose final/ is the shipped VLM with perturbed weights."""
    from flowrl.vlm.model import load_vlm

    run = tmp_path_factory.mktemp("runs") / "vlm-run"
    model, tok = load_vlm(default_vlm_folder())
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.llava.parameters():
            p.add_(0.02 * torch.randn(p.shape, generator=generator))
    model.save_pretrained(run / "final")
    tok.save_pretrained(run / "final")
    return run


def test_new_image_is_a_drawn_scene_with_its_question_and_answer():
    a, b = new_image(3, HELD_OUT, SOURCES[0]), new_image(3, HELD_OUT, SOURCES[0])
    assert a.pixels.shape == (32, 32, 3) and a.pixels.dtype == np.uint8
    assert np.array_equal(a.pixels, b.pixels) and a.question == b.question  # a seed names one image
    assert not np.array_equal(a.pixels, new_image(4, HELD_OUT, SOURCES[0]).pixels)
    from flowrl.shapes.questions import sample_items

    item = sample_items(1, split="test", seed=3)[0]  # the held-out split's item of that seed
    assert reference_answer(a, a.question) == (item.answer, "")
    assert "held-out" in a.caption and item.image_prompt in a.caption


@pytest.mark.parametrize(
    "seed, split, source, message",
    [
        (-1, HELD_OUT, SOURCES[0], "Seed must be a whole number"),
        (1.5, HELD_OUT, SOURCES[0], "Seed must be a whole number"),
        (0, "all compositions", SOURCES[0], "Unknown split"),
        (0, HELD_OUT, SOURCES[1], "Unknown image source"),  # no image model given
    ],
)
def test_new_image_rejects_bad_input(seed, split, source, message):
    with pytest.raises(DemoInputError, match=message):
        new_image(seed, split, source)


def test_ask_answers_checks_and_explains(vlm_run):
    pair = load_vlm_pair(None, vlm_run)
    assert pair.tuned.source.endswith("final") and "base VLM" in pair.base.source
    image = new_image(0, HELD_OUT, SOURCES[0])
    base, tuned, status = ask(pair, image, image.question)
    assert status == f"Answered {image.question!r}."
    for side in (base, tuned):
        assert side.startswith("**answer:**") and ("(right)" in side or "(wrong: the scene's answer is" in side)
    # a grammatical question that the scene does not decide: answered, without a reference
    missing = next(s for s in ("circle", "square", "triangle") if all(o.shape != s for o in image.scene.objects))
    base, _, status = ask(pair, image, f"what colour is the {missing} ?")
    assert "No reference answer" in status and "right" not in base and "wrong" not in base
    assert ask(pair, image, "what colour is the hexagon ?")[2].startswith("Error: Not a ShapeWorld question")
    assert ask(pair, image, "")[2].startswith("Error: The question is empty")
    assert ask(pair, image, 7)[2].startswith("Error: The question must be text")
    assert ask(pair, None, image.question)[2].startswith("Error: no image yet")
    # the base alone: no tuned answer
    alone = load_vlm_pair()
    assert alone.tuned is None and ask(alone, image, image.question)[1] == ""


def test_tuned_folder_and_bad_models(vlm_run, tiny_model_dir, tmp_path):
    assert tuned_folder(vlm_run) == vlm_run / "final"
    assert tuned_folder(vlm_run / "final") == vlm_run / "final"
    with pytest.raises(FileNotFoundError, match="does not exist"):
        tuned_folder(tmp_path / "nowhere")
    (tmp_path / "unfinished").mkdir()
    with pytest.raises(FileNotFoundError, match="final/"):
        tuned_folder(tmp_path / "unfinished")
    with pytest.raises(ValueError, match="not a model folder"):  # a ShapeWorld image pipeline is not a VLM
        load_vlm_pair(tiny_model_dir)


def test_command_line_vlm_options(monkeypatch, tiny_model_dir, vlm_run, capsys):
    import gradio as gr

    from flowrl.demo import app

    built = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: built.update(tabs=str(self.config)))
    assert app.main(["--model", str(tiny_model_dir), "--vlm-tuned", str(vlm_run)]) == 0
    assert "Ask the VLM" in built["tabs"] and "No tuned VLM given" not in built["tabs"]
    assert app.main(["--model", str(tiny_model_dir)]) == 0
    assert "No tuned VLM given" in built["tabs"]
    assert app.main(["--model", str(tiny_model_dir), "--no-vlm"]) == 0
    assert "Ask the VLM" not in built["tabs"]
    capsys.readouterr()
    assert app.main(["--model", str(tiny_model_dir), "--vlm", str(tiny_model_dir)]) == 2
    assert "not a model folder" in capsys.readouterr().err
    assert app.main(["--model", str(tiny_model_dir), "--vlm-tuned", str(vlm_run / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err


@browser[0]
@browser[1]
def test_ask_the_vlm_in_chromium(tiny_model_dir, vlm_run):
    from flowrl.demo.app import build_demo
    from flowrl.demo.browser import chromium_page, serve, wait_for_status
    from flowrl.eval.load_model import load_model

    demo = build_demo(load_model(tiny_model_dir), vlm=load_vlm_pair(None, vlm_run))
    with serve(demo) as url, chromium_page() as page:
        page.goto(url)
        page.get_by_role("tab", name="Ask the VLM").click()
        assert page.locator("#vlm-no-tuned-note").count() == 0
        page.locator("#vlm-seed input").first.fill("5")
        page.locator("#vlm-new").click()
        wait_for_status(page, "vlm-status", "^New image: seed 5")
        image = page.locator("#vlm-image img")
        image.wait_for()
        assert image.evaluate("img => img.complete && img.naturalWidth") == 256  # 32 px enlarged
        question = page.locator("#vlm-question textarea, #vlm-question input").first.input_value()
        assert question == new_image(5, HELD_OUT, SOURCES[0]).question
        page.locator("#vlm-ask").click()
        wait_for_status(page, "vlm-status", "^Answered " + re.escape(repr(question)))
        for side in ("base", "tuned"):
            text = page.locator(f"#vlm-{side}-answer").inner_text()
            assert "answer:" in text and ("(right)" in text or "wrong: the scene's answer is" in text), text
            assert "<think>" in text  # the completion is shown as text

        page.locator("#vlm-question textarea, #vlm-question input").first.fill("how many purple circles are there ?")
        page.locator("#vlm-ask").click()
        wait_for_status(page, "vlm-status", "^Error: Not a ShapeWorld question: .*'purple' is not")
        assert "Traceback" not in page.content()

        page.locator("#vlm-source").get_by_text(SOURCES[1]).click()  # the ShapeWorld image model draws the scene
        page.locator("#vlm-new").click()
        wait_for_status(page, "vlm-status", "^New image: seed 5")
        assert "no reference answer" in page.locator("#vlm-caption").inner_text()
        page.locator("#vlm-ask").click()
        wait_for_status(page, "vlm-status", "^Answered .*No reference answer: the image model drew")

    alone = build_demo(load_model(tiny_model_dir), vlm=load_vlm_pair())
    with serve(alone) as url, chromium_page() as page:
        page.goto(url)
        page.get_by_role("tab", name="Ask the VLM").click()
        assert NO_TUNED_NOTE.split("**")[1] in page.locator("#vlm-no-tuned-note").inner_text()
        page.locator("#vlm-new").click()
        wait_for_status(page, "vlm-status", "^New image: seed 0")
        page.locator("#vlm-ask").click()
        wait_for_status(page, "vlm-status", "^Answered ")
        assert "answer:" in page.locator("#vlm-base-answer").inner_text()
