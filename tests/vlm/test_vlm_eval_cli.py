"""`flowrl eval --vlm`: per-family accuracy, length and pass@k of a saved VLM; a non-VLM folder is a clear error."""

import json

from flowrl.eval.cli import main as eval_main
from flowrl.vlm.model import KeyedImageVLM, build_processor, build_tiny_llava
from flowrl.vlm.tasks import write_task
from flowrl.vlm.tokenizer import vlm_tokenizer


def test_eval_vlm_reports_families_and_pass_at_k(tmp_path, capsys):
    tok = vlm_tokenizer()
    KeyedImageVLM(build_tiny_llava(tok, text_layers=1, vision_layers=1), tok, build_processor()).save_pretrained(
        tmp_path / "m"
    )
    tok.save_pretrained(tmp_path / "m")
    rows = write_task(tmp_path / "q.jsonl", n=12, split="test", seed=0)
    out = tmp_path / "r.json"
    rc = eval_main(["--vlm", str(tmp_path / "m"), "--questions", str(tmp_path / "q.jsonl"), "--k", "2",
                    "--max-new-tokens", "6", "--json", str(out)])  # fmt: skip
    assert rc == 0
    res = json.loads(out.read_text())
    assert res["rows"] == 12 and len(res["correct"]) == 12
    assert set(res["per_family"]) == {r["family"] for r in rows}
    assert 1 <= res["mean_length"] <= 6 and 0 <= res["pass@2"] <= 1
    assert res["accuracy"] == sum(res["correct"]) / 12


def test_eval_vlm_rejects_a_text_model(capsys):
    assert eval_main(["--vlm", "assets/arith_lm"]) == 2
    assert "not a VLM" in capsys.readouterr().err
