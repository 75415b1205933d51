"""Toy text rewards for the trainer tests (loaded as 'text_rewards_toy:<factory>')."""

import math

import torch


class _Fn:
    def __init__(self, name, fn):
        self.name, self.fn = name, fn

    def __call__(self, completions, prompts, metadata=None):
        return self.fn(completions)


def length():
    """Completion length in characters / 8: varies between samples of a random model."""
    return _Fn("length", lambda cs: torch.tensor([len(c) / 8 for c in cs], dtype=torch.float32))


def even_length():
    """A 0/1 toy verifier: 1 when the completion has an even number of characters (about half of a random model's)."""
    return _Fn("even_length", lambda cs: torch.tensor([float(len(c) % 2 == 0) for c in cs], dtype=torch.float32))


def raises():
    def fn(cs):
        raise KeyError("no such column")

    return _Fn("raises", fn)


def nan_for_first_group():
    """NaN for the first 8 completions (one group of 8), length elsewhere."""
    return _Fn("nan_first", lambda cs: torch.tensor([math.nan if i < 8 else len(c) / 8 for i, c in enumerate(cs)]))
