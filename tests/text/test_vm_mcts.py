"""VM-MCTS (flowrl/text/vm_mcts.py) on hand-computed cases: the UCT value and the selection rule on hand-set values,
value targets back-propagated on a toy tree from scripted samples and rewards, decoding with hand-set VM values
(children's values, repeats, pruning, the answer), and the value model / eval-text path on assets/chain_lm.

Run: python -m pytest tests/text/test_vm_mcts.py
"""

import math

import pytest

from flowrl.text.vm_mcts import (
    Completion,
    MctsParams,
    Node,
    best_child,
    best_completion,
    search,
    split_action,
    uct,
    value_targets,
)


class First:
    """A tie-breaking rng that always takes the first candidate (so the toy trees are fixed)."""

    def choice(self, xs):
        return xs[0]


def test_uct_by_hand():
    # 0.5 + 0.1 sqrt((1 + ln 4) / (0.1 + 2)) = 0.5 + 0.1 sqrt(2.386294 / 2.1) = 0.5 + 0.1 * 1.065988
    assert uct(0.5, 2, 4, c=0.1, eps=0.1) == pytest.approx(0.6065988, abs=1e-7)


def test_selection_rule_on_hand_set_values():
    root = Node("", n=10, expanded=True)
    a = Node("12-8=", parent=root, n=5, v=0.6)
    b = Node("11-8=", parent=root, n=1, v=0.5)
    hidden = Node("13-8=", parent=root, n=4, v=0.9, visible=False)  # highest value, but pruned: never selected
    root.children = {("12-8=", False): a, ("11-8=", False): b, ("13-8=", False): hidden}
    # ln 10 = 2.302585: c = 0.1 -> A 0.6 + 0.1 sqrt(3.302585 / 5.1) = 0.68047, B 0.5 + 0.1 sqrt(3.302585 / 1.1) =
    # 0.67327 -> A; c = 0.2 -> A 0.76094, B 0.84655 -> B (exploration favours the less visited child)
    assert best_child(root, c=0.1, eps=0.1, rng=First()) is a
    assert best_child(root, c=0.2, eps=0.1, rng=First()) is b


def test_split_action():
    assert split_action("4+3=7", delimiter="=") == ("4+3=", False)
    assert split_action("7", delimiter="=") == ("7", True)
    assert split_action("12-8=", delimiter="=") == ("12-8=", False)  # a delimiter, even last: not terminal


SAMPLES = {  # state -> the scripted continuations (num_sample = 3)
    "": [Completion("12-8=4", True), Completion("12-8=5", True), Completion("11-8=3", True)],
    "12-8=": [Completion("4", True), Completion("4", True), Completion("5", True)],
    "11-8=": [Completion("3", True), Completion("3", True), Completion("3", True)],
}


def _sampler(calls):
    def sample(leaves):
        calls.append([s for _, s in leaves])
        return [SAMPLES[s] for _, s in leaves]

    return sample


