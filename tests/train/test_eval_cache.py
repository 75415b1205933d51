"""The base-evaluation cache: a second run of the same model and evaluation settings reuses the base numbers, and
a change of the model files or the settings changes the key."""

from flowrl.train import eval_cache
from flowrl.train.image import train
from flowrl.train.image_cli import load_config

SMALL = [
    "train.iterations=1",
    "train.prompts_per_iteration=2",
    "method.kwargs.group_size=2",
    "eval.prompts_per_family=1",
    "eval.train_prompts_per_family=1",
    "eval.seeds=[0]",
    "eval.grid_prompts=2",
    "run.tensorboard=false",
]


def test_key_follows_model_bytes_and_settings(tmp_path):
    (tmp_path / "a.safetensors").write_bytes(b"weights")
    key = eval_cache.cache_key(tmp_path, {"seeds": [0]})
    assert key == eval_cache.cache_key(tmp_path, {"seeds": [0]})
    assert key != eval_cache.cache_key(tmp_path, {"seeds": [1]})
    (tmp_path / "a.safetensors").write_bytes(b"weightz")
    assert key != eval_cache.cache_key(tmp_path, {"seeds": [0]})
    eval_cache.store(tmp_path / "runs", key, {"strict": {"overall": 0.5}})
    assert eval_cache.load(tmp_path / "runs", key) == {"strict": {"overall": 0.5}}
    assert eval_cache.load(tmp_path / "runs", "missing") is None


def test_second_run_reuses_the_base_evaluation(tiny_model, tmp_path, capsys):
    def run(name, *extra):
        cfg = load_config(
            preset="shapes_flow_grpo",
            overrides=[f"model.path={tiny_model}", f"run.root={tmp_path}", f"run.name={name}", *SMALL, *extra],
        )
        return train(cfg)

    first = run("a")
    assert "reused" not in capsys.readouterr().err
    second = run("b")
    assert "base model evaluation reused" in capsys.readouterr().err
    assert second.base == first.base and first.base.outcomes["train/overall"]  # per-sample outcomes kept
    third = run("c", "eval.seeds=[1]")  # other settings: evaluated afresh
    assert "reused" not in capsys.readouterr().err
    assert third.base.count == first.base.count
    assert len(list((tmp_path / eval_cache.CACHE_DIR).glob("*.json"))) == 2
