"""The multimodal methods wired into the text trainer: GRPO-CARE's shaper, Reg-GRPO's whole loss, the VAS and VADE
prompt samplers (hand-computed cases), and each `flowrl train-vlm` preset trained end to end on the shipped VLM."""

import json
import math

import pytest
import torch

from flowrl.grpo.vade import thompson_scores
from flowrl.runtime.seeding import generator
from flowrl.text import hooks as H
from flowrl.text.logprobs import TokenLogProbs
from flowrl.text.prompt_samplers import SAMPLER_STREAM, VadeSampler, VarianceAwareSampler
from flowrl.text.rollout import Rollout

VLM_METHOD_PRESETS = ("grpo_care", "vas", "vade", "reg_grpo")


def _shaping_input(outcome, groups, tokens, width, *, model, logp):
    n = len(outcome)
    outcome = torch.tensor(outcome, dtype=torch.float32)
    mask = torch.zeros(n, width)
    for i, t in enumerate(tokens):
        mask[i, : len(t)] = 1
    return H.ShapingInput(
        outcome[:, None], outcome.clone(), outcome, mask.sum(-1), torch.ones(n, dtype=torch.bool),
        torch.tensor(groups), mask, [" ".join(t) for t in tokens], tokens, ["x"] * n, 0, width,
        lambda: None, lambda r: None, model, lambda m: TokenLogProbs(logp, torch.zeros_like(logp)),
    )  # fmt: skip


def test_answer_span_mask():
    tokens = [["<think>", "</think>", "<answer>", "two", "</answer>", "<eos>"], ["<think>", "red"]]
    expect = torch.tensor([[0, 0, 0, 1, 1, 1, 0], [0, 0, 0, 0, 0, 0, 0]], dtype=torch.float32)
    torch.testing.assert_close(H.answer_span_mask(tokens, 7), expect)


def test_care_bonus_and_ema_by_hand():
    # four completions in one group; rows 0, 1, 2 correct. Answer tokens at positions 1 and 2 (after "<answer>").
    tokens = [["<answer>", "a", "</answer>"]] * 3 + [["<think>", "b", "c"]]
    logp = torch.log(torch.tensor([[0.5, 0.9, 0.9], [0.5, 0.4, 0.4], [0.5, 0.6, 0.6], [0.5, 0.99, 0.99]]))
    # c_i = exp(mean(log p) over positions 1, 2) = 0.9, 0.4, 0.6 for the correct rows; mean 0.633: rows 0 only
    model = torch.nn.Linear(1, 1, bias=False)
    torch.nn.init.constant_(model.weight, 1.0)
    shape = H.care(lam=0.5, momentum=0.9)
    out = shape(_shaping_input([1, 1, 1, 0], [0, 0, 0, 0], tokens, 3, model=model, logp=logp))
    torch.testing.assert_close(out.total, torch.tensor([1.5, 1.0, 1.0, 0.0]))
    # the EMA copy: first call copies (w = 1); after the policy moves to w = 3 the next call gives 0.9 + 0.1 * 3
    seen = {}

    def scorer(m):
        seen["w"] = float(m.weight)
        assert not m.weight.requires_grad and m is not model
        return TokenLogProbs(logp, torch.zeros_like(logp))

    torch.nn.init.constant_(model.weight, 3.0)
    x = _shaping_input([1, 1, 1, 0], [0, 0, 0, 0], tokens, 3, model=model, logp=logp)._replace(logprobs_under=scorer)
    shape(x)
    assert math.isclose(seen["w"], 0.9 * 1.0 + 0.1 * 3.0, rel_tol=1e-6)


