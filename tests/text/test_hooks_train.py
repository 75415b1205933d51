"""Every LLM-variant preset (`flowrl train-text --preset <name>`, docs/papers_llm.md) trains the tiny random LM for 2
steps through the text trainer and its hooks; the hooks' own rules on small hand-made inputs.

The tiny model's toy verifier is `text_rewards_toy:even_length` (0/1), so the shapers that read a verifier work;
KDRL's teacher and SALSA's second soup model are a second tiny LM. Run: pytest tests/text/test_hooks_train.py -q
"""

import json
from pathlib import Path

import pytest
import torch

from flowrl.config import ConfigError
from flowrl.text import hooks as H
from flowrl.text.cli import LLM_PRESETS, load_config
from flowrl.text.logprobs import TokenLogProbs
from flowrl.text.train import train
from flowrl.text.update import group_micro_batches
from tests.text.conftest import run_overrides


@pytest.fixture(scope="module")
def teacher_folder(tmp_path_factory):
    from tests.text.conftest import build_tiny

    return build_tiny(tmp_path_factory.mktemp("teacher_lm"), seed=1)


HINTED = [
    "reward.names=[exact_match_eos]",
    "hooks.hints_kwargs={exemption_steps: 0, guided_samples: 16, hint: answer_prefix, tiers: [solution]}",
]


def _cfg(folder: Path, teacher: Path, tmp: Path, preset: str, *extra: str):
    overrides = [
        *run_overrides(folder, tmp),
        "train.micro_batch_size=16",
        "reward.names=[text_rewards_toy:even_length]",
        f"hooks.teacher_path={teacher}",
        f"hooks.reference_soup=[{folder},{teacher}]" if preset == "salsa" else "hooks.reference_soup=[]",
        # GTPO filters completions of mean entropy > 0.7; a random model's is about log(V) = 2.8 for all of them
        *(["hooks.token_weights_kwargs={threshold: 10.0}"] if preset == "gtpo" else []),
        # hints: the random model fails every exact-match group; with the whole answer as the hint a guided completion
        # succeeds when it stops at once (about 1 in 16 samples)
        *(HINTED if preset in ("scaf_grpo", "guide") else []),
        *extra,
    ]
    cfg = load_config(preset=preset, overrides=overrides)
    if cfg.hooks.kl_ramp_steps > 0:  # let the schedule move within the 2 steps
        cfg = load_config(preset=preset, overrides=[*overrides, "hooks.kl_ramp_steps=2"])
    return cfg


def _weights(folder):
    from transformers import AutoModelForCausalLM

    return {k: v.clone() for k, v in AutoModelForCausalLM.from_pretrained(folder).state_dict().items()}


@pytest.mark.parametrize("preset", LLM_PRESETS)
def test_llm_preset_trains_the_tiny_lm(tiny_folder, teacher_folder, tmp_path, preset):
    before = _weights(tiny_folder)
    result = train(_cfg(tiny_folder, teacher_folder, tmp_path, preset))
    after = _weights(result.run_dir / "final")
    changed = [k for k in before if not torch.equal(before[k], after[k])]
    assert changed, f"{preset}: no parameter changed in 2 steps"
    records = [json.loads(line) for line in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "reward" in r]
    assert len(trained) == 2 and all(torch.isfinite(torch.tensor(r["policy_loss"])) for r in trained)
    if preset in ("grpo_d", "kdrl"):  # the coefficient follows the schedule: start at step 0, end from step 2 on
        cfg = _cfg(tiny_folder, teacher_folder, tmp_path, preset)
        assert trained[0]["kl_beta"] == pytest.approx(cfg.loss.kl_beta)
        assert trained[1]["kl_beta"] == pytest.approx((cfg.loss.kl_beta + cfg.hooks.kl_beta_end) / 2)
    if preset in ("kdrl", "salsa", "llds", "unlikely"):
        assert all("kl" in r for r in trained), f"{preset}: the regulariser term was not computed"
    if preset in ("scaf_grpo", "guide"):
        assert sum(r["guided_rows"] for r in trained) > 0, f"{preset}: no guided completion replaced a failed one"


# ------------------------------------------------------------------------------------------------ hook rules


