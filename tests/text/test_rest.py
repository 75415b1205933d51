"""ReST-GRPO data assembly (flowrl/text/rest.py): the reward-std filter and the assembly rule on a fixed reward table
computed by hand, the prefix split and drawing weights, the train-text option end to end on assets/chain_lm, the
generated-token budget, and the config errors.

Run: python -m pytest tests/text/test_rest.py
"""

import json
import math

import pytest
import torch

from flowrl.config import ConfigError
from flowrl.text.rest import (
    assemble,
    exponential_weights,
    num_subsamples,
    reward_std,
    step_prefixes,
)
from tests.text.conftest import chain_files

# 4 pool prompts x 5 samples (the README's n = 5)
REWARDS = torch.tensor(
    [
        [0.0, 1.0, 0.0, 1.0, 0.0],  # mean 0.4, var (2 * 0.36 + 3 * 0.16) / 5 = 0.24, std 0.4899 -> kept, solved
        [0.0, 0.0, 0.0, 0.0, 0.0],  # std 0 -> dropped
        [1.0, 1.0, 1.0, 1.0, 1.0],  # std 0 -> dropped (nothing to learn either)
        [0.5, 0.5, 0.5, 0.5, 0.52],  # mean 0.504, var (4 * 0.004^2 + 0.016^2) / 5 = 6.4e-5, std 0.008 -> dropped
    ]
)
TEXTS = [
    ["12-8=4+3=6", "12-8=4+3=7", "11", "12-8=4+3=7", "x"],  # the first maximum is sample 1
    ["a"] * 5,
    ["b"] * 5,
    ["c"] * 5,
]


def test_reward_std_is_the_population_std():
    want = torch.tensor([math.sqrt(0.24), 0.0, 0.0, 0.008], dtype=torch.float64)
    torch.testing.assert_close(reward_std(REWARDS), want, atol=1e-7, rtol=0)  # float32 inputs: 0.52 is inexact


def test_step_prefixes_by_hand():
    assert step_prefixes("12-8=4+3=7") == ["12-8=", "12-8=4+3="]  # the whole completion is never a prefix
    assert step_prefixes("12-8=4+3=") == ["12-8="]  # a trailing delimiter: nothing left after it
    assert step_prefixes("7") == []
    assert step_prefixes("a\nb\nc", delimiter="\n") == ["a\n", "a\nb\n"]


def test_exponential_weights_and_subsample_count():
    torch.testing.assert_close(exponential_weights(3, 0.5), torch.tensor([4, 2, 1], dtype=torch.float64) / 7)
    assert num_subsamples(2, 0.5) == 1 and num_subsamples(3, 0.5) == 2 and num_subsamples(5, 1.0) == 5
    assert num_subsamples(5, 3) == 3  # an int is a count
    with pytest.raises(ValueError, match="alpha"):
        exponential_weights(3, 1.0)


def test_assemble_on_a_fixed_reward_table():
    # prompt 0 alone passes the std filter (0.49 >= 0.05); its best reward 1 >= 0.9, so its first best completion
    # "12-8=4+3=7" gives L = 2 prefixes and ceil(2 * 0.5) = 1 is drawn; with alpha -> 0 the first prefix has weight ~1
    items = assemble(REWARDS, TEXTS, alpha=1e-9, generator=torch.Generator().manual_seed(0))
    assert items == [(0, ""), (0, "12-8=")]
    # n_sample = 1.0 draws L = 2 prefixes with replacement; a higher std threshold drops prompt 0 too
    items = assemble(REWARDS, TEXTS, n_sample=1.0, alpha=1e-9, generator=torch.Generator().manual_seed(0))
    assert items == [(0, ""), (0, "12-8="), (0, "12-8=")]
    assert assemble(REWARDS, TEXTS, std_threshold=0.5) == []
    # the 0.008-std prompt is kept below the README's threshold: sigma_0 = 0.005 keeps it, but its best reward 0.52 <
    # 0.9 adds no prefix
    assert assemble(REWARDS, TEXTS, std_threshold=0.005, alpha=1e-9) == [(0, ""), (0, "12-8="), (3, "")]
    # an unsolved kept prompt (best 0.5 < r_0 = 0.9) adds no prefix
    half = torch.tensor([[0.0, 0.5, 0.0, 0.5, 0.0]])
    assert assemble(half, [TEXTS[0]]) == [(0, "")]


