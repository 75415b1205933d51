"""The README's Python snippets run: "Use the trained weights" (diffusers + a flowrl LoRA, on a tiny random SD3
pipeline saved to a temp folder) and "Training from Python" (`load_config` + `train`, 2 iterations on a tiny
random ShapeWorld model). Paths, device and sizes are swapped for the test's; the calls are the README's.

Run: OMP_NUM_THREADS=1 python -m pytest -q tests/test_readme.py
"""

from __future__ import annotations

import re
from pathlib import Path

import torch

from tests.file_module import load_file_module

ROOT = Path(__file__).resolve().parents[1]


def snippet(marker: str) -> str:
    """The first ```python block after ``<!-- marker -->`` in README.md."""
    text = (ROOT / "README.md").read_text()
    found = re.search(rf"<!-- {marker} -->\n```python\n(.*?)```", text, flags=re.S)
    assert found, f"README.md has no ```python block right after <!-- {marker} -->"
    return found.group(1)


def _real_runs():
    return load_file_module(ROOT / "tests" / "eval" / "real_runs.py", "real_runs_for_readme")


def test_use_the_trained_weights_snippet(tmp_path):
    code = snippet("use-weights-snippet")
    assert len(code.strip().splitlines()) == 5 and "pipe.load_lora_weights(" in code
    rr = _real_runs()
    base = rr.tiny_pipelines().build_sd3(tmp_path / "sd3")
    run = rr.train_run("sd3", base, tmp_path / "runs", lora_rank=4, name="r")
    code = (
        code.replace("/models/stable-diffusion-3.5-medium", str(base))
        .replace("runs/<name>/lora", str(run / "lora"))
        .replace('.to("cuda")', "")
        .replace("torch.bfloat16", "torch.float32")
    )
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    assert scope["image"].size == (32, 32)  # the tiny pipeline's default size
    assert scope["pipe"].get_list_adapters() == {"transformer": ["default_0"]}  # the LoRA is loaded


def test_training_from_python_snippet(tmp_path, monkeypatch, capsys):
    from flowrl.shapes.model import build_shapeworld, save_shapeworld
    from flowrl.train import image_cli

    code = snippet("python-api-snippet")
    assert "load_config(" in code and "train(cfg)" in code and "train.iterations=2" in code
    torch.manual_seed(0)
    tiny = tmp_path / "tiny"
    save_shapeworld(
        build_shapeworld(
            num_layers=1, num_attention_heads=2, attention_head_dim=8, text_hidden_size=16, text_layers=1, text_heads=2
        ),
        tiny,
    )
    small = [f"model.path={tiny}", f"run.root={tmp_path / 'runs'}", "train.prompts_per_iteration=2",
             "eval.prompts_per_family=1", "eval.seeds=[0]", "eval.grid_prompts=2"]  # fmt: skip
    load_config = image_cli.load_config  # the test's small sizes first, so the README's overrides win
    patched = lambda *, preset, overrides: load_config(preset=preset, overrides=[*small, *overrides])  # noqa: E731
    monkeypatch.setattr(image_cli, "load_config", patched)
    scope: dict = {}
    exec(compile(code, "README.md", "exec"), scope)
    result = scope["result"]
    assert result.iterations == 2 and (result.run_dir / "config.yaml").is_file()
    assert str(result.run_dir) in capsys.readouterr().out
