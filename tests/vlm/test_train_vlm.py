"""`flowrl train-vlm` runs the text trainer end to end with the image-conditioned policy and saves a loadable VLM."""

import json

from flowrl.vlm.model import KeyedImageVLM, build_processor, build_tiny_llava, load_vlm
from flowrl.vlm.tasks import write_task
from flowrl.vlm.tokenizer import vlm_tokenizer
from flowrl.vlm_cli import main


def test_train_vlm_two_steps(tmp_path):
    tok = vlm_tokenizer()
    model = KeyedImageVLM(build_tiny_llava(tok, text_layers=1, vision_layers=1), tok, build_processor())
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    write_task(tmp_path / "train.jsonl", n=8, split="train", seed=0)
    write_task(tmp_path / "test.jsonl", n=4, split="test", seed=0)
    rc = main([
        f"model.path={tmp_path / 'm'}", f"task.train_file={tmp_path / 'train.jsonl'}",
        f"task.test_file={tmp_path / 'test.jsonl'}", "train.steps=2", "train.prompts_per_step=2",
        "generation.group_size=2", "generation.max_new_tokens=6", "eval.max_new_tokens=6", f"run.root={tmp_path}",
        "run.name=r", "run.tensorboard=false", "loss.kl_beta=0.04",
    ])  # fmt: skip
    assert rc == 0
    logged = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    assert "eval/accuracy" in logged[0] and "reward" in logged[-1] and "kl" in logged[-1]
    again, _ = load_vlm(tmp_path / "r" / "final")  # the final folder is a VLM again (weights, tokenizer, processor)
    assert again.llava.state_dict().keys() == model.llava.state_dict().keys()
    # (an untrained model scores 0 on every question, so no gradient: learning is measured in docs/vlm.md)
