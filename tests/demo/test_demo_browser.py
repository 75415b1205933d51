"""The demo in a real browser: headless Debian Chromium driven by Playwright against a live local server.

Skips when Chromium (`apt-get install -y chromium`) or the Playwright Python package (`pip install playwright`,
without `playwright install`) is missing; CI installs both.
"""

import importlib.util
import re

import pytest

pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")

from flowrl.demo.browser import CHROMIUM  # noqa: E402

pytestmark = [
    pytest.mark.skipif(not CHROMIUM.is_file(), reason=f"{CHROMIUM} not found: `apt-get install -y chromium`"),
    pytest.mark.skipif(
        importlib.util.find_spec("playwright") is None,
        reason="the Playwright package is missing: `pip install playwright` (do not run `playwright install`)",
    ),
]


def test_compare_scores_and_bad_prompt_in_chromium(tiny_model_dir, tiny_run_dir, tmp_path):
    from flowrl.demo.app import build_demo
    from flowrl.demo.browser import chromium_page, generate_in_page, serve, wait_for_status
    from flowrl.demo.run_view import load_run_view
    from flowrl.eval.load_model import load_model

    base, tuned = load_model(run=tiny_run_dir, trained=False), load_model(run=tiny_run_dir)
    demo = build_demo(base, tuned, run_view=load_run_view(tiny_run_dir))
    with serve(demo) as url, chromium_page() as page:
        generate_in_page(page, url, "a red circle above a blue square")
        for side in ("base", "tuned"):
            image = page.locator(f"#{side}-image img")
            image.wait_for()
            assert image.evaluate("img => img.complete && img.naturalWidth") == 256
            scores = page.locator(f"#{side}-scores").inner_text()
            assert "grader score" in scores and ("PASS" in scores or "FAIL" in scores), scores
        assert page.get_by_text("No run given").count() == 0

        page.locator("#prompt textarea, #prompt input").first.fill("a purple hexagon")
        page.locator("#generate").click()
        wait_for_status(page, "status", "^Error: .*Unknown word 'purple'")
        assert page.locator("#base-image img").count() == 0  # the failed request cleared the pictures
        assert "Traceback" not in page.content()

        page.locator("#prompt textarea, #prompt input").first.fill('a <b id="injected">red</b> circle')
        page.locator("#generate").click()
        wait_for_status(page, "status", re.escape("""'a <b id="injected">red</b> circle'"""))
        assert page.locator("#injected").count() == 0  # the echoed prompt is text, not markup

        page.get_by_role("tab", name="Run").click()
        page.locator("#curves img").wait_for()
        assert "eval/strict/overall" in page.locator("#run-summary").inner_text()

        broken = tmp_path / "broken.png"
        broken.write_bytes(b"this is not a PNG")
        page.get_by_role("tab", name="Score an image").click()
        page.locator("#upload input[type=file]").set_input_files(str(broken))
        page.locator("#upload").get_by_text("broken.png").wait_for()
        page.locator("#score").click()
        wait_for_status(page, "upload-status", "^Error: Could not read the upload")


def test_sd3_lora_run_in_chromium(sd3_lora_run):
    from flowrl.demo.app import build_demo
    from flowrl.demo.browser import chromium_page, generate_in_page, serve
    from flowrl.demo.run_view import load_run_view
    from flowrl.eval.load_model import load_model
    from rewards import load_reward

    base, tuned = load_model(run=sd3_lora_run, trained=False), load_model(run=sd3_lora_run)
    demo = build_demo(base, tuned, rewards=[load_reward("jpeg_compressibility")], run_view=load_run_view(sd3_lora_run))
    with serve(demo) as url, chromium_page() as page:
        generate_in_page(page, url, "a photo of a cat, oil painting", seed=3)  # free text: no ShapeWorld grammar
        for side in ("base", "tuned"):
            image = page.locator(f"#{side}-image img")
            image.wait_for()
            assert image.evaluate("img => img.complete && img.naturalWidth") == 256  # 32 px enlarged
            scores = page.locator(f"#{side}-scores").inner_text()
            assert "jpeg_compressibility:" in scores and "grader" not in scores, scores
        assert "base vs tuned SD3 model" in page.content()
        assert "EMA weights (train.ema_decay 0.5)" in page.content()
        page.get_by_role("tab", name="Run").click()
        assert "eval/score/overall" in page.locator("#run-summary").inner_text()