def test_assemble_draws_by_the_exponential_weights():
    # one solved prompt with 3 prefixes; alpha 0.5 -> P = (4, 2, 1) / 7; 7000 draws of 1 each (n_sample = 1 as a count)
    rewards, texts = torch.tensor([[1.0, 0.0]]), [["1=2=3=4", "0"]]
    g = torch.Generator().manual_seed(0)
    counts = {"1=": 0, "1=2=": 0, "1=2=3=": 0}
    for _ in range(7000):
        counts[assemble(rewards, texts, n_sample=1, alpha=0.5, generator=g)[1].prefix] += 1
    for prefix, p in zip(counts, (4 / 7, 2 / 7, 1 / 7), strict=True):
        assert abs(counts[prefix] / 7000 - p) < 4 * math.sqrt(p * (1 - p) / 7000)


def test_chain_rest_trains_on_assembled_rows(tmp_path):
    """chain_rest on assets/chain_lm for 4 steps, re-assembling at step 2: the assembly's tokens count in the run's
    generated tokens, its rows are the pool's (prefixes are partial solutions, i.e. prefixes of the answer, since
    only exact matches reach r_0), and training stops on train.max_generated_tokens."""
    from flowrl.text.cli import load_config
    from flowrl.text.train import train

    overrides = [
        *chain_files(tmp_path, n=60, train=40, seed=5), "task.test_size=10",
        f"run.root={tmp_path / 'runs'}", "run.tensorboard=false", "run.log_every=1", "train.steps=4",
        "train.time_limit_minutes=0", "eval.every_minutes=0", "rest.pool_size=40", "rest.every_steps=2",
    ]  # fmt: skip
    result = train(load_config(preset="chain_rest", overrides=overrides))
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "reward" in r]
    assert [r["step"] for r in trained if "rest/rows" in r] == [1, 3]  # assemblies before steps 0 and 2
    assert trained[-1]["generated_tokens"] == sum(r["num_tokens"] + r.get("rest/assembly_tokens", 0) for r in trained)
    from flowrl.runtime.checkpoint import latest_checkpoint, load_checkpoint

    ckpt = load_checkpoint(latest_checkpoint(result.run_dir))
    rows = ckpt["trainer"]["rest_rows"]
    assert rows and len(rows) == [r for r in trained if "rest/rows" in r][-1]["rest/rows"]
    lines = (tmp_path / "train.jsonl").read_text().splitlines()
    answers = {json.loads(x)["prompt"]: json.loads(x)["answer"] for x in lines}
    assert all(answers[r["prompt"]].startswith(r["rest_prefix"]) for r in rows)
    assert any(r["rest_prefix"] for r in rows)
    # the same run under a budget of the first assembly's tokens + 1 stops after its first step
    budget = int(trained[0]["rest/assembly_tokens"]) + 1
    short = train(load_config(preset="chain_rest", overrides=overrides + [f"train.max_generated_tokens={budget}"]))
    assert short.steps == 1


@pytest.mark.parametrize(
    "overrides, match",
    [
        (["rest.enabled=true", "rollout.kind=latr"], "rest.enabled.*rollout.kind=sample"),
        (["rest.enabled=true", "hooks.hints=guide"], "rest.enabled"),
        (["rest.n_sample=1.5"], r"rest.n_sample is a ratio in \(0, 1\]"),
        (["rest.samples=1"], "rest.samples >= 2"),
        (["rest.alpha=1.0"], r"rest.alpha in \(0, 1\)"),
    ],
)
def test_rest_config_errors(overrides, match):
    from flowrl.text.cli import load_config

    with pytest.raises((ConfigError, ValueError), match=match):
        load_config(preset="chain_grpo", overrides=overrides)
