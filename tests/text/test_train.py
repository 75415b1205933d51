"""The text trainer end to end on a tiny random Llama saved to a folder: every preset trains, resume repeats the
uninterrupted run, bad input gives clear errors or counted skips. Run: pytest tests/text -q"""

import json
import shutil
from pathlib import Path

import pytest
import torch

from flowrl.config import ConfigError
from flowrl.runtime.checkpoint import latest_checkpoint, load_checkpoint
from flowrl.text.cli import CHAIN_PRESETS, LLM_PRESETS, PRESETS, PRESETS_DIR, load_config, main
from flowrl.text.train import train
from tests.text.conftest import run_overrides


def _cfg(folder: Path, tmp: Path, *overrides: str, preset: str | None = None):
    base = [*run_overrides(folder, tmp), "train.micro_batch_size=12", "reward.names=[text_rewards_toy:length]"]
    return load_config(preset=preset, overrides=base + list(overrides))


def _weights(folder):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(folder).state_dict().items()}


def test_presets_are_the_core_and_llm_variants():
    assert sorted(p.stem for p in PRESETS_DIR.glob("*.yaml")) == sorted(PRESETS + LLM_PRESETS + CHAIN_PRESETS)


@pytest.mark.parametrize("preset", ["grpo", "dr_grpo", "dapo", "bnpo", "gspo", "cispo"])
def test_every_preset_trains_every_parameter(tiny_folder, tmp_path, preset):
    before = _weights(tiny_folder)
    result = train(_cfg(tiny_folder, tmp_path, preset=preset))
    after = _weights(result.run_dir / "final")
    assert before.keys() == after.keys()
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"{preset}: parameters that did not change: {unchanged}"
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "reward" in r]
    assert len(trained) == 2
    for key in (
        "reward",
        "reward_std",
        "frac_reward_zero_std",
        "entropy",
        "completions/mean_length",
        "completions/clipped_ratio",
        "clip_ratio/region_mean",
        "rewards/text_rewards_toy:length/mean",
    ):
        assert key in trained[-1], key
    assert (result.run_dir / "curves.png").is_file() and (result.run_dir / "config.yaml").is_file()
    assert latest_checkpoint(result.run_dir) is not None


def test_kl_and_lora_and_inner_epochs(tiny_folder, tmp_path):
    result = train(
        _cfg(tiny_folder, tmp_path, "loss.kl_beta=0.04", "model.lora_rank=4", "train.inner_epochs=2", preset="grpo")
    )
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    kls = [r["kl"] for r in records if r.get("kl") is not None]
    assert kls and all(k >= 0 for k in kls)  # k3 >= 0; > 0 after the first update
    assert (result.run_dir / "final" / "adapter_model.safetensors").is_file()


def test_resume_repeats_the_uninterrupted_run(tiny_folder, tmp_path):
    full = train(_cfg(tiny_folder, tmp_path, "train.steps=4", "run.checkpoint_every=2", "run.name=full"))
    part = tmp_path / "runs" / "part"
    shutil.copytree(full.run_dir, part)
    shutil.rmtree(part / "checkpoints" / "step_000004")
    shutil.rmtree(part / "final")
    assert main(["--resume", str(part)]) == 0
    a, b = load_checkpoint(latest_checkpoint(full.run_dir)), load_checkpoint(latest_checkpoint(part))
    assert a["trainer"]["step"] == b["trainer"]["step"] == 4
    for k in a["model"]:
        assert torch.equal(a["model"][k], b["model"][k]), k

    def rows(run):
        out = []
        for line in (run / "metrics.jsonl").read_text().splitlines():
            r = json.loads(line)
            out.append({k: v for k, v in r.items() if "time" not in k and "minutes" not in k})
        return out

    assert rows(full.run_dir) == rows(part)


def test_tokenizer_without_pad_token_is_a_clear_error(tiny_folder, tmp_path):
    folder = tmp_path / "nopad"
    shutil.copytree(tiny_folder, folder)
    cfg_path = folder / "tokenizer_config.json"
    tok_cfg = json.loads(cfg_path.read_text())
    tok_cfg.pop("pad_token", None)
    cfg_path.write_text(json.dumps(tok_cfg))
    with pytest.raises(ValueError, match="has no pad token"):
        train(_cfg(folder, tmp_path))


def test_prompt_longer_than_the_limit_names_it(tiny_folder, tmp_path):
    with pytest.raises(ValueError, match=r"Prompt '[0-9+=-]+' is [5-8] tokens long, over the limit of 4"):
        train(_cfg(tiny_folder, tmp_path, "generation.max_prompt_length=4"))


def test_budget_over_the_context_is_a_config_error(tiny_folder, tmp_path):
    with pytest.raises(ConfigError, match="exceeds the model's context of 64"):
        train(_cfg(tiny_folder, tmp_path, "generation.max_prompt_length=60"))


def test_reward_that_raises_names_the_reward(tiny_folder, tmp_path):
    with pytest.raises(RuntimeError, match=r"Reward 'text_rewards_toy:raises' raised KeyError"):
        train(_cfg(tiny_folder, tmp_path, "reward.names=[text_rewards_toy:raises]"))


def test_nan_reward_skips_and_counts_the_group(tiny_folder, tmp_path, caplog):
    result = train(_cfg(tiny_folder, tmp_path, "reward.names=[text_rewards_toy:nan_for_first_group]"))
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    assert [r["skipped_groups"] for r in records if "skipped_groups" in r] == [1.0, 1.0]
    assert "NaN / inf reward" in caplog.text  # a warning of logger flowrl.text.collect


def test_empty_dataset_is_a_clear_error(tiny_folder, tmp_path):
    empty = tmp_path / "empty.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="holds no rows"):
        train(_cfg(tiny_folder, tmp_path, f"task.train_file={empty}"))
    assert main([f"model.path={tiny_folder}", f"task.train_file={empty}", f"run.root={tmp_path}"]) == 2


def test_unknown_preset_lists_the_valid_ones():
    with pytest.raises(ConfigError, match="Valid: .*'cispo'"):
        load_config(preset="nope", overrides=[])


def test_show_config(capsys):
    assert main(["--show-config"]) == 0
    assert "variant: dapo" in capsys.readouterr().out