def _shaping_input(**fields):
    n, c = 4, 5
    base = dict(
        rewards=torch.tensor([[1.0], [0.0], [0.0], [1.0]]),
        total=torch.tensor([1.0, 0.0, 0.0, 1.0]),
        outcome=torch.tensor([1.0, 0.0, 0.0, 1.0]),
        lengths=torch.tensor([3.0, 4.0, 2.0, 3.0]),
        terminated=torch.tensor([True, True, False, True]),
        group_ids=torch.tensor([0, 0, 1, 1]),
        mask=torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 0], [1, 1, 0, 0, 0], [1, 1, 1, 0, 0]]).float(),
        texts=["12", "123", "9x", "-7"],
        tokens=[["1", "2", "<eos>"], ["1", "2", "3", "<eos>"], ["9", "x"], ["-", "7", "<eos>"]],
        answers=["12", "13", "95", "-7"],
        step=0,
        max_new_tokens=8,
        sampling=lambda: TokenLogProbs(torch.zeros(n, c), torch.zeros(n, c)),
        policy_gradient=lambda r: r.float(),
    )
    base.update(fields)
    return H.ShapingInput(**base)


def test_digit_step_scorer_and_tp_grpo_shaping():
    x = _shaping_input()
    labels = H.digit_steps(x)
    # "12" vs "12": 1, 1, EOS after the full answer 1; "123" vs "13": 1, 0, 0 (past the answer), EOS 0;
    # "9x" vs "95": 1, 0 (truncated: no EOS); "-7" vs "-7": 1, 1, 1
    expected = [[1, 1, 1, 0, 0], [1, 0, 0, 0, 0], [1, 0, 0, 0, 0], [1, 1, 1, 0, 0]]
    assert labels.tolist() == [[float(v) for v in row] for row in expected]
    shaped = H.tp_grpo(process_weight=0.5)(x)
    assert shaped.total.tolist() == [1.0, 0.0, 0.0, 1.0]
    # both groups solved half the time (p = 0.5): right thoughts +0.5, wrong thoughts -0.5, times lambda 0.5
    row1 = [0.25, -0.25, -0.25, -0.25, 0.0]
    torch.testing.assert_close(shaped.token_adv[1], torch.tensor(row1))
    torch.testing.assert_close(shaped.token_adv[0], torch.tensor([0.25, 0.25, 0.25, 0.0, 0.0]))


def test_multi_objective_and_posterior_stand_ins():
    x = _shaping_input()
    heads = H.arith_aspects(x)
    # correct, stopped, well-formed number, 1 - L / 8
    assert heads[:, 0].tolist() == [1.0, 0.0, 0.0, 1.0]
    assert heads[:, 1].tolist() == [1.0, 1.0, 0.0, 1.0]
    assert heads[:, 2].tolist() == [1.0, 1.0, 0.0, 1.0]
    torch.testing.assert_close(heads[:, 3], torch.tensor([5 / 8, 4 / 8, 6 / 8, 5 / 8]))
    shaped = H.multi_objective(weights=[1.0, 0.0, 0.0, 0.0])(x)
    assert shaped.total.tolist() == [1.0, 0.0, 0.0, 1.0]
    # digit_prefix: "12"/"12" 1, "123"/"13" 1/2, "9x"/"95" 1/2, "-7"/"-7" 1
    assert H.digit_prefix(x).tolist() == [1.0, 0.5, 0.5, 1.0]
    # Posterior: format (stopped) + outcome + outcome x thinking
    assert H.posterior()(x).total.tolist() == [3.0, 1.0, 0.0, 3.0]
    with pytest.raises(ValueError, match="0/1 verifier"):
        H.tp_grpo()(_shaping_input(outcome=torch.tensor([0.5, 0.0, 0.0, 1.0])))
    with pytest.raises(ValueError, match="Unknown multi-label scorer"):
        H.multi_objective(weights=[1.0], scorer="nope")


