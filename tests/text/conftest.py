"""Fixtures of the text tests: a tiny random Llama with the character tokenizer, saved to a folder, and its task."""

import pytest
import torch
from transformers import LlamaConfig, LlamaForCausalLM

from flowrl.text.arith import ALPHABET, held_out_problems, write_jsonl
from flowrl.text.char_tokenizer import char_tokenizer


def build_tiny(folder, *, seed: int = 0):
    tok = char_tokenizer(ALPHABET)
    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=len(tok),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
        pad_token_id=tok.pad_token_id,
        bos_token_id=tok.bos_token_id,
        eos_token_id=tok.eos_token_id,
        tie_word_embeddings=True,
    )
    model = LlamaForCausalLM(cfg)
    model.save_pretrained(folder)
    tok.save_pretrained(folder)
    problems = held_out_problems(60, seed=7)
    write_jsonl(problems[:40], folder / "train.jsonl")
    write_jsonl(problems[40:], folder / "test.jsonl")
    return folder


def run_overrides(folder, tmp) -> list[str]:
    """Overrides of a 2-step test run of the model `build_tiny` wrote to `folder` (its task files), under `tmp`."""
    return [
        f"model.path={folder}",
        f"task.train_file={folder / 'train.jsonl'}",
        f"task.test_file={folder / 'test.jsonl'}",
        f"run.root={tmp / 'runs'}",
        "run.tensorboard=false",
        "run.log_every=1",
        "train.steps=2",
        "optim.lr=1e-3",
        "eval.every_minutes=0",
    ]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("tiny_lm"))
