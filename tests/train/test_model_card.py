"""The model card `flowrl train` writes beside the final weights: its fields, and every command and snippet in it
runs (the reproduction command, `flowrl sample`, the diffusers snippet on CPU). Tiny random SD3 / FLUX pipelines,
one-iteration runs (tests/eval/real_runs.py).

Run: OMP_NUM_THREADS=1 python -m pytest -q tests/train/test_model_card.py
"""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

from flowrl.cli import main as flowrl_main
from flowrl.train.model_card import launch_command
from tests.file_module import load_file_module


def _real_runs():
    return load_file_module(Path(__file__).parents[1] / "eval" / "real_runs.py", "real_runs_for_card")


def _blocks(text: str, language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", text, flags=re.S)


def _run_snippet(code: str) -> None:
    """Run a diffusers snippet of the card on CPU in float32 (the card targets a GPU in bfloat16)."""
    code = code.replace('.to("cuda")', "").replace("torch.bfloat16", "torch.float32").replace("<your prompt>", "a cat")
    scope: dict = {}
    exec(compile(code, "<model card>", "exec"), scope)
    assert scope["image"].size == (32, 32)


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    rr = _real_runs()
    root = tmp_path_factory.mktemp("card")
    sd3 = rr.tiny_pipelines().build_sd3(root / "sd3")
    flux = rr.tiny_pipelines().build_flux(root / "flux")
    lora = rr.train_run("sd3", sd3, root / "runs", lora_rank=4, name="sd3_lora")
    full = rr.train_run("flux", flux, root / "runs", lora_rank=0, name="flux_full")
    return lora, full, sd3


def test_lora_card_fields_commands_and_snippet(runs, tmp_path):
    run, _, sd3 = runs
    card = (run / "lora" / "README.md").read_text()
    for field in (f"`{sd3}` (sd3)", "LoRA rank 4, alpha 8", "`flow_grpo`", "`uniform_noise` × 1",
                  "1 iterations × 2 prompts", "decay 0.5", "`eval/score/uniform_noise`"):  # fmt: skip
        assert field in card, field
    commands = _blocks(card, "bash")
    reproduce = next(c for c in commands if "run.name=sd3_lora-repro" in c).strip()
    assert flowrl_main(shlex.split(reproduce)[1:]) == 0
    assert (run.parent / "sd3_lora-repro" / "lora" / "README.md").is_file()
    sample = next(line for c in commands for line in c.splitlines() if line.startswith("flowrl sample"))
    out = tmp_path / "card_sample.png"
    assert flowrl_main([*shlex.split(sample)[1:-2], "--out", str(out), "--no-progress"]) == 0 and out.is_file()
    (snippet,) = _blocks(card, "python")
    assert "pipe.load_lora_weights(" in snippet and "max_sequence_length=128" in snippet  # the preset's T5 length
    _run_snippet(snippet)


def test_full_fine_tuning_card_snippet_swaps_the_transformer(runs):
    _, run, _ = runs
    card = (run / "final" / "README.md").read_text()
    assert "| trained weights | all |" in card and "embedded" not in card
    (snippet,) = _blocks(card, "python")
    assert "FluxTransformer2DModel.from_pretrained(" in snippet and "guidance_scale=3.5" in snippet
    _run_snippet(snippet)


def test_launch_command_and_preset_from_the_command_line():
    argv = ["/venv/bin/flowrl", "train", "--preset", "sd35m_flow_grpo_pickscore", "model.path=/models/sd 3.5"]
    assert launch_command(argv) == "flowrl train --preset sd35m_flow_grpo_pickscore 'model.path=/models/sd 3.5'"
    assert launch_command(["/x/flowrl/train/image.py", "--resume", "runs/a"]) == (
        "python -m flowrl.train.image --resume runs/a"
    )
    assert launch_command(["/venv/bin/pytest", "-q"]) is None