def test_dynamic_weights_shaper_moves_weight_toward_the_aligned_objectives():
    # the gradient stand-in returns the objective column itself, so the influence is s_k = sum_j <h_k, h_j>:
    # s = (7.25, 9.75, 9.75, 6.34375) for these heads: stopped and well-formed overlap most and gain weight
    x = _shaping_input()
    shaper = H.dynamic_weights(lr=1.0)
    shaper(x)
    w = shaper(x).total  # second step: weights already moved once
    heads = H.arith_aspects(x)
    g = heads.T  # (K, N)
    s = (g @ g.T).sum(-1)
    w1 = torch.softmax(torch.full((4,), 0.25).log() + s, 0)
    w2 = torch.softmax(w1.log() + s, 0)
    torch.testing.assert_close(s, torch.tensor([7.25, 9.75, 9.75, 6.34375]))
    torch.testing.assert_close(w, heads @ w2)
    assert w2[1] > w2[0] > w2[3]


def _no_presample(n0):
    raise AssertionError("the knapsack planner must not pre-sample")


def test_knapsack_sizes_spend_the_budget_and_remember_success():
    planner = H.KnapsackSizes(n_min=2, n_max=8)
    sizes = planner.sizes([10, 11], budget=8, presample=_no_presample)
    assert sum(sizes) == 8 and all(2 <= n <= 8 for n in sizes)
    # prompt 10 always solved, prompt 11 half: the next allocation favours the uncertain prompt
    planner.report([10, 11], torch.tensor([1.0, 1, 1, 1, 0, 1, 0, 1]), torch.tensor([0, 0, 0, 0, 1, 1, 1, 1]))
    assert planner.success == {10: 1.0, 11: 0.5}
    nxt = planner.sizes([10, 11], budget=8, presample=_no_presample)
    assert nxt[1] > nxt[0]


def test_gvm_sizes_from_the_presampling_pass():
    planner = H.GVMSizes(n0=4)
    seen = []

    def presample(n0):
        seen.append(n0)
        return torch.tensor([0.5, 0.0, 1.0]), torch.tensor([1.0, 1.0, 1.0])

    # n ∝ G / sqrt(p + 1e-3 / p): 1 / sqrt(0.502) = 1.4114, 0 (never accepted), 1 / sqrt(1.001) = 0.9995;
    # 8 x (0.5855, 0, 0.4145) = (4.68, 0, 3.32) -> floors (4, 0, 3), the remaining 1 to the largest remainder
    assert planner.sizes([1, 2, 3], budget=8, presample=presample) == [5, 0, 3] and seen == [4]
    # nothing accepted anywhere: every prompt gets the fallback group
    nothing = planner.sizes([1, 2], budget=8, presample=lambda n0: (torch.zeros(2), torch.zeros(2)))
    assert nothing == [8, 8]


def test_group_micro_batches_never_split_a_group():
    rows = torch.arange(12)
    groups = torch.tensor([0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2])
    mbs = group_micro_batches(rows, groups, 6)
    assert [m.tolist() for m in mbs] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]


def test_bad_hook_names_and_kwargs_are_errors(tiny_folder, teacher_folder, tmp_path):
    with pytest.raises(ValueError, match="Unknown hooks.shaping"):
        load_config(preset="grpo", overrides=["hooks.shaping=nope"])
    with pytest.raises(ValueError, match="multiple of generation.group_size"):
        load_config(preset="disco", overrides=["train.micro_batch_size=12"])
    cfg = _cfg(tiny_folder, teacher_folder, tmp_path, "grpo_lambda", "hooks.shaping_kwargs={lam: 1}")
    with pytest.raises(ConfigError, match="do not fit hooks.shaping='grpo_lambda'"):
        train(cfg)


