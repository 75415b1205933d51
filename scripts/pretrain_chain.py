"""SFT of the shipped chain LM (`assets/chain_lm/`): the arithmetic LM fine-tuned to write a scratchpad.

Starts from `assets/arith_lm` (same alphabet and tokenizer: the chain task needs no new token) and trains on a stream
of chain problems (`flowrl.text.chain`: 3-5 one-digit operands, each partial result written before the next operation),
loss on the completion and EOS only, with the same batch / optimiser as `scripts/pretrain_arith.py` (whose
`train_until` and options it reuses). Every ``--eval-every`` steps it measures greedy exact match of the whole
completion on the first ``--eval-size`` held-out problems, and stops at the first evaluation at or above ``--target``
(so the base model has a known accuracy with room to learn); the recorded accuracy is then measured on all 1000. Writes
model, tokenizer, train.jsonl / test.jsonl and `sft_log.json` into ``--out``.

    OMP_NUM_THREADS=1 nice -n 19 python scripts/pretrain_chain.py --out assets/chain_lm
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from transformers import AutoTokenizer, LlamaForCausalLM

sys.path.insert(0, str(Path(__file__).resolve().parent))
from pretrain_arith import save_sft, sft_parser, train_until  # noqa: E402  (scripts/ is not a package)

from flowrl.text.chain import held_out_chains, train_chains  # noqa: E402
from flowrl.text.evaluate import greedy_accuracy  # noqa: E402

MAX_NEW_TOKENS = 24  # the longest expected completion is 21 characters + EOS


def main(argv: list[str] | None = None) -> int:
    parser = sft_parser(__doc__, out="assets/chain_lm", lr=1e-3, warmup=50, min_steps=50, target=0.20)
    parser.add_argument("--init", type=Path, default=Path("assets/arith_lm"), help="model folder to start from")
    parser.add_argument("--eval-size", type=int, default=200, help="held-out problems checked while training")
    parser.add_argument("--max-minutes", type=float, default=0.0, help="also stop after this much training time")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    tokenizer = AutoTokenizer.from_pretrained(args.init)
    model = LlamaForCausalLM.from_pretrained(args.init, dtype=torch.float32)
    test = held_out_chains(1000)
    prompts, answers = [p.prompt for p in test], [p.answer for p in test]
    stream = train_chains(seed=args.seed, exclude=set(prompts))

    def evaluate(n: int) -> float:
        return greedy_accuracy(
            model, tokenizer, prompts[:n], answers[:n], max_new_tokens=MAX_NEW_TOKENS, max_prompt_length=16
        )

    base = evaluate(args.eval_size)
    print(json.dumps({"step": 0, "held_out": base}), flush=True)
    log = [{"step": 0, "train_seconds": 0.0, "held_out": base}]
    step, train_time, acc = train_until(
        model,
        tokenizer,
        stream,
        lambda: evaluate(args.eval_size),
        args,
        log=log,
        acc=base,
        print_every=10,
        max_minutes=args.max_minutes,
    )

    acc = evaluate(len(prompts))  # the recorded accuracy: all 1000 held-out problems
    print(json.dumps({"step": step, "held_out_1000": acc}), flush=True)
    more = train_chains(seed=args.seed + 1, exclude=set(prompts))
    summary = {
        "init": str(args.init), "steps": step, "train_seconds": round(train_time, 1), "held_out_accuracy_1000": acc,
        "command": "OMP_NUM_THREADS=1 nice -n 19 python scripts/pretrain_chain.py " + " ".join(sys.argv[1:]),
    }  # fmt: skip
    save_sft(model, tokenizer, args, test=test, train=more, summary=summary, log=log, accuracy=acc)
    return 0


if __name__ == "__main__":
    sys.exit(main())