def test_reg_grpo_whole_loss_by_hand():
    # two groups of two; at the rollout policy (logp = old) A_hat = 0 and L = sum A^2 / (Q G) = 4 / 4
    logp = torch.tensor([[-1.0, -2.0], [-0.5, -0.1], [-1.0, -1.0], [-3.0, -0.2]], requires_grad=True)
    mask = torch.tensor([[1.0, 1.0], [1.0, 0.0], [1.0, 1.0], [1.0, 1.0]])
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    x = H.WholeLossInput(logp, logp.detach(), mask, torch.tensor([1.0, 0, 1, 0]), torch.tensor([0, 0, 1, 1]), None,
                         2, adv)  # fmt: skip
    loss = H.reg_grpo(beta=2.0).loss(x)
    torch.testing.assert_close(loss, torch.tensor(1.0))
    # d L / d logp_kt = -2 (A_k - mean_group A) mask_kt / (beta Q G) = -2 A_k mask_kt / 8
    loss.backward()
    torch.testing.assert_close(logp.grad, -2 * adv[:, None] * mask / 8)
    # away from the rollout policy: row 0's log-ratio sums to 0.4, row 1's to 0 -> A_hat = (0.2, -0.2) / beta
    shifted = logp.detach() + torch.tensor([[0.1, 0.3], [0.0, 5.0], [0.0, 0.0], [0.0, 0.0]])
    x2 = x._replace(logp=shifted)
    expect = ((1 - 0.1) ** 2 + (-1 + 0.1) ** 2 + 1 + 1) / 4
    torch.testing.assert_close(H.reg_grpo(beta=2.0).loss(x2), torch.tensor(expect))


def _rollout(groups, completions):
    width = max(len(c) for c in completions)
    ids = torch.zeros(len(completions), width, dtype=torch.long)
    mask = torch.zeros(len(completions), width, dtype=torch.long)
    for i, c in enumerate(completions):
        ids[i, : len(c)], mask[i, : len(c)] = torch.tensor(c), 1
    n = len(completions)
    empty = torch.zeros(n, 1, dtype=torch.long)
    return Rollout(empty, empty, ids, mask, torch.zeros(n, dtype=torch.bool), torch.tensor(groups))


def test_vas_scores_and_probabilities_by_hand():
    sampler = VarianceAwareSampler(alpha=1.0, beta=1.0, lam=0.5)
    torch.testing.assert_close(sampler.probabilities(4), torch.full((4,), 0.25))  # nothing seen: uniform
    # row 2: outcomes 1, 0 -> OVS 1/4; rollouts [5, 6, 7] and [5, 6, 8]: bigrams {56, 67} vs {56, 68} -> TDS 2/3
    # row 0: outcomes 1, 1 -> OVS 0; equal rollouts -> TDS 0
    ro = _rollout([0, 0, 1, 1], [[5, 6, 7], [5, 6, 8], [1, 2], [1, 2]])
    sampler.report([2, 0], torch.tensor([1.0, 0.0, 1.0, 1.0]), ro)
    assert sampler.vps == pytest.approx({2: 0.25 + 2 / 3, 0: 0.0})
    # unseen rows 1, 3 score the seen mean (0.9167 / 2): VPS = (0, m, 11/12, m), m = 11/24
    vps = torch.tensor([0.0, 11 / 24, 11 / 12, 11 / 24])
    torch.testing.assert_close(sampler.probabilities(4), 0.5 * vps / vps.sum() + 0.5 / 4)
    picked = sampler.select(4, 2, seed=0, step=3)
    assert len(set(picked)) == 2 and picked == sampler.select(4, 2, seed=0, step=3)  # seeded by (seed, step)


def test_vade_posteriors_and_selection_by_hand():
    sampler = VadeSampler(gamma_fast=0.5, gamma_slow=0.9)
    picked = sampler.select(3, 1, seed=1, step=0)
    # with the prior everywhere, the pick is the top Thompson score of that step's draw
    draw = thompson_scores(torch.ones(3), torch.ones(3), generator=generator(1, 0, SAMPLER_STREAM))
    assert picked == [int(draw.argmax())]
    sampler.a, sampler.b = torch.tensor([3.0, 1.0, 5.0]), torch.tensor([1.0, 2.0, 1.0])
    # row 0 rolled out (fast decay 0.5), rows 1, 2 not (slow 0.9); then row 0 adds 3 successes of 4
    sampler.report([0], torch.tensor([1.0, 1.0, 1.0, 0.0]), _rollout([0, 0, 0, 0], [[1]] * 4))
    torch.testing.assert_close(sampler.a, torch.tensor([1 + 0.5 * 2 + 3, 1.0, 1 + 0.9 * 4]))
    torch.testing.assert_close(sampler.b, torch.tensor([1.0 + 1, 1 + 0.9 * 1, 1.0]))


