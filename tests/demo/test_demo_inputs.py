"""Input validation, model loading and scoring of the demo, without a browser."""

import io
import math
import shutil

import pytest
import torch
from demo_runs import write_run_config
from PIL import Image

from flowrl.demo import upload
from flowrl.demo.inputs import MAX_PROMPT_CHARS, DemoInputError, check_generation, check_prompt
from flowrl.demo.run_view import load_run_view
from flowrl.demo.upload import read_upload
from flowrl.eval.load_model import load_model
from flowrl.runtime.checkpoint import save_checkpoint

gr = pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")

from flowrl.demo import app  # noqa: E402


def test_valid_request_is_normalised():
    request = check_generation("  a   red circle ", 3.0, 4, 2)
    assert request == ("a red circle", 3, 4, 2.0)
    assert isinstance(request.seed, int) and isinstance(request.guidance, float)


@pytest.mark.parametrize(
    ("prompt", "seed", "steps", "guidance", "message"),
    [
        ("", 0, 4, 4.0, "empty"),
        ("   ", 0, 4, 4.0, "empty"),
        ("a " * MAX_PROMPT_CHARS, 0, 4, 4.0, "limit is 200"),
        ("a purple hexagon", 0, 4, 4.0, "purple"),
        ("a red circle and", 0, 4, 4.0, "Not a ShapeWorld prompt"),
        (None, 0, 4, 4.0, "must be text"),
        ("a red circle", -1, 4, 4.0, "Seed"),
        ("a red circle", 2**31, 4, 4.0, "Seed"),
        ("a red circle", 1.5, 4, 4.0, "Seed"),
        ("a red circle", None, 4, 4.0, "Seed"),
        ("a red circle", 0, 0, 4.0, "Steps"),
        ("a red circle", 0, 101, 4.0, "Steps"),
        ("a red circle", 0, 2.5, 4.0, "Steps"),
        ("a red circle", 0, True, 4.0, "Steps"),
        ("a red circle", 0, math.inf, 4.0, "Steps"),
        ("a red circle", 0, 4, -0.5, "Guidance"),
        ("a red circle", 0, 4, 20.5, "Guidance"),
        ("a red circle", 0, 4, math.nan, "Guidance"),
        ("a red circle", 0, 4, "4", "Guidance"),
    ],
)
def test_invalid_request_names_the_problem(prompt, seed, steps, guidance, message):
    with pytest.raises(DemoInputError, match=message):
        check_generation(prompt, seed, steps, guidance)


def test_prompt_limit_counts_characters_typed():
    with pytest.raises(DemoInputError, match=f"{MAX_PROMPT_CHARS + 1} characters"):
        check_prompt("a red circle" + " " * (MAX_PROMPT_CHARS + 1 - len("a red circle")))


def test_free_text_prompts_for_other_models():
    assert check_generation("a purple hexagon, oil painting", 0, 4, 4.0, shapeworld=False).prompt.endswith("painting")
    with pytest.raises(DemoInputError, match="empty"):
        check_prompt(" ", shapeworld=False)


def test_generate_compares_models_from_the_same_seed(tiny_model_dir, tiny_run_dir):
    base = load_model(run=tiny_run_dir, trained=False)
    tuned = load_model(run=tiny_run_dir)
    assert "full fine-tune" in tuned.source
    base_pic, base_md, tuned_pic, tuned_md, status = app.generate(base, tuned, [], "two blue squares", 7, 2, 4.0)
    assert base_pic.size == tuned_pic.size == (app.DISPLAY_SIZE, app.DISPLAY_SIZE)
    for scores in (base_md, tuned_md):
        assert "grader score" in scores and ("PASS" in scores or "FAIL" in scores)
    assert "seed 7" in status
    again = app.generate(base, tuned, [], "two blue squares", 7, 2, 4.0)
    assert again[0].tobytes() == base_pic.tobytes()  # same seed, same image
    assert tuned_pic.tobytes() != base_pic.tobytes()  # the perturbed weights show


def test_generate_without_run_shows_base_only(tiny_model_dir):
    base = load_model(tiny_model_dir)
    base_pic, base_md, tuned_pic, tuned_md, _ = app.generate(base, None, [], "a red circle", 0, 1, 1.0)
    assert base_pic is not None and "grader score" in base_md
    assert tuned_pic is None and tuned_md == ""


def test_generate_reports_bad_input_in_the_page_without_raising(tiny_model_dir):
    base = load_model(tiny_model_dir)
    with pytest.warns(UserWarning, match="hexagon"):
        out = app.generate(base, None, [], "a red hexagon", 0, 2, 4.0)
    assert out[0] is None and out[2] is None
    assert "hexagon" in out[4]


def test_extra_reward_is_listed(tiny_model_dir):
    from rewards import load_reward

    base = load_model(tiny_model_dir)
    _, base_md, _, _, _ = app.generate(base, None, [load_reward("jpeg_compressibility")], "a red circle", 0, 1, 1.0)
    assert "jpeg_compressibility:" in base_md


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_upload_is_read_and_scored(tmp_path):
    path = tmp_path / "red.png"
    path.write_bytes(_png(Image.new("RGB", (64, 64), (255, 255, 255))))
    image = read_upload(str(path), 32)
    assert image.shape == (3, 32, 32) and float(image.min()) == 1.0
    picture, scores, status = app.score_upload(32, [], str(path), "a red circle")
    assert picture is not None and "FAIL" in scores and "detected: nothing" in scores
    assert status == "Scored the upload against 'a red circle'."


