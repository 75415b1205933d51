"""Fixtures of the text tests: a tiny random Llama with the character tokenizer, saved to a folder, and its task."""

import pytest
import torch

from flowrl.text.arith import ALPHABET, held_out_problems, write_jsonl
from flowrl.text.chain import held_out_chains, write_chains
from flowrl.text.char_lm import char_llama
from flowrl.text.char_tokenizer import char_tokenizer


def build_tiny(folder, *, seed: int = 0):
    tok = char_tokenizer(ALPHABET)
    torch.manual_seed(seed)
    model = char_llama(tok, hidden=32, mlp=64, layers=2, heads=4, kv_heads=2)
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


def chain_files(folder, *, n: int = 30, train: int = 20, seed: int = 3) -> list[str]:
    """Write `n` held-out chain problems under `folder` (the first `train` as train.jsonl, the rest test.jsonl);
    returns the ``task.train_file`` / ``task.test_file`` overrides of a run on them."""
    problems = held_out_chains(n, seed=seed)
    write_chains(problems[:train], folder / "train.jsonl")
    write_chains(problems[train:], folder / "test.jsonl")
    return [f"task.train_file={folder / 'train.jsonl'}", f"task.test_file={folder / 'test.jsonl'}"]


@pytest.fixture(scope="module")
def tiny_folder(tmp_path_factory):
    return build_tiny(tmp_path_factory.mktemp("tiny_lm"))