@pytest.mark.parametrize("preset", VLM_METHOD_PRESETS)
def test_method_preset_trains_end_to_end(preset, tmp_path):
    from flowrl.vlm.tasks import write_task
    from flowrl.vlm_cli import main

    write_task(tmp_path / "train.jsonl", n=16, split="train", seed=0)
    write_task(tmp_path / "test.jsonl", n=8, split="test", seed=0)
    rc = main([
        "--preset", preset, f"task.train_file={tmp_path / 'train.jsonl'}", f"task.test_file={tmp_path / 'test.jsonl'}",
        "train.steps=3", "train.prompts_per_step=4", "generation.group_size=4", "train.micro_batch_size=16",
        f"run.root={tmp_path}", "run.name=r", "run.tensorboard=false", "run.log_every=1",
    ])  # fmt: skip
    assert rc == 0
    logged = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()]
    steps = [m for m in logged if "reward" in m]
    assert len(steps) == 3 and "eval/accuracy" in logged[-1]
    assert all(math.isfinite(m["policy_loss"]) for m in steps if m["num_trained_tokens"] > 0)
    assert any(m["num_trained_tokens"] > 0 for m in steps)  # the shipped VLM's groups have mixed answers
    if preset == "grpo_care":  # the trained reward is the answer reward plus the bonus of consistent correct rows
        assert all(m["reward"] >= m["rewards/flowrl.vlm.rewards:VQAExact/mean"] for m in steps)
        assert any(m["reward"] > m["rewards/flowrl.vlm.rewards:VQAExact/mean"] for m in steps)


def test_synth_rows_reach_training(tmp_path):
    """Syn-GRPO fed into train-vlm: the server (renderer as the image source) fills a bounded queue in the background
    and steps take up to half their questions from it without waiting."""
    from flowrl.vlm.tasks import write_task
    from flowrl.vlm_cli import main

    write_task(tmp_path / "train.jsonl", n=16, split="train", seed=0)
    write_task(tmp_path / "test.jsonl", n=4, split="test", seed=0)
    rc = main([
        f"task.train_file={tmp_path / 'train.jsonl'}", f"task.test_file={tmp_path / 'test.jsonl'}", "train.steps=40",
        "train.prompts_per_step=2", "generation.group_size=2", "synth.share=0.5", "synth.pipeline=renderer",
        "synth.queue_size=8", f"run.root={tmp_path}", "run.name=r", "run.tensorboard=false", "run.log_every=1",
    ])  # fmt: skip
    assert rc == 0
    steps = [json.loads(line) for line in (tmp_path / "r" / "metrics.jsonl").read_text().splitlines()][1:]
    assert all(m["synth_rows"] <= 1 for m in steps)  # share 0.5 of 2 questions
    assert sum(m["synth_rows"] for m in steps) > 0 and steps[-1]["synth/kept"] > 0
    assert steps[-1]["synth/used"] == sum(m["synth_rows"] for m in steps)


def test_synth_config_errors(tmp_path):
    from flowrl.config import ConfigError
    from flowrl.text.config import SynthConfig, TextTrainConfig

    with pytest.raises(ValueError, match=r"synth.share must be in \[0, 1\]"):
        SynthConfig(share=1.5)
    with pytest.raises(ValueError, match="does not combine with rest.enabled, hooks.prompt_sampler"):
        TextTrainConfig(synth=SynthConfig(share=0.5), hooks=H_config(prompt_sampler="vade"))
    from flowrl.text.train import train

    cfg = TextTrainConfig(synth=SynthConfig(share=0.5, pipeline="renderer"))  # the arithmetic LM: not a VLM
    cfg.run.root, cfg.train.steps = str(tmp_path), 1
    with pytest.raises(ConfigError, match="is not a VLM"):
        train(cfg)


def H_config(**kwargs):
    from flowrl.text.config import HooksConfig

    return HooksConfig(**kwargs)