@pytest.mark.parametrize("content", [b"", b"not an image at all", _png(Image.new("RGB", (8, 8)))[:40]])
def test_unreadable_upload_gives_a_message(tmp_path, content):
    path = tmp_path / "upload.png"
    path.write_bytes(content)
    with pytest.raises(DemoInputError, match="Could not read the upload"):
        read_upload(str(path), 32)
    with pytest.warns(UserWarning):
        picture, scores, message = app.score_upload(32, [], str(path), "a red circle")
    assert picture is None and scores == "" and message.startswith("Error: Could not read the upload")


def test_missing_or_huge_upload_gives_a_message(tmp_path, monkeypatch):
    with pytest.raises(DemoInputError, match="Upload an image first"):
        read_upload(None, 32)
    path = tmp_path / "big.png"
    path.write_bytes(_png(Image.new("RGB", (20, 20))))
    monkeypatch.setattr(upload, "MAX_UPLOAD_PIXELS", 399)
    with pytest.raises(DemoInputError, match="limit is 399 pixels"):
        read_upload(str(path), 32)


def test_run_folder_errors_say_what_is_missing(tmp_path, tiny_model_dir):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(run=tmp_path / "nope")
    write_run_config(tmp_path / "unfinished", tiny_model_dir)
    with pytest.raises(FileNotFoundError, match="has no final/.*flowrl train --resume"):
        load_model(run=tmp_path / "unfinished")
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_model(tmp_path / "no-model")


def test_lora_run_is_applied_to_the_base(tmp_path, tiny_model_dir):
    from flowrl.models.shapeworld import load_shapeworld_adapter

    adapter = load_shapeworld_adapter(tiny_model_dir, guidance_scale=4.0, lora_rank=2, lora_alpha=2.0)
    with torch.no_grad():
        for name, p in adapter.transformer.named_parameters():
            if "lora_B" in name:
                p.fill_(0.1)
    adapter.save_trained(tmp_path)
    write_run_config(tmp_path, tiny_model_dir, lora_rank=2)
    tuned = load_model(run=tmp_path)
    assert tuned.source.startswith("LoRA")
    base = load_model(run=tmp_path, trained=False)
    base_pic, _, tuned_pic, tuned_md, _ = app.generate(base, tuned, [], "a red circle", 0, 1, 1.0)
    assert "grader score" in tuned_md and tuned_pic.tobytes() != base_pic.tobytes()


def test_ema_run_shows_its_final_weights_and_no_ema_the_checkpoint_raw_weights(tmp_path, tiny_model_dir, tiny_run_dir):
    # the trainer saves the EMA copy as final/; the raw trained weights stay in the last checkpoint's model state
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir / "final", run / "final")
    write_run_config(run, tiny_model_dir, ema_decay=0.9)
    final = load_model(run / "final").adapter.transformer.state_dict()
    raw = {k: torch.full_like(v, 0.5) for k, v in final.items()}
    save_checkpoint(run, 3, {"model": raw})
    tuned = load_model(run=run)
    assert "EMA weights (train.ema_decay 0.9)" in tuned.source
    assert all(torch.equal(v, final[k]) for k, v in tuned.adapter.transformer.state_dict().items())
    untuned = load_model(run=run, ema=False)
    assert "raw weights of step_000003" in untuned.source
    assert all(bool((p == 0.5).all()) for p in untuned.adapter.transformer.parameters())


def test_no_ema_needs_fitting_raw_weights(tmp_path, tiny_model_dir, tiny_run_dir):
    run = tmp_path / "run"
    shutil.copytree(tiny_run_dir / "final", run / "final")
    write_run_config(run, tiny_model_dir, ema_decay=0.9)
    with pytest.raises(FileNotFoundError, match="drop --no-ema"):
        load_model(run=run, ema=False)
    save_checkpoint(run, 3, {"model": {"x": torch.zeros(3)}})
    with pytest.raises(ValueError, match="does not fit the run's model"):
        load_model(run=run, ema=False)


def test_run_view_reads_curves_grids_and_metrics(tiny_run_dir):
    view = load_run_view(tiny_run_dir)
    assert view.curves is not None and [name for _, name in view.grids] == ["eval_00002"]
    assert "eval/strict/overall" in view.summary and "0.4000 at step 2" in view.summary


def test_main_warns_for_a_public_host_and_fails_cleanly_without_a_model(tiny_model_dir, monkeypatch, capsys):
    launched = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: launched.update(kw))
    assert app.main(["--model", str(tiny_model_dir), "--host", "0.0.0.0", "--port", "7999"]) == 0
    assert launched["server_name"] == "0.0.0.0" and launched["server_port"] == 7999 and launched["share"] is False
    assert "warning: binding to 0.0.0.0" in capsys.readouterr().err
    assert app.main(["--model", str(tiny_model_dir)]) == 0
    assert launched["server_name"] == "127.0.0.1" and "warning" not in capsys.readouterr().err
    assert app.main(["--model", str(tiny_model_dir / "missing")]) == 2
    assert "does not exist" in capsys.readouterr().err
    assert app.main(["--model", str(tiny_model_dir), "--reward", "length"]) == 2
    assert "--reward length cannot score an image" in capsys.readouterr().err
