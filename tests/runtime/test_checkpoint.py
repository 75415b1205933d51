"""Atomic, prunable, bit-exact checkpoints. Run: pytest tests/train/test_checkpoint.py -q"""

import copy
import random

import numpy as np
import pytest
import torch
from torch import nn

import flowrl.runtime.checkpoint as ckpt
from flowrl.runtime.checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(4, 16), nn.Tanh(), nn.Dropout(0.2), nn.Linear(16, 1))


def _state(step: int) -> dict:
    return {"model": {"w": torch.full((2,), float(step))}, "trainer": {"step": step}}


class _Run:
    """Model + AdamW + EMA + an explicit data generator; each step draws from torch, python and numpy RNGs."""

    def __init__(self):
        self.model = _model()
        self.opt = torch.optim.AdamW(self.model.parameters(), lr=1e-2, weight_decay=0.1)
        self.ema = {k: v.clone() for k, v in self.model.state_dict().items()}
        self.gen = torch.Generator().manual_seed(123)

    def step(self):
        x = torch.randn(8, 4, generator=self.gen)  # (B, 4)
        noise = random.gauss(0, 1) + float(np.random.randn())
        y = x.sum(-1, keepdim=True) + noise + 0.1 * torch.randn(8, 1)  # global torch RNG; (B, 1)
        loss = (self.model(x) - y).pow(2).mean()  # dropout also draws from the global torch RNG
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            for k, v in self.model.state_dict().items():
                self.ema[k].lerp_(v, 0.1)

    def state(self, step):
        return {
            "model": self.model.state_dict(),
            "optimizer": self.opt.state_dict(),
            "ema": self.ema,
            "rng": capture_rng_state([self.gen]),
            "trainer": {"step": step, "best_reward": 0.5, "history": [1, 2.5, None]},
            "config": "lr: 0.01\n",
        }


def _seed_all():
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)


