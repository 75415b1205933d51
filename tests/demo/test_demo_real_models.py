"""The demo on tiny random SD3 / FLUX pipelines and real one-iteration runs on them (an SD3 LoRA, a FLUX full
fine-tune, both with EMA), without a browser."""

import pytest

from flowrl.eval.load_model import load_model

gr = pytest.importorskip("gradio", reason="the demo extra is not installed: pip install -e '.[demo]'")

from flowrl.demo import app  # noqa: E402


def test_sd3_run_base_against_tuned(sd3_lora_run):
    base, tuned = load_model(run=sd3_lora_run, trained=False), load_model(run=sd3_lora_run)
    assert base.kind == tuned.kind == "sd3" and "LoRA" in tuned.source and "base model" in base.source
    base_pic, base_md, tuned_pic, tuned_md, status = app.generate(base, tuned, [], "a red car, at night", 5, 2, 4.5)
    assert base_pic.size == tuned_pic.size == (app.DISPLAY_SIZE, app.DISPLAY_SIZE)
    assert base_md == tuned_md == "No scores: pass --reward NAME to score the images."
    assert tuned_pic.tobytes() != base_pic.tobytes() and "seed 5" in status


def test_a_lora_run_shares_one_pipeline_and_its_base_side_is_the_base_model(sd3_lora_run):
    import argparse

    from flowrl.demo.models import load_models

    args = argparse.Namespace(model=None, kind=None, lora=None, lora_alpha=None, run=str(sd3_lora_run), no_ema=False,
                              device="cpu", dtype="float32", resolution=0)  # fmt: skip
    base, tuned = load_models(args)
    assert base.adapter is tuned.adapter and "LoRA off" in base.source and "EMA" in tuned.source
    first = app.generate(base, tuned, [], "a photo of a cat", 2, 2, 4.5)
    alone = load_model(run=sd3_lora_run, trained=False)  # the base pipeline loaded on its own
    assert app.generate(alone, None, [], "a photo of a cat", 2, 2, 4.5)[0].tobytes() == first[0].tobytes()
    again = app.generate(base, tuned, [], "a photo of a cat", 2, 2, 4.5)
    assert again[2].tobytes() == first[2].tobytes() != first[0].tobytes()  # the LoRA is back on for the tuned side


def test_flux_full_fine_tune_against_its_base(flux_full_run):
    base, tuned = load_model(run=flux_full_run, trained=False), load_model(run=flux_full_run)
    assert base.adapter is not tuned.adapter and base.kind == "flux" and "full fine-tune" in tuned.source
    base_pic, _, tuned_pic, tuned_md, status = app.generate(base, tuned, [], "a red car in the rain", 1, 2, 1.0)
    assert base_pic.size == tuned_pic.size and tuned_pic.tobytes() != base_pic.tobytes() and "seed 1" in status


def test_main_takes_a_run_or_a_lora(sd3_dir, sd3_lora_run, monkeypatch, capsys):
    built = {}
    monkeypatch.setattr(gr.Blocks, "launch", lambda self, **kw: built.update(kw))
    assert app.main(["--run", str(sd3_lora_run), "--reward", "jpeg_compressibility"]) == 0
    argv = ["--model", str(sd3_dir), "--lora", str(sd3_lora_run / "lora"), "--resolution", "32"]
    assert app.main(argv) == 0
    assert app.main(["--model", str(sd3_dir), "--lora", str(sd3_dir)]) == 2
    assert "No LoRA at" in capsys.readouterr().err
