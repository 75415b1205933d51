"""`flowrl eval` end to end on ShapeWorld images (rendered, and sampled from a tiny model), with `shapes`,
`jpeg_compressibility` and a random-weight preference model; bad prompt rows; `--compare`.
Run: pytest tests/eval/test_eval_cli.py
"""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from flowrl.cli import main as flowrl_main
from flowrl.eval.cli import main
from flowrl.shapes.render import render_prompts
from tests.file_module import load_file_module

PROMPTS = ["a red circle", "two blue squares", "a green triangle", "three yellow circles", "a blue square"]


def _fixtures():
    path = Path(__file__).resolve().parents[1] / "rewards" / "reward_fixtures.py"
    return load_file_module(path, "reward_fixtures_for_eval")


def _png_tensor(path: Path) -> torch.Tensor:
    return torch.from_numpy(np.asarray(Image.open(path).convert("RGB")).copy()).permute(2, 0, 1).float() / 255


@pytest.fixture
def folder(tmp_path):
    """Rendered ShapeWorld images as PNGs and a JSONL prompts file naming them."""
    images = render_prompts(PROMPTS, seed=0)  # (5, 3, 32, 32)
    (tmp_path / "imgs").mkdir()
    lines = []
    for i, (img, prompt) in enumerate(zip(images, PROMPTS, strict=True)):
        u8 = (img * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(u8).save(tmp_path / "imgs" / f"{i}.png")
        lines.append(json.dumps({"prompt": prompt, "image": f"{i}.png", "tag": i}))
    (tmp_path / "prompts.jsonl").write_text("\n".join(lines) + "\n")
    return tmp_path


def _read_csv(path: Path) -> list[dict]:
    with path.open(newline="") as f:
        return list(csv.DictReader(f))


def test_folder_mode_scores_summary_and_report(folder, capsys):
    out = folder / "out"
    code = main(
        ["--images", str(folder / "imgs"), "--prompts", str(folder / "prompts.jsonl"), "--rewards", "shapes",
         "jpeg_compressibility", "--out", str(out), "--no-progress", "--batch-size", "2"]
    )  # fmt: skip
    assert code == 0
    rows = _read_csv(out / "scores.csv")
    assert [r["prompt"] for r in rows] == PROMPTS
    # the renderer draws what the prompt says, so the grader gives full credit
    assert [float(r["shapes"]) for r in rows] == [1.0] * 5
    for i, r in enumerate(rows):  # Flow-GRPO's JPEG reward by hand: -(PIL quality-95 size / 1000) / 500
        buf = io.BytesIO()
        Image.open(folder / "imgs" / f"{i}.png").convert("RGB").save(buf, format="JPEG", quality=95)
        assert float(r["jpeg_compressibility"]) == pytest.approx(-len(buf.getvalue()) / 1000 / 500, rel=1e-6)
    data = json.loads((out / "scores.json").read_text())
    assert data["rewards"] == ["shapes", "jpeg_compressibility"] and data["rows"][2]["metadata"] == {"tag": 2}
    summary = json.loads((out / "summary.json").read_text())
    jpeg = np.array([float(r["jpeg_compressibility"]) for r in rows])
    s = summary["jpeg_compressibility"]
    assert s["n"] == 5 and s["mean"] == pytest.approx(jpeg.mean()) and s["std"] == pytest.approx(jpeg.std(ddof=1))
    assert s["ci_low"] <= s["mean"] <= s["ci_high"] and jpeg.min() <= s["ci_low"] and s["ci_high"] <= jpeg.max()
    assert summary["shapes"]["ci_low"] == summary["shapes"]["ci_high"] == 1.0
    report = (out / "report.md").read_text()
    assert "grid_shapes.png" in report and "grid_jpeg_compressibility.png" in report
    assert Image.open(out / "grid_shapes.png").size[0] > 0
    assert "| jpeg_compressibility | 5 |" in capsys.readouterr().out


def test_bad_rows_are_reported_by_line_and_skipped_only_on_request(folder, capsys):
    text = (folder / "prompts.jsonl").read_text().splitlines()
    text[1] = "{not json"  # line 2
    text[3] = json.dumps({"image": "3.png"})  # line 4: no prompt
    text.append(json.dumps({"prompt": "a red circle", "image": "missing.png"}))  # line 6
    (folder / "bad.jsonl").write_text("\n".join(text) + "\n")
    argv = ["--images", str(folder / "imgs"), "--prompts", str(folder / "bad.jsonl"), "--rewards", "shapes",
            "--out", str(folder / "o"), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "line 2: invalid JSON" in err and "line 4: 'prompt'" in err and "line 6: image 'missing.png'" in err
    assert not (folder / "o" / "scores.csv").exists()
    assert main([*argv, "--skip-bad"]) == 0
    assert [r["prompt"] for r in _read_csv(folder / "o" / "scores.csv")] == [PROMPTS[0], PROMPTS[2], PROMPTS[4]]


def test_csv_prompts_file(folder):
    with (folder / "prompts.csv").open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["prompt", "image"])
        w.writerows([[p, f"{i}.png"] for i, p in enumerate(PROMPTS)])
        w.writerow(["only one field"])  # line 7: wrong field count
    argv = ["--images", str(folder / "imgs"), "--prompts", str(folder / "prompts.csv"), "--rewards", "shapes",
            "--out", str(folder / "c"), "--no-progress"]  # fmt: skip
    assert main(argv) == 2
    assert main([*argv, "--skip-bad"]) == 0
    assert len(_read_csv(folder / "c" / "scores.csv")) == 5


def test_model_mode_fixed_seeds(tmp_path):
    from flowrl.shapes.model import build_shapeworld, save_shapeworld

    torch.manual_seed(0)
    model = build_shapeworld(num_layers=1, num_attention_heads=2, attention_head_dim=8, text_hidden_size=16,
                             text_layers=1, text_heads=2)  # fmt: skip
    save_shapeworld(model, tmp_path / "model")
    (tmp_path / "p.jsonl").write_text("\n".join(json.dumps({"prompt": p}) for p in PROMPTS[:3]) + "\n")
    runs = []
    for name in ("a", "b"):
        argv = ["--model", str(tmp_path / "model"), "--prompts", str(tmp_path / "p.jsonl"), "--samples-per-prompt",
                "2", "--steps", "2", "--seed", "7", "--rewards", "shapes", "jpeg_compressibility", "--out",
                str(tmp_path / name), "--no-progress"]  # fmt: skip
        assert flowrl_main(["eval", *argv]) == 0
        runs.append(_read_csv(tmp_path / name / "scores.csv"))
    assert runs[0] == runs[1]  # fixed seeds: identical samples and scores
    assert [r["seed"] for r in runs[0]] == ["7", "7", "8", "8", "9", "9"]
    assert [r["sample"] for r in runs[0]] == ["0", "1"] * 3
    for r in runs[0]:
        assert _png_tensor(tmp_path / "a" / r["image"]).shape == (3, 32, 32)
    assert (tmp_path / "a" / "report.md").exists()


def test_random_weight_preference_model(folder):
    fx = _fixtures()
    clip = fx.clip_folder(folder / "clip", bpe=fx.write_bpe(folder / "bpe.gz"), seed=1)
    fx.laion_mlp(folder / "mlp.pth")
    out = folder / "pref"
    argv = ["--images", str(folder / "imgs"), "--prompts", str(folder / "prompts.jsonl"), "--rewards", "aesthetic",
            "--reward-arg", "aesthetic", f"path={folder / 'mlp.pth'}", "--reward-arg", "aesthetic",
            f"clip_path={clip}", "--out", str(out), "--no-progress"]  # fmt: skip
    assert main(argv) == 0
    from rewards import load_reward

    reward = load_reward("aesthetic", path=folder / "mlp.pth", clip_path=clip)
    images = torch.stack([_png_tensor(folder / "imgs" / f"{i}.png") for i in range(5)])
    expected = reward(images, PROMPTS).tolist()
    got = [float(r["aesthetic"]) for r in _read_csv(out / "scores.csv")]
    assert got == pytest.approx(expected, abs=1e-6)
    assert (out / "grid_aesthetic.png").exists()
    # --dtype reaches the preference model: bfloat16 scores are near the float32 ones, not equal to them
    assert main([*argv[:-3], "--out", str(folder / "bf16"), "--dtype", "bfloat16", "--batch-size", "2"]) == 0
    bf16 = [float(r["aesthetic"]) for r in _read_csv(folder / "bf16" / "scores.csv")]
    assert bf16 == pytest.approx(expected, abs=0.05) and bf16 != pytest.approx(expected, abs=1e-6)


def _score_file(path: Path, prompts: list[str], values: list[float]) -> Path:
    rows = [{"prompt": p, "scores": {"r": v}} for p, v in zip(prompts, values, strict=True)]
    path.write_text(json.dumps({"rewards": ["r"], "rows": rows}))
    return path


def test_compare_win_rates_and_paired_difference(tmp_path, capsys):
    # A: prompt p1 samples 1, 3 (mean 2); p2: 5; p3: 0.  B: p1: 1; p2: 5; p3: 1.
    # per-prompt A - B = [1, 0, -1] -> wins 1/3, ties 1/3, win rate 1/3 + 1/6 = 0.5, mean diff 0
    a = _score_file(tmp_path / "a.json", ["p1", "p1", "p2", "p3"], [1.0, 3.0, 5.0, 0.0])
    b = _score_file(tmp_path / "b.json", ["p1", "p2", "p3", "p4"], [1.0, 5.0, 1.0, 9.0])  # p4 only in B
    assert main(["--compare", str(a), str(b), "--out", str(tmp_path / "cmp")]) == 0
    result = json.loads((tmp_path / "cmp" / "compare.json").read_text())["r"]
    assert result["prompts"] == 3 and result["win_rate"] == pytest.approx(0.5)
    assert result["tie_rate"] == pytest.approx(1 / 3) and result["mean_diff"] == pytest.approx(0.0)
    assert -1.0 <= result["ci_low"] <= 0.0 <= result["ci_high"] <= 1.0
    captured = capsys.readouterr()
    assert "| r | 3 | 0.500 |" in captured.out and "1 prompt(s) appear in only one file" in captured.err


def test_compare_constant_shift(tmp_path):
    a = _score_file(tmp_path / "a.json", ["x", "y", "z"], [1.5, 2.5, 3.5])
    b = _score_file(tmp_path / "b.json", ["x", "y", "z"], [1.0, 2.0, 3.0])
    assert main(["--compare", str(a), str(b), "--out", str(tmp_path / "c")]) == 0
    r = json.loads((tmp_path / "c" / "compare.json").read_text())["r"]
    assert r["win_rate"] == 1.0 and r["mean_diff"] == pytest.approx(0.5)
    assert r["ci_low"] == pytest.approx(0.5) and r["ci_high"] == pytest.approx(0.5)


def test_usage_errors(tmp_path, capsys):
    assert main(["--images", str(tmp_path), "--rewards", "shapes", "--out", str(tmp_path / "o")]) == 2
    (tmp_path / "p.jsonl").write_text(json.dumps({"prompt": "a red circle", "image": "0.png"}) + "\n")
    argv = ["--images", str(tmp_path), "--prompts", str(tmp_path / "p.jsonl"), "--rewards", "shapes", "--out", "o"]
    assert main([*argv, "--reward-arg", "pickscore", "path=x"]) == 2
    assert "not in --rewards" in capsys.readouterr().err
