"""LATR tree rollouts on a toy LM whose next-token probabilities are set by hand (which branches exist, which are cut,
when the tree returns, one forward per prefix), plus the KV-cached step model against full forwards."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from flowrl.text.latr import LatrParams, distinct_per_group, edit_distance, grow_tree, latr_groups, mix_ratio
from flowrl.text.prompts import encode_prompts
from flowrl.text.rollout import SamplingConfig
from flowrl.text.step_lm import CachedLM
from tests.text.conftest import chain_files

EOS = 4


class ToyLM:
    """`StepLM` over completion prefixes: probabilities from `table[prefix]`, else `default`. Records every prefix it
    evaluates (after the prompt)."""

    def __init__(self, table: dict[tuple, list[float]], default: list[float]):
        self.table, self.default, self.forwards = table, default, 0
        self.rows: list[tuple] = []
        self.seen: list[tuple] = []

    def _logits(self) -> torch.Tensor:
        probs = torch.tensor([self.table.get(r, self.default) for r in self.rows])
        return probs.clamp(min=1e-12).log()

    def start(self, prompt_rows):
        self.rows = [() for _ in prompt_rows]
        self.forwards += len(prompt_rows)
        return self._logits()

    def advance(self, parents, tokens):
        self.rows = [self.rows[p] + (t,) for p, t in zip(parents.tolist(), tokens.tolist(), strict=True)]
        self.seen += self.rows
        self.forwards += len(self.rows)
        return self._logits()


# Hand-set tree (k = 2, tau_abs 0.25, tau_rel 0.15, lookahead L = 3, tau_ed 0.4, n = 4):
#   ()      [.5 .4 ...]  fork: .4 > .25 and .5-.4 = .1 < .15  -> A=(0), B=(1) born at 0
#   (0)     [.45 .35 ..] fork: .35 > .25, .10 < .15          -> A=(0,0), C=(0,1) born at 1
#   (1)     [.6 .3 ...]  .6-.3 = .3 >= .15: no fork           -> B=(1,0)
#   (0,0)   [.4 .3 .2 .1] fork allowed, room 1 (A,B,C exist)  -> A=(0,0,0), D=(0,0,1) born at 2
#   (1,0)   [.4 .3 .2 .1] fork allowed but the root is full (A took the last place, rows in order)
#   (0,1)   [.1 .1 .7 .1] -> C=(0,1,2)
#   length 3: B is 3 old: Lev((1,0,0), A's (0,0,0)) = 1, 1/3 < .4 -> B PRUNED
#   (0,0,0) [.7 .1 .1 .1] -> A=(0,0,0,0);  (0,1,2) [0 0 0 .9 .1] -> C=(0,1,2,3);  (0,0,1) default [0 0 0 0 1] -> EOS
#   length 4: C is 3 old: Lev((1,2,3), A's (0,0,0)) = 3, 3/3 >= .4 -> C kept; D ended with EOS: never compared
#   then every prefix ends (default: EOS). Root: A, C, D (3 < n) -> filled with A.
TABLE = {
    (): [0.5, 0.4, 0.05, 0.05, 0.0],
    (0,): [0.45, 0.35, 0.1, 0.1, 0.0],
    (1,): [0.6, 0.3, 0.05, 0.05, 0.0],
    (0, 0): [0.4, 0.3, 0.2, 0.1, 0.0],
    (1, 0): [0.4, 0.3, 0.2, 0.1, 0.0],
    (0, 1): [0.1, 0.1, 0.7, 0.1, 0.0],
    (0, 0, 0): [0.7, 0.1, 0.1, 0.1, 0.0],
    (0, 1, 2): [0.0, 0.0, 0.0, 0.9, 0.1],
}
PARAMS = LatrParams(max_branch_per_token=2, prob_abs=0.25, prob_rel=0.15, edit_dist=0.4, lookahead=(3,))


def test_branching_and_pruning_by_hand():
    lm = ToyLM(TABLE, default=[0.0, 0.0, 0.0, 0.0, 1.0])
    tree = grow_tree(lm, [[9]], n=4, max_new_tokens=10, eos_ids={EOS}, params=PARAMS)
    made = {tuple(b.tokens): (b.parent, b.birth) for b in tree.branches}
    assert made == {
        (0, 0, 0, 0, EOS): (None, 0),  # A
        (1, 0, 0): (0, 0),  # B (pruned at length 3)
        (0, 1, 2, 3, EOS): (0, 1),  # C
        (0, 0, 1, EOS): (0, 2),  # D
    }
    assert [tuple(tree.branches[b].tokens) for b in tree.pruned] == [(1, 0, 0)]
    assert tree.prefixes == [[[0, 0, 0, 0, EOS], [0, 1, 2, 3, EOS], [0, 0, 1, EOS], [0, 0, 0, 0, EOS]]]
    assert tree.finished == [[True] * 4]


def test_one_forward_per_prefix():
    lm = ToyLM(TABLE, default=[0.0, 0.0, 0.0, 0.0, 1.0])
    tree = grow_tree(lm, [[9]], n=4, max_new_tokens=10, eos_ids={EOS}, params=PARAMS)
    # prefixes forwarded after each step: (0) (1) | (0,0) (1,0) (0,1) | (0,0,0) (0,1,2) (0,0,1) (B pruned) |
    # (0,0,0,0) (0,1,2,3) (D's next token was EOS: it is no longer forwarded); then both end. A fork costs nothing
    # at the step it is made: it reuses its parent's forward.
    assert lm.seen == [
        (0,), (1,), (0, 0), (1, 0), (0, 1), (0, 0, 0), (0, 1, 2), (0, 0, 1), (0, 0, 0, 0), (0, 1, 2, 3)
    ]  # fmt: skip
    assert len(set(lm.seen)) == len(lm.seen) == tree.forwards == 10


def test_returns_when_full_and_out_of_lookahead():
    # n = 2: the root forks at step 0 and is full at once, but B stays inside its lookahead window (birth 0 + 3) until
    # step 4, so the tree returns after 5 tokens; tau_ed 0.3 keeps B (1/3 >= 0.3). Both prefixes stay open.
    lm = ToyLM({(): [0.5, 0.4, 0.05, 0.05, 0.0]}, default=[0.7, 0.1, 0.1, 0.1, 0.0])
    tree = grow_tree(lm, [[9]], n=2, max_new_tokens=10, eos_ids={EOS}, params=PARAMS._replace(edit_dist=0.3))
    assert tree.steps == 5 and not tree.pruned
    assert tree.prefixes == [[[0, 0, 0, 0, 0], [1, 0, 0, 0, 0]]] and tree.finished == [[False, False]]


def test_no_fork_below_thresholds():
    # p1 = .25 is not > .25; the tree is one greedy chain, copied n times
    lm = ToyLM({(): [0.3, 0.25, 0.25, 0.2, 0.0]}, default=[0.0, 0.0, 0.0, 0.0, 1.0])
    tree = grow_tree(lm, [[9], [9]], n=3, max_new_tokens=5, eos_ids={EOS}, params=PARAMS)
    assert tree.prefixes == [[[0, EOS]] * 3] * 2 and len(tree.branches) == 2


def test_helpers_by_hand():
    assert edit_distance([1, 2, 3], [1, 3]) == 1 and edit_distance([], [1, 2]) == 2 and edit_distance([1], [2]) == 1
    sched = LatrParams().mix_schedule
    assert [mix_ratio(sched, s) for s in (0, 9, 10, 25, 199, 200)] == [1.0, 1.0, 0.75, 0.5, 0.25, 0.0]
    assert distinct_per_group([[1], [1], [2], [3], [3]], [0, 0, 0, 1, 1]) == 1.5


def test_cached_lm_matches_full_forwards(tiny_folder):
    model = AutoModelForCausalLM.from_pretrained(tiny_folder).eval()
    tok = AutoTokenizer.from_pretrained(tiny_folder)
    prompts = encode_prompts(tok, ["12+3=", "7-45="], max_prompt_length=16)
    lm = CachedLM(model, pad_id=tok.pad_token_id)
    lm.start(prompts)
    rows = [list(p) for p in prompts]
    for parents, tokens in (([0, 0, 1], [5, 6, 7]), ([2, 0], [8, 9]), ([1, 1, 0], [5, 5, 6])):  # forks and deaths
        got = lm.advance(torch.tensor(parents), torch.tensor(tokens))
        rows = [rows[p] + [t] for p, t in zip(parents, tokens, strict=True)]
        for r, ids in enumerate(rows):
            with torch.no_grad():
                want = model(input_ids=torch.tensor([ids])).logits[0, -1]
            torch.testing.assert_close(got[r], want, atol=1e-4, rtol=1e-4)
    assert lm.forwards == 2 + 3 + 2 + 3


@pytest.mark.parametrize("step", [0, 25])
def test_latr_groups_shapes(tiny_folder, step):
    model = AutoModelForCausalLM.from_pretrained(tiny_folder).eval()
    tok = AutoTokenizer.from_pretrained(tiny_folder)
    prompts = encode_prompts(tok, ["12+3=", "7-45=", "9+9="], max_prompt_length=16)
    torch.manual_seed(0)
    params = LatrParams(prob_abs=0.05, prob_rel=0.5, lookahead=(2,))  # a random model is flat: let it fork
    out = latr_groups(
        model, tok, prompts, group_size=4, sampling=SamplingConfig(6), eos_ids={2}, params=params, step=step
    )
    ro = out.rollout
    assert out.n_tree == (4 if step == 0 else 2)  # mix 1.0 at step 0, 0.5 from step 20
    assert ro.completion_ids.shape[0] == 12 and ro.group_ids.tolist() == [0] * 4 + [1] * 4 + [2] * 4
    assert (ro.completion_mask.sum(-1) >= 1).all() and ro.completion_ids.shape[1] <= 6
    assert torch.equal(ro.prompt_ids[0], ro.prompt_ids[3])
    for j in range(3):  # the tree rows of a group start with the tree's prefixes
        for i in range(out.n_tree):
            prefix = out.tree.prefixes[j][i]
            assert ro.completion_ids[4 * j + i, : len(prefix)].tolist() == prefix


@pytest.mark.parametrize("preset", ["chain_grpo", "chain_latr", "chain_rgr"])
def test_chain_presets_train(tiny_folder, tmp_path, preset):
    """Each chain preset runs two steps end to end on chain rows (a tiny random model stands in for assets/chain_lm;
    a random model fails every group, so chain_rgr tries its rubric-guided rollouts; whether one succeeds is luck)."""
    import json

    from flowrl.text.cli import load_config
    from flowrl.text.train import train

    cfg = load_config(
        preset=preset,
        overrides=[
            f"model.path={tiny_folder}", *chain_files(tmp_path),
            f"run.root={tmp_path / 'runs'}", "run.tensorboard=false",
            "run.log_every=1", "train.steps=2", "eval.every_minutes=0", "task.test_size=4", "generation.group_size=4",
            "train.prompts_per_step=2",
        ],
    )  # fmt: skip
    result = train(cfg)
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "reward" in r]
    assert len(trained) == 2
    if preset == "chain_rgr":
        assert all("rewards/rubric/mean" in r and "guided_rows" in r for r in trained)


def test_train_text_with_latr_and_rubric(tiny_folder, tmp_path):
    """Two steps of `flowrl train-text` with LATR groups and the RGR rubric reward on chain rows: it trains, and the
    LATR rows show in the diversity metric."""
    import json

    from flowrl.text.cli import load_config
    from flowrl.text.train import train

    cfg = load_config(
        preset="grpo",
        overrides=[
            f"model.path={tiny_folder}", *chain_files(tmp_path),
            f"run.root={tmp_path / 'runs'}", "run.tensorboard=false",
            "run.log_every=1", "train.steps=2", "optim.lr=1e-3", "eval.every_minutes=0", "eval.max_new_tokens=8",
            "generation.max_new_tokens=8", "generation.group_size=4", "reward.names=[rubric]", "reward.weights=[1.0]",
            "reward.rubric=[result@2,steps,eos]", "rollout.kind=latr", "rollout.latr_prob_abs=0.05",
            "rollout.latr_prob_rel=0.5", "rollout.latr_lookahead=[2]",
        ],
    )  # fmt: skip
    result = train(cfg)
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "reward" in r]
    assert len(trained) == 2 and all(1 <= r["completions/distinct_per_group"] <= 4 for r in trained)
    assert all("rewards/rubric/mean" in r for r in trained)