def test_value_targets_on_a_toy_tree():
    """Collect search, 4 iterations, c 0.2, eps 0.1; verified reward = exact match of '12-8=4' with EOS.

    1. root: samples 12-8=4 (r 1), 12-8=5 (0), 11-8=3 (0); children A '12-8=' (twice), B '11-8='. Back-propagate
       (3, 1): root N 3, V 1/3.
    2. A and B tie (N 0) -> A. Samples 4 (1), 4 (1), 5 (0): terminal children A1 '12-8=4', A2 '12-8=5'.
       (3, 2): A N 3 V 2/3; root N 6 V 1/2.
    3. UCT A = 2/3 + 0.2 sqrt((1 + ln 6) / 3.1) = 0.8565, B = 0 + 0.2 sqrt((1 + ln 6) / 0.1) = 1.0567 -> B.
       Samples 3, 3, 3 (0): (3, 0): B N 3 V 0; root N 9 V 1/3.
    4. A = 2/3 + 0.2 sqrt((1 + ln 9) / 3.1) = 0.8698 > B = 0.2031 -> A; A1, A2 tie (N 0) -> A1, a terminal leaf
       never visited: its own reward 1 -> (1, 1): A1 N 1 V 1; A N 4 V 3/4; root N 10 V 2/5.
    """
    calls = []

    def reward(items):
        return [float(c.text == "12-8=4" and c.ended) for _, c in items]

    root = Node("")
    params = MctsParams(iterations=4, num_sample=3, num_decision=3, c=0.2, eps=0.1)
    search([root], params=params, sample=_sampler(calls), score=reward, phase="collect", rng=First())
    assert calls == [[""], ["12-8="], ["11-8="]]  # iteration 4 selects a terminal leaf: nothing sampled
    a, b = root.children[("12-8=", False)], root.children[("11-8=", False)]
    a1 = a.children[("4", True)]  # children are keyed by their action (and EOS for a terminal one)
    assert (root.n, root.v) == (10, pytest.approx(0.4))
    assert (a.n, a.v, b.n, b.v, a1.n, a1.v) == (4, pytest.approx(0.75), 3, 0.0, 1, 1.0)
    targets = value_targets(root)
    completions = [(t.completion.text, t.target) for t in targets if not t.is_state]
    assert completions == [
        ("12-8=4", 1.0), ("12-8=5", 0.0), ("11-8=3", 0.0),  # root's samples
        ("12-8=4", 1.0), ("12-8=4", 1.0), ("12-8=5", 0.0),  # A's
        ("11-8=3", 0.0), ("11-8=3", 0.0), ("11-8=3", 0.0),  # B's
    ]  # fmt: skip
    states = [(t.completion.text, t.target) for t in targets if t.is_state]
    assert states == [("", pytest.approx(0.4)), ("12-8=", pytest.approx(0.75)), ("11-8=", 0.0)]


def test_decode_with_hand_set_values():
    """Decode search, num_decision 1. Iteration 1: the VM gives A '12-8=' 0.7 (sampled twice: N 2, sum 1.4) and
    B '11-8=' 0.2 (N 1); B is pruned (only the best 1 stays visible); the root's completions are scored 0.9 / 0.1 /
    0.3; back-propagate the children's (N, sum) = (3, 1.6): root V 0.5333. Iteration 2 can only select A; its
    terminal children get VM values; A gets (N, sum) of its children added. The answer: the best-scored completion."""
    vm = {
        ("12-8=", False): 0.7, ("11-8=", False): 0.2, ("12-8=4", True): 0.9, ("12-8=5", True): 0.1,
        ("11-8=3", True): 0.3,
    }  # fmt: skip

    def value(items):
        return [vm[(c.text, c.ended)] for _, c in items]

    calls = []
    root = Node("")
    params = MctsParams(iterations=1, num_sample=3, num_decision=1, c=0.1, eps=0.1)
    search([root], params=params, sample=_sampler(calls), score=value, phase="decode", rng=First())
    a, b = root.children[("12-8=", False)], root.children[("11-8=", False)]
    assert (a.n, a.total, a.visible, b.n, b.v, b.visible) == (2, pytest.approx(1.4), True, 1, 0.2, False)
    assert (root.n, root.v) == (3, pytest.approx(1.6 / 3))
    assert [c[1] for c in root.completions] == [0.9, 0.1, 0.3]
    search([root], params=params, sample=_sampler(calls), score=value, phase="decode", rng=First())
    assert calls == [[""], ["12-8="]]
    a1, a2 = a.children[("4", True)], a.children[("5", True)]
    # A1 sampled twice: N 2, sum 1.8; A2 N 1, sum 0.1 (hidden by num_decision 1); A: N 2 + 3, sum 1.4 + 1.9
    assert (a1.n, a1.total, a2.visible) == (2, pytest.approx(1.8), False)
    assert (a.n, a.total) == (5, pytest.approx(3.3))
    assert (root.n, root.total) == (6, pytest.approx(1.6 + 1.9))
    assert best_completion(root) == Completion("12-8=4", True)
    assert best_completion(Node("")) == Completion("", False)


