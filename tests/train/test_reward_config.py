"""reward.device, reward.dtype and reward.paths reach the reward constructors. Run: pytest tests/train -q"""

from pathlib import Path

import pytest
import torch

import rewards
from flowrl.config import ConfigError, resolve
from flowrl.train.image_config import ImageTrainConfig
from flowrl.train.reward_fns import load_rewards


def _recording(monkeypatch, name):
    seen = {}

    def build(**kwargs):
        seen.update(kwargs)
        return rewards.ShapesReward()

    monkeypatch.setitem(rewards.REWARDS, name, build)
    return seen


def test_model_rewards_run_on_the_trainer_device_by_default(monkeypatch):
    seen = _recording(monkeypatch, "pickscore")
    cfg = resolve(ImageTrainConfig, overrides=["reward.names=[pickscore, shapes]", "reward.weights=[1.0, 1.0]"])
    fns = load_rewards(cfg, torch.device("cpu"))
    assert len(fns) == 2 and seen == {"device": "cpu", "dtype": torch.float32}


def test_device_dtype_and_path_from_the_config(monkeypatch):
    seen = _recording(monkeypatch, "hpsv2")
    overrides = [
        "reward.names=[hpsv2]",
        "reward.device=cuda:1",
        "reward.dtype=bfloat16",
        "reward.paths={hpsv2: /ckpt/HPS_v2.1_compressed.pt}",
    ]
    load_rewards(resolve(ImageTrainConfig, overrides=overrides), torch.device("cuda", 0))
    assert seen == {"device": "cuda:1", "dtype": torch.bfloat16, "path": "/ckpt/HPS_v2.1_compressed.pt"}


def test_paths_are_checked():
    with pytest.raises((ConfigError, ValueError), match="not in reward.names"):
        resolve(ImageTrainConfig, overrides=["reward.paths={hpsv2: /x}"])
    cfg = resolve(ImageTrainConfig, overrides=["reward.paths={shapes: /x}"])
    with pytest.raises(ConfigError, match="loads none"):
        load_rewards(cfg, torch.device("cpu"))


def test_args_reach_the_constructor_and_are_checked(monkeypatch):
    seen = _recording(monkeypatch, "geneval")
    overrides = ["reward.names=[geneval]", "reward.args={geneval: {detector: 'pkg.mod:make', position_quirk: false}}"]
    load_rewards(resolve(ImageTrainConfig, overrides=overrides), torch.device("cpu"))
    assert seen == {"detector": "pkg.mod:make", "position_quirk": False}
    with pytest.raises((ConfigError, ValueError), match="reward.args names \\['ocr'\\]"):
        resolve(ImageTrainConfig, overrides=["reward.args={ocr: {x: 1}}"])


def test_geneval_with_metadata_files_from_the_config():
    path = Path(__file__).resolve().parents[2] / "prompts" / "geneval_shapes_test.jsonl"
    args = f"reward.args={{geneval_correct: {{metadata_file: [{path}]}}}}"
    cfg = resolve(ImageTrainConfig, overrides=["reward.names=[geneval_correct]", args])
    (fn,) = load_rewards(cfg, torch.device("cpu"))
    assert fn.name == "geneval_correct" and "a yellow triangle" in fn._by_prompt
