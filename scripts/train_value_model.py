"""Train ReST-RL's value model (VM) for VM-MCTS decoding: collect value targets by tree search over partial solutions
of training problems, without annotation, then fit a VM to them (flowrl/text/vm_mcts.py, flowrl/text/value_model.py).

1. Collect: for each of --problems training prompts, the policy's MCTS (--iterations rounds, 5 continuations per
   expansion, 3 visible children, c 0.2, eps 0.1, T 0.7: the official collect settings except the iteration count)
   back-propagates the task's verified rewards of the sampled completions to every prefix on their path. Targets: each
   expanded node's value (mean reward below it) and each completion's reward.
2. Fit: a sequence classifier with one output initialised from --vm-init (default: the policy folder), squared error
   to the targets, AdamW; 10% of the problems are held out to report the VM's error and its ranking of completions.

    OMP_NUM_THREADS=1 nice -n 5 python scripts/train_value_model.py --policy assets/chain_lm --out runs/vm_chain

Writes --out/value_model (the VM, for `flowrl eval-text --decode vm_mcts --value-model`) and --out/log.json.
"""

from __future__ import annotations

import argparse
import json
import random
import time
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from flowrl.text.data import load_jsonl
from flowrl.text.evaluate import eos_token_ids
from flowrl.text.prompts import encode_prompts
from flowrl.text.task_rewards import load_text_reward
from flowrl.text.value_model import (
    ValueExample,
    collect_value_targets,
    init_value_model,
    predict_values,
    train_value_model,
    value_inputs,
)
from flowrl.text.vm_mcts import MctsParams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--policy", default="assets/chain_lm", help="causal LM folder that searches")
    ap.add_argument("--vm-init", default="", help="folder the VM starts from ('' = --policy)")
    ap.add_argument("--train-file", default="assets/chain_lm/train.jsonl")
    ap.add_argument("--problems", type=int, default=400, help="training problems searched")
    ap.add_argument("--iterations", type=int, default=20, help="MCTS rounds per problem (official collect: 100)")
    ap.add_argument("--num-sample", type=int, default=5)
    ap.add_argument("--num-decision", type=int, default=3)
    ap.add_argument("--exploration", type=float, default=0.2)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--temperature", type=float, default=0.7)
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--max-prompt-length", type=int, default=16)
    ap.add_argument("--reward", default="exact_match_eos", help="verifier (a train-text reward name)")
    ap.add_argument("--lr", type=float, default=3e-4)
    ap.add_argument("--epochs", type=int, default=3)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--out", type=Path, default=Path("runs/vm_chain"))
    args = ap.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = AutoModelForCausalLM.from_pretrained(args.policy).eval()
    tok = AutoTokenizer.from_pretrained(args.policy)
    rows = load_jsonl(args.train_file, what="training task file")
    rows = [rows[i] for i in random.Random(args.seed).sample(range(len(rows)), args.problems)]
    ids = encode_prompts(tok, [str(r["prompt"]) for r in rows], max_prompt_length=args.max_prompt_length)
    params = MctsParams(args.iterations, args.num_sample, args.num_decision, args.exploration, args.eps)
    triples, tokens = collect_value_targets(
        model, tok, rows, ids, reward_fns=[load_text_reward(args.reward)], weights=[1.0], params=params,
        temperature=args.temperature, max_new_tokens=args.max_new_tokens, eos_ids=eos_token_ids(model, tok),
        seed=args.seed,
    )  # fmt: skip
    t_collect = time.perf_counter() - t0
    eos_id = int(tok.eos_token_id)
    held = set(range(int(0.9 * len(rows)), len(rows)))  # the last 10% of the problems
    examples = {
        split: [
            ValueExample(value_inputs(tok, ids[i], c, eos_id=eos_id), t)
            for i, c, t, _ in triples
            if (i in held) == (split == "held")
        ]
        for split in ("train", "held")
    }
    print(
        f"collected {len(triples)} targets ({len(examples['train'])} train / {len(examples['held'])} held-out) from "
        f"{len(rows)} problems, {tokens} generated tokens, {t_collect / 60:.1f} min",
        flush=True,
    )
    vm = init_value_model(args.vm_init or args.policy)
    held_targets = torch.tensor([e.target for e in examples["held"]])

    def held_mse() -> float:
        pred = predict_values(vm, [e.ids for e in examples["held"]], pad_id=tok.pad_token_id)
        return float(((pred - held_targets) ** 2).mean())

    base_mse = float(((held_targets - torch.tensor([e.target for e in examples["train"]]).mean()) ** 2).mean())
    # ranking: on held-out problems, does the VM's best completion of each tree hit more often than a random one?
    comp = [(i, c, t) for i, c, t, is_state in triples if i in held and not is_state]
    comp_ids = [value_inputs(tok, ids[i], c, eos_id=eos_id) for i, c, _ in comp]

    def top_hit() -> tuple[float, float]:
        by_problem: dict[int, list[tuple[float, float]]] = {}
        for (i, _, t), p in zip(comp, predict_values(vm, comp_ids, pad_id=tok.pad_token_id).tolist(), strict=True):
            by_problem.setdefault(i, []).append((p, t))
        top = [max(v, key=lambda pt: pt[0])[1] for v in by_problem.values()]  # the first best-scored completion
        mean = [sum(t for _, t in v) / len(v) for v in by_problem.values()]
        return sum(top) / max(len(top), 1), sum(mean) / max(len(mean), 1)

    per_epoch = []

    def check(epoch: int) -> None:
        per_epoch.append({"epoch": epoch, "held_mse": held_mse(), "held_top_vm_hit": top_hit()[0]})
        print(json.dumps(per_epoch[-1]), flush=True)

    t1 = time.perf_counter()
    losses = train_value_model(
        vm, examples["train"], lr=args.lr, epochs=args.epochs, batch_size=args.batch_size, seed=args.seed,
        on_epoch=check,
    )  # fmt: skip
    t_fit = time.perf_counter() - t1
    mse = held_mse()
    top_vm, mean_hit = top_hit()
    vm.save_pretrained(args.out / "value_model")
    tok.save_pretrained(args.out / "value_model")
    log = {
        "args": {k: str(v) for k, v in vars(args).items()},
        "targets": len(triples), "state_targets": sum(x[3] for x in triples),
        "train_examples": len(examples["train"]), "held_examples": len(examples["held"]),
        "generated_tokens": tokens, "collect_minutes": t_collect / 60, "fit_minutes": t_fit / 60,
        "epoch_losses": losses, "held_mse": mse, "held_mse_of_the_mean": base_mse,
        "held_top_vm_hit": top_vm, "held_mean_hit": mean_hit, "per_epoch": per_epoch,
    }  # fmt: skip
    (args.out / "log.json").write_text(json.dumps(log, indent=1) + "\n")
    print(json.dumps({k: v for k, v in log.items() if k != "args"}, indent=1))


if __name__ == "__main__":
    main()