def test_resume_is_bit_exact(tmp_path):
    _seed_all()
    straight = _Run()
    for _ in range(4):
        straight.step()

    _seed_all()
    first = _Run()
    first.step()
    first.step()
    save_checkpoint(tmp_path, 2, first.state(2))
    # scramble every RNG so only the restore can make the continuation identical
    random.seed(99)
    np.random.seed(99)
    torch.manual_seed(99)

    resumed = _Run()
    loaded = load_checkpoint(latest_checkpoint(tmp_path))
    assert loaded["step"] == 2 and loaded["trainer"] == {"step": 2, "best_reward": 0.5, "history": [1, 2.5, None]}
    assert loaded["config"] == "lr: 0.01\n"
    resumed.model.load_state_dict(loaded["model"])
    resumed.opt.load_state_dict(loaded["optimizer"])
    resumed.ema = loaded["ema"]
    restore_rng_state(loaded["rng"], [resumed.gen])
    resumed.step()
    resumed.step()

    for (k, a), b in zip(straight.model.state_dict().items(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    for k in straight.ema:
        assert torch.equal(straight.ema[k], resumed.ema[k]), k
    sa, sb = straight.opt.state_dict()["state"], resumed.opt.state_dict()["state"]
    for i in sa:
        for k in sa[i]:
            assert torch.equal(sa[i][k], sb[i][k]), (i, k)


def test_every_pt_file_loads_with_weights_only(tmp_path):
    run = _Run()
    run.step()
    path = save_checkpoint(tmp_path, 1, run.state(1))
    files = sorted(p.name for p in path.iterdir())
    assert files == [
        "config.yaml",
        "ema.safetensors",
        "meta.json",
        "model.safetensors",
        "optimizer.pt",
        "rng.pt",
        "trainer.pt",
    ]
    for name in ("optimizer.pt", "rng.pt", "trainer.pt"):
        torch.load(path / name, weights_only=True)


def test_unloadable_state_is_refused_at_save_time(tmp_path):
    with pytest.raises(TypeError, match=r"state\['trainer'\]\['x'\] is a numpy.ndarray"):
        save_checkpoint(tmp_path, 1, {"model": {}, "trainer": {"x": np.zeros(2)}})
    with pytest.raises(TypeError, match="numpy.float64"):  # a float subclass torch.load(weights_only=True) refuses
        save_checkpoint(tmp_path, 1, {"model": {}, "trainer": {"x": [np.float64(1.0)]}})
    with pytest.raises(KeyError, match="trainer"):
        save_checkpoint(tmp_path, 1, {"model": {}, "scheduler": {}})
    assert latest_checkpoint(tmp_path) is None


def test_tied_and_non_tensor_model_entries(tmp_path):
    w = torch.randn(3, 3)
    sd = {"a": w, "b": w, "view": w[:, 0], "_extra_state": {"scale": 2.0}}  # shared storage + a non-tensor entry
    path = save_checkpoint(tmp_path, 0, {"model": sd})
    loaded = load_checkpoint(path)["model"]
    assert torch.equal(loaded["a"], w) and torch.equal(loaded["b"], w) and torch.equal(loaded["view"], w[:, 0])
    assert loaded["_extra_state"] == {"scale": 2.0}


def test_crash_mid_save_leaves_previous_checkpoint_latest(tmp_path, monkeypatch):
    first = save_checkpoint(tmp_path, 1, _state(1))
    real_save = torch.save

    def crash_after_partial_write(obj, f):
        real_save(obj, f)
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(ckpt.torch, "save", crash_after_partial_write)
    with pytest.raises(RuntimeError, match="simulated crash"):
        save_checkpoint(tmp_path, 2, _state(2))
    monkeypatch.undo()
    assert not (tmp_path / "checkpoints" / "step_000002").exists()
    assert latest_checkpoint(tmp_path) == first
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["step_000001"]  # temp folder cleaned

    # A hard kill (no cleanup) leaves a hidden temp folder, and an incomplete step folder lacks meta.json:
    # neither is ever picked, and the next save sweeps the temp folder away.
    (tmp_path / "checkpoints" / ".tmp-step_000003-dead").mkdir()
    (tmp_path / "checkpoints" / ".tmp-step_000003-dead" / "model.safetensors").write_bytes(b"partial")
    (tmp_path / "checkpoints" / "step_000004").mkdir()
    assert latest_checkpoint(tmp_path) == first
    save_checkpoint(tmp_path, 4, _state(4))
    assert latest_checkpoint(tmp_path).name == "step_000004"
    assert not (tmp_path / "checkpoints" / ".tmp-step_000003-dead").exists()


def test_keep_last_prunes_oldest(tmp_path):
    for step in (10, 20, 30, 40, 50):
        save_checkpoint(tmp_path, step, _state(step), keep_last=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["step_000040", "step_000050"]
    assert load_checkpoint(latest_checkpoint(tmp_path))["trainer"] == {"step": 50}
    save_checkpoint(tmp_path, 50, _state(51), keep_last=2)  # re-saving a step replaces it
    assert load_checkpoint(latest_checkpoint(tmp_path))["trainer"] == {"step": 51}
    with pytest.raises(FileExistsError, match="newer"):
        save_checkpoint(tmp_path, 30, _state(30))
    with pytest.raises(ValueError, match="keep_last"):
        save_checkpoint(tmp_path, 60, _state(60), keep_last=0)


def test_rng_round_trip_and_generator_count_check():
    g = torch.Generator().manual_seed(7)
    state = copy.deepcopy(capture_rng_state([g]))
    expected = (random.random(), np.random.rand(), torch.rand(1), torch.rand(1, generator=g))
    restore_rng_state(state, [g])
    again = (random.random(), np.random.rand(), torch.rand(1), torch.rand(1, generator=g))
    assert expected[:2] == again[:2] and torch.equal(expected[2], again[2]) and torch.equal(expected[3], again[3])
    with pytest.raises(ValueError, match="same generators"):
        restore_rng_state(state)