def test_search_terminates_on_all_terminal_trees():
    root = Node("")
    params = MctsParams(iterations=5, num_sample=2, num_decision=3, c=0.2, eps=0.1)

    def sample(leaves):
        return [[Completion("7", True), Completion("8", True)] for _ in leaves]

    search([root], params=params, sample=sample, score=lambda items: [1.0] * len(items), phase="collect",
           rng=First())  # fmt: skip
    # iteration 1 expands the root (N 2); iterations 2-5 visit the two terminal children: N 2 + 4, V 1
    assert (root.n, root.v) == (6, 1.0) and math.isclose(sum(ch.n for ch in root.children.values()), 4)


def test_value_model_collect_train_and_decode_on_chain_lm(tmp_path):
    """The VM pipeline end to end on assets/chain_lm at toy sizes: collect targets on 6 problems, fit a VM, decode 4
    held-out problems through `flowrl eval-text --decode greedy vm_mcts`."""
    import json

    from transformers import AutoModelForCausalLM, AutoTokenizer

    from flowrl.text.data import load_jsonl
    from flowrl.text.eval_cli import main as eval_text
    from flowrl.text.evaluate import eos_token_ids
    from flowrl.text.prompts import encode_prompts
    from flowrl.text.task_rewards import load_text_reward
    from flowrl.text.value_model import (
        ValueExample,
        collect_value_targets,
        init_value_model,
        train_value_model,
        value_inputs,
    )

    model = AutoModelForCausalLM.from_pretrained("assets/chain_lm").eval()
    tok = AutoTokenizer.from_pretrained("assets/chain_lm")
    rows = load_jsonl("assets/chain_lm/train.jsonl")[:6]
    ids = encode_prompts(tok, [r["prompt"] for r in rows], max_prompt_length=16)
    params = MctsParams(iterations=3, num_sample=3, num_decision=2, c=0.2, eps=0.1)
    triples, tokens = collect_value_targets(
        model, tok, rows, ids, reward_fns=[load_text_reward("exact_match_eos")], weights=[1.0], params=params,
        temperature=0.7, max_new_tokens=24, eos_ids=eos_token_ids(model, tok), seed=0,
    )  # fmt: skip
    assert tokens > 0 and all(0.0 <= t <= 1.0 for _, _, t, _ in triples)
    assert sum(s for *_, s in triples) >= 6  # at least every root was expanded
    for i, c, t, is_state in triples:  # completions' targets are their exact match
        if not is_state:
            assert t == float(c.ended and c.text == rows[i]["answer"])
    vm = init_value_model("assets/chain_lm")
    examples = [ValueExample(value_inputs(tok, ids[i], c, eos_id=tok.eos_token_id), t) for i, c, t, _ in triples]
    losses = train_value_model(vm, examples, lr=1e-3, epochs=2, batch_size=16, seed=0)
    assert len(losses) == 2 and all(math.isfinite(x) for x in losses)
    vm.save_pretrained(tmp_path / "vm")
    out = tmp_path / "eval.json"
    args = ["--model", "assets/chain_lm", "--test-size", "4", "--decode", "greedy", "vm_mcts", "--value-model",
            str(tmp_path / "vm"), "--iterations", "2", "--out", str(out)]  # fmt: skip
    assert eval_text(args) == 0
    record = json.loads(out.read_text())
    assert len(record["hits"]["vm_mcts"]) == 4 and "vs_greedy" in record["summary"]["vm_mcts"]
    summary = record["summary"]["vm_mcts"]
    assert summary["generated_tokens_per_problem"] > 0
    # the chosen answer is one of the tree's completions: a hit implies the tree holds a correct completion
    assert summary["tree_holds_a_correct_completion"]["mean"] >= summary["accuracy"]["mean"]


def test_eval_text_bad_value_model_and_decoder(tmp_path, capsys):
    from flowrl.text.eval_cli import main as eval_text

    with pytest.raises(FileNotFoundError, match="--value-model .*not a value-model folder"):
        eval_text(["--model", "assets/chain_lm", "--decode", "vm_mcts", "--value-model", str(tmp_path / "nope")])
    with pytest.raises(SystemExit, match="needs --value-model"):
        eval_text(["--model", "assets/chain_lm", "--decode", "vm_mcts"])
    with pytest.raises(SystemExit):
        eval_text(["--model", "assets/chain_lm", "--decode", "beam"])
    err = capsys.readouterr().err
    assert "invalid choice: 'beam'" in err and "greedy" in err and "vm_mcts" in err
