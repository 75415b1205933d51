"""`flowrl sample` / `flowrl eval` on the real-model kinds: tiny random SD3 and FLUX pipelines, a LoRA on them, and
run folders of real one-iteration `flowrl train` runs with EMA (tests/eval/real_runs.py). CPU, offline.

Run: OMP_NUM_THREADS=1 python -m pytest -q tests/eval/test_real_models.py
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from real_runs import PROMPTS, write_prompts
from safetensors.torch import load_file

from flowrl.cli import main as flowrl_main
from flowrl.eval.generate import generate
from flowrl.eval.load_model import load_model
from flowrl.models.detect import detect_kind


def _png(path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1)


def _samples(model) -> torch.Tensor:
    images, _ = generate(model, PROMPTS, samples_per_prompt=2, seed=3, num_inference_steps=2, show_progress=False)
    return torch.stack(images)  # (4, 3, 32, 32)


def test_kind_is_detected_from_the_folder(sd3_dir, flux_dir, tmp_path):
    assert detect_kind(sd3_dir) == "sd3" and detect_kind(flux_dir) == "flux"
    (tmp_path / "sw").mkdir()
    (tmp_path / "sw" / "flowrl_shapeworld.json").write_text("{}")
    (tmp_path / "sw" / "model_index.json").write_text('{"_class_name": "StableDiffusion3Pipeline"}')
    assert detect_kind(tmp_path / "sw") == "shapeworld"  # ShapeWorld's metadata wins over its pipeline class
    (tmp_path / "xl").mkdir()
    (tmp_path / "xl" / "model_index.json").write_text('{"_class_name": "StableDiffusionXLPipeline"}')
    with pytest.raises(ValueError, match="StableDiffusionXLPipeline.*--kind"):
        detect_kind(tmp_path / "xl")
    with pytest.raises(FileNotFoundError, match="nor a diffusers pipeline folder"):
        detect_kind(tmp_path)


@pytest.mark.parametrize("kind", ["sd3", "flux"])
def test_sample_and_eval_write_their_outputs(kind, sd3_dir, flux_dir, tmp_path, capsys):
    folder = {"sd3": sd3_dir, "flux": flux_dir}[kind]
    common = ["--model", str(folder), "--steps", "2", "--resolution", "32", "--no-progress"]
    out = tmp_path / "grid.png"
    assert flowrl_main(["sample", *common, "--prompt", PROMPTS[0], "--prompt", PROMPTS[1], "--num-images", "2",
                        "--out", str(out)]) == 0  # fmt: skip
    assert Image.open(out).size[1] > 2 * 32  # two rows of 32 px images (labels and padding around them)
    prompts = write_prompts(tmp_path)
    argv = ["eval", *common[:-1], "--prompts", str(prompts), "--samples-per-prompt", "2", "--rewards",
            "jpeg_compressibility", "--out", str(tmp_path / "ev")]  # fmt: skip
    capsys.readouterr()
    assert flowrl_main(argv) == 0
    assert "flowrl eval: sampling" not in capsys.readouterr().err  # the progress bars stay quiet off a terminal
    scores = json.loads((tmp_path / "ev" / "scores.json").read_text())
    assert [r["prompt"] for r in scores["rows"]] == [PROMPTS[0]] * 2 + [PROMPTS[1]] * 2
    assert _png(tmp_path / "ev" / scores["rows"][0]["image"]).shape == (3, 32, 32)
    for name in ("summary.json", "report.md", "grid_jpeg_compressibility.png"):
        assert (tmp_path / "ev" / name).is_file()
    assert f"{kind} model {folder}" in (tmp_path / "ev" / "report.md").read_text()


def _checkpoint(run, name):
    return load_file(next((run / "checkpoints").iterdir()) / name)


def test_lora_run_with_ema(sd3_dir, sd3_lora_run):
    # the trainer saves the EMA copy as lora/ (the weights its evaluations used); the raw ones stay in the checkpoint
    ema, raw_state = _checkpoint(sd3_lora_run, "ema.safetensors"), _checkpoint(sd3_lora_run, "model.safetensors")
    tuned = load_model(run=sd3_lora_run)
    assert tuned.kind == "sd3" and "EMA weights (train.ema_decay 0.5)" in tuned.source
    lora = [p for n, p in tuned.adapter.transformer.named_parameters() if "lora_" in n]
    assert len(lora) == len(ema) and all(torch.equal(p, ema[str(i)]) for i, p in enumerate(lora))
    raw = load_model(run=sd3_lora_run, ema=False)
    assert "raw weights of step_000001" in raw.source
    raw_lora = {n: p for n, p in raw.adapter.transformer.named_parameters() if "lora_" in n}
    assert len(raw_lora) == len(raw_state)
    for key, value in raw_state.items():  # peft keys; the loaded adapter's parameters carry its name
        assert torch.equal(raw_lora[key.replace(".weight", ".loaded_lora.weight")], value)
    same_lora = load_model(sd3_dir, lora=sd3_lora_run / "lora", resolution=32)
    base = load_model(run=sd3_lora_run, trained=False)
    assert base.num_inference_steps == 2 and base.image_size == 32  # the run's evaluation settings
    assert base.adapter.max_sequence_length == tuned.adapter.max_sequence_length == 128  # the preset's T5 length
    lora_of = lambda m: [p for n, p in m.adapter.transformer.named_parameters() if "lora_" in n]  # noqa: E731
    assert all(torch.equal(a, b) for a, b in zip(lora_of(same_lora), lora_of(tuned), strict=True))  # --lora run/lora
    samples = {name: _samples(m) for name, m in [("ema", tuned), ("raw", raw), ("base", base)]}
    assert (samples["ema"] - samples["base"]).abs().max() > 1e-4  # the LoRA changes the samples
    assert (samples["raw"] - samples["ema"]).abs().max() > 1e-6  # EMA (decay 0.5) is not the raw weights


def test_full_fine_tuning_run_with_ema(flux_dir, flux_full_run):
    tuned = load_model(run=flux_full_run)
    assert tuned.kind == "flux" and "full fine-tune" in tuned.source and "EMA" in tuned.source
    ema = _checkpoint(flux_full_run, "ema.safetensors")
    params = list(tuned.adapter.transformer.parameters())
    assert len(params) == len(ema) and all(torch.equal(p, ema[str(i)]) for i, p in enumerate(params))
    raw = load_model(run=flux_full_run, ema=False)
    state = raw.adapter.transformer.state_dict()
    assert all(torch.equal(state[k], v) for k, v in _checkpoint(flux_full_run, "model.safetensors").items())
    base = load_model(flux_dir, resolution=32)
    assert any(not torch.equal(base.adapter.transformer.state_dict()[k], v) for k, v in state.items())


def test_eval_of_two_runs_and_compare(sd3_dir, sd3_lora_run, tmp_path, capsys):
    prompts = write_prompts(tmp_path)
    common = ["--prompts", str(prompts), "--samples-per-prompt", "2", "--rewards", "jpeg_compressibility",
              "--no-progress"]  # fmt: skip
    assert flowrl_main(["eval", "--model", str(sd3_dir), "--resolution", "32", "--steps", "2", *common,
                        "--out", str(tmp_path / "base")]) == 0  # fmt: skip
    assert flowrl_main(["eval", "--run", str(sd3_lora_run), *common, "--out", str(tmp_path / "tuned")]) == 0
    report = (tmp_path / "tuned" / "report.md").read_text()
    assert f"LoRA {sd3_lora_run / 'lora'}" in report and "2 Euler steps" in report
    capsys.readouterr()
    assert flowrl_main(["eval", "--compare", str(tmp_path / "tuned"), str(tmp_path / "base"), "--out",
                        str(tmp_path / "cmp")]) == 0  # fmt: skip
    assert "A win rate" in capsys.readouterr().out
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())["jpeg_compressibility"]
    assert result["prompts"] == 2 and 0 <= result["win_ci_low"] <= result["win_rate"] <= result["win_ci_high"] <= 1


def test_usage_errors_name_the_fix(sd3_dir, sd3_lora_run, tmp_path, capsys):
    prompts = write_prompts(tmp_path)
    base = ["eval", "--prompts", str(prompts), "--rewards", "jpeg_compressibility", "--out", str(tmp_path / "o")]
    assert flowrl_main([*base, "--run", str(sd3_lora_run), "--lora", str(sd3_lora_run / "lora")]) == 2
    assert "--lora and --run both name trained weights" in capsys.readouterr().err
    assert flowrl_main([*base, "--run", str(tmp_path)]) == 2
    assert "no config.yaml" in capsys.readouterr().err
    moved = tmp_path / "moved"
    moved.mkdir()
    config = (sd3_lora_run / "config.yaml").read_text().replace(str(sd3_dir), str(tmp_path / "gone"))
    (moved / "config.yaml").write_text(config)
    assert flowrl_main([*base, "--run", str(moved)]) == 2
    assert "pass --model with the local folder" in capsys.readouterr().err
    assert flowrl_main([*base, "--model", str(sd3_dir), "--lora", str(tmp_path)]) == 2
    assert "No LoRA at" in capsys.readouterr().err
    assert flowrl_main([*base, "--run", str(sd3_lora_run), "--kind", "flux"]) == 2
    assert "--kind flux but" in capsys.readouterr().err
    assert flowrl_main([*base, "--images", str(tmp_path), "--model", str(sd3_dir)]) == 2
    assert "exactly one of" in capsys.readouterr().err
