"""The LLM GRPO variants (flowrl.grpo.variants_llm) train the tiny arithmetic LM for 2 steps through the text
trainer, selected by name as ``loss.variant=flowrl.grpo.variants_llm:<name>``.

Run: pytest tests/text/test_llm_variants_train.py -q
"""

import json
from pathlib import Path

import pytest
import torch

from flowrl.grpo.variants_llm import LLM_VARIANTS
from flowrl.text.train import load_config, train

# variants whose regulariser slot is exercised with the trainer's reference KL (k2, the KDRL estimator)
KL = {"grpo_d": ["loss.kl_beta=0.02"], "kdrl": ["loss.kl_beta=0.005", "loss.kl_estimator=k2"]}
# LLDS's term is 0 on-policy: two inner epochs make the likelihood of kept responses move
INNER = {"llds": ["train.inner_epochs=2"], "dcpo": ["train.inner_epochs=2"]}


def _cfg(folder: Path, tmp: Path, name: str):
    overrides = [
        f"model.path={folder}",
        f"task.train_file={folder / 'train.jsonl'}",
        f"task.test_file={folder / 'test.jsonl'}",
        f"run.root={tmp / 'runs'}",
        "run.tensorboard=false",
        "run.log_every=1",
        "train.steps=2",
        "train.micro_batch_size=12",
        "optim.lr=1e-3",
        "eval.every_minutes=0",
        "reward.names=[text_rewards_toy:length]",
        f"loss.variant=flowrl.grpo.variants_llm:{name}",
        *KL.get(name, []),
        *INNER.get(name, []),
    ]
    return load_config(preset="grpo", overrides=overrides)


def _weights(folder):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(folder).state_dict().items()}


@pytest.mark.parametrize("name", sorted(LLM_VARIANTS))
def test_llm_variant_trains_through_the_text_trainer(tiny_folder, tmp_path, name):
    before = _weights(tiny_folder)
    result = train(_cfg(tiny_folder, tmp_path, name))
    after = _weights(result.run_dir / "final")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, f"{name}: no parameter changed in 2 steps"
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "reward" in r]
    assert len(trained) == 2 and all(torch.isfinite(torch.tensor(r["policy_loss"])) for r in trained)