@pytest.mark.parametrize("mode", ["scaf_grpo", "guide"])
def test_hinted_rollout_replaces_a_failed_row(tiny_folder, mode):
    from flowrl.text.collect import apply_hints
    from flowrl.text.data import load_jsonl
    from flowrl.text.policy import load_policy
    from flowrl.text.prompts import encode_prompts
    from flowrl.text.rollout import SamplingConfig, sample_groups
    from flowrl.text.task_rewards import load_text_reward

    torch.manual_seed(0)
    cfg = load_config(preset=mode, overrides=[f"model.path={tiny_folder}", "reward.names=[exact_match_eos]"])
    policy = load_policy(tiny_folder)
    rows = load_jsonl(tiny_folder / "train.jsonl")[:1]
    prompt_ids = encode_prompts(policy.tokenizer, [rows[0]["prompt"]], max_prompt_length=48)
    ro = sample_groups(policy.model, policy.tokenizer, prompt_ids, group_size=4, sampling=SamplingConfig(8, 1.0),
                       eos_ids=policy.eos_ids)  # fmt: skip
    hints = H.HINTS[mode](guided_samples=16, tiers=["solution"])
    fns = [load_text_reward("exact_match_eos")]
    failed = torch.zeros(4, 1)  # every completion of the group failed
    new, rewards, guided, old = apply_hints(cfg, policy, hints, fns, rows, prompt_ids, [0], ro, failed, step=0)
    # the first row is replaced by the guided success (the whole answer as hint, then EOS); the others stay
    assert guided.tolist() == [True, False, False, False] and rewards[:, 0].tolist() == [1.0, 0.0, 0.0, 0.0]
    answer = policy.tokenizer(rows[0]["answer"], add_special_tokens=False)["input_ids"]
    prompt = new.prompt_ids[0][new.prompt_mask[0].bool()].tolist()
    completion = new.completion_ids[0][new.completion_mask[0].bool()].tolist()
    eos = sorted(policy.eos_ids)
    if mode == "scaf_grpo":  # the hint is in the prompt; the response is just EOS; on-policy (no stored old_logp)
        assert prompt == prompt_ids[0] + answer and completion[:1] == eos[:1] and old is None
    else:  # Guide: plain prompt; the response starts with the forced hint, whose old log-prob is log 1 = 0
        assert prompt == prompt_ids[0] and completion[: len(answer)] == answer
        assert old[0, : len(answer)].tolist() == [0.0] * len(answer) and old[0, len(answer)] < 0
    for i in range(1, 4):  # untouched rows keep their tokens
        n = int(ro.completion_mask[i].sum())
        assert new.completion_ids[i, :n].tolist() == ro.completion_ids[i, :n].tolist()


def test_segment_po_hook_uses_monte_carlo_values_at_segment_starts():
    # row 0 token probabilities 0.5, 0.95, 0.5, 0.5: cutpoints (p < 0.9) at t = 0, 2, 3; with interval 2 the 2nd
    # cutpoint (t = 2) opens a segment, so segments start at t = 0 and t = 2. Row 1 (3 tokens) 0.95, 0.5, 0.95: one
    # cutpoint (t = 1), one segment from t = 0.
    probs = torch.tensor([[0.5, 0.95, 0.5, 0.5], [0.95, 0.5, 0.95, 1.0]])
    mask = torch.tensor([[1.0, 1, 1, 1], [1, 1, 1, 0]])
    asked = []

    def mc_values(prefixes, n):
        asked.append((prefixes, n))
        return torch.tensor([0.5, 0.75, 0.25])  # V at (row 0, t 0), (row 0, t 2), (row 1, t 0)

    x = H.TokenInput(
        adv=torch.zeros(2), completion_ids=torch.zeros(2, 4, dtype=torch.long), mask=mask,
        group_ids=torch.tensor([0, 0]), step=0, sampling=lambda: TokenLogProbs(probs.log(), torch.zeros(2, 4)),
        full_logprobs=lambda: None, outcome=torch.tensor([0.0, 0.0]), mc_values=mc_values,
    )  # fmt: skip
    adv, w = H.segment_po(prob_threshold=0.9, interval=2, continuations=3)(x)
    assert asked == [([(0, 0), (0, 2), (1, 0)], 3)]
    # row 0: V = (0.5, 0.75, R = 0): segment 0 gets 0.75 - 0.5, segment 1 gets 0 - 0.75; row 1: V = (0.25, R = 0)
    torch.testing.assert_close(adv, torch.tensor([[0.25, 0.25, -0.75, -0.75], [-0.25, -0.25, -0.25, 0.0]]))
    # only the cutpoint tokens carry their advantage
    assert w.tolist() == [[1.0, 0.0, 1.0, 1.0], [0.0, 1.0, 0.0, 0.0]]
