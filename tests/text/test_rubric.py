"""The chain task's generator and parser, the RGR rubric reward on hand-written completions, and the bad-input errors
of the new config fields (rollout kind, rubric items)."""

import random

import pytest
import torch

from flowrl.config import ConfigError, resolve
from flowrl.text.chain import held_out_chains, sample_chain, split_steps, train_chains
from flowrl.text.config import TextTrainConfig
from flowrl.text.rubric import ChainResult, RubricReward, parse_rubric
from flowrl.text.task_rewards import load_text_reward

ROW = {"prompt": "47+25-18+33=", "answer": "72-18=54+33=87", "result": "87", "steps": ["72", "54", "87"]}


def test_chain_problem_by_hand():
    for p in (sample_chain(random.Random(s)) for s in range(50)):
        nums = [int(x) for x in p.prompt[:-1].replace("-", "+-").split("+")]
        assert int(p.result) == sum(nums) and p.steps[-1] == p.result and split_steps(p.answer) == p.steps
        assert 2 <= len(p.steps) <= 4
    assert split_steps("72-18=54+33=87") == ["72", "54", "87"]
    assert split_steps("-78+52=-26") == ["-78", "-26"]
    assert split_steps("7x=") == ["7", ""]
    test = held_out_chains(50)
    assert len({p.prompt for p in test}) == 50
    stream = train_chains(seed=0, exclude={p.prompt for p in test})
    assert not {next(stream).prompt for _ in range(2000)} & {p.prompt for p in test}


def test_rubric_reward_on_hand_written_completions():
    fn = RubricReward(["result@2", "steps", "length", "eos"])  # weights 2, 1, 1, 1 -> total 5
    completions = [
        "72-18=54+33=87",  # all right: (2 + 1 + 1 + 1) / 5 = 1
        "72-18=55+33=88",  # result wrong, steps 1/3, length ok, eos: (0 + 1/3 + 1 + 1) / 5
        "72-18=54+33=87",  # all right but no EOS: 4 / 5
        "71-18=53",  # result wrong, steps 0, length 2 != 3, eos: 1 / 5
        "",  # nothing: steps [''] -> 0, eos: 1 / 5
    ]
    meta = [dict(ROW, terminated=t) for t in (True, True, False, True, True)]
    got = fn(completions, [ROW["prompt"]] * 5, meta)
    want = torch.tensor([1.0, (1 / 3 + 2) / 5, 0.8, 0.2, 0.2])
    torch.testing.assert_close(got, want)
    step2 = RubricReward(["step:2"])(completions, [ROW["prompt"]] * 5, meta)
    assert step2.tolist() == [1.0, 0.0, 1.0, 0.0, 0.0]
    assert ChainResult()(completions, [""] * 5, meta).tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]


def test_rubric_needs_its_columns():
    with pytest.raises(ValueError, match="'result' and 'steps'"):
        RubricReward(["result"])(["1"], ["1+1="], [{"answer": "2", "terminated": True}])


@pytest.mark.parametrize(
    "items, match",
    [
        (["final"], r"reward.rubric\[0\] = 'final': unknown rubric kind 'final'. Valid kinds: \['result', 'step'"),
        (["result", "step"], r"reward.rubric\[1\].*1-based step index"),
        (["step:0"], r"1-based step index"),
        (["result@-1"], r"positive number"),
        (["result@x"], r"positive number"),
        (["steps:2"], r"takes no argument"),
        ([], r"reward.rubric is empty"),
    ],
)
def test_rubric_items_that_do_not_parse(items, match):
    with pytest.raises(ValueError, match=match):
        parse_rubric(items)


def test_config_bad_input_names_the_field():
    with pytest.raises(ConfigError, match=r"rollout.kind.*'beam'.*\['sample', 'latr', 'soft'\]"):
        resolve(TextTrainConfig, overrides=["rollout.kind=beam"])
    with pytest.raises((ConfigError, ValueError), match=r"reward.rubric\[0\].*Valid kinds"):
        resolve(TextTrainConfig, overrides=["reward.names=[rubric]", "reward.rubric=[finale]"])
    with pytest.raises((ConfigError, ValueError), match=r"reward.rubric and the 'rubric' reward go together"):
        resolve(TextTrainConfig, overrides=["reward.names=[rubric]"])
    with pytest.raises((ConfigError, ValueError), match=r"rollout.kind=latr.*hooks.hints"):
        resolve(TextTrainConfig, overrides=["rollout.kind=latr", "hooks.hints=guide"])
    with pytest.raises(ValueError, match="needs its items"):
        load_text_reward("rubric")
    cfg = resolve(TextTrainConfig, overrides=["rollout.kind=latr", "rollout.latr_lookahead=[2,4]"])
    assert cfg.rollout.kind == "latr" and cfg.rollout.latr_lookahead == [2, 4]


def test_rubric_steps_hint_by_hand():
    from flowrl.text.hooks import HINT_TEXTS

    hint = HINT_TEXTS["rubric_steps"]
    row = {"answer": "12-8=4+3=7"}
    assert [hint(row, t) for t in ("knowledge", "planning", "solution")] == ["12-8=", "12-8=4+3=", "12-8=4+3=7"]
    assert [hint({"answer": "6-5=1"}, t) for t in ("knowledge", "planning")] == ["6-5=", "6-5=1"]


def test_pass_at_k_and_standard_errors_by_hand():
    from flowrl.text.pass_at_k import mean_se, paired_diff, pass_at

    p1, p8 = pass_at(torch.tensor([0, 8, 4]), 8)
    assert p1.tolist() == [0.0, 1.0, 0.5] and p8.tolist() == [0.0, 1.0, 1.0]
    m = mean_se(torch.tensor([0.0, 1.0, 0.5]))  # mean .5, unbiased var ((.25 + .25 + 0) / 2) = .25 -> se .5/sqrt 3
    assert m.mean == pytest.approx(0.5) and m.se == pytest.approx(0.5 / 3**0.5)
    d = paired_diff(torch.tensor([1.0, 0.0, 0.0]), torch.tensor([1.0, 1.0, 0.0]))  # diffs 0 1 0
    assert d.mean == pytest.approx(1 / 3) and d.se == pytest.approx((1 / 3) ** 0.5 / 3**0.5)
