"""SFT of the shipped tiny arithmetic LM (`assets/arith_lm/`): a 1.05M-parameter Llama with a character tokenizer.

Trains on a stream of procedural 2-3 digit addition / subtraction problems (`flowrl.text.arith`), loss on the answer
and EOS only, and evaluates greedy exact match on the 1000 held-out problems every ``--eval-every`` steps. It stops
as soon as held-out accuracy reaches ``--target`` (accuracy crosses the 20-60% band in a few hundred steps, so the
checkpoint is chosen by measured accuracy, not by wall time) and writes the model, tokenizer, the task files
(train.jsonl, test.jsonl) and `sft_log.json` into ``--out``.

    nice -n 19 python scripts/pretrain_arith.py --out assets/arith_lm
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import torch

from flowrl.text.arith import ALPHABET, held_out_problems, train_stream, write_jsonl
from flowrl.text.char_lm import char_llama
from flowrl.text.char_tokenizer import char_tokenizer
from flowrl.text.evaluate import greedy_accuracy


def sft_batch(problems, tokenizer) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Right-padded ``<bos> prompt answer <eos>`` ids `(B, L)`, attention mask and labels (-100 outside answer+EOS)."""
    rows, starts = [], []
    for p in problems:
        prompt = tokenizer(p.prompt)["input_ids"]  # <bos> + characters
        answer = tokenizer(p.answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        rows.append(prompt + answer)
        starts.append(len(prompt))
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), tokenizer.pad_token_id)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    for i, (r, s) in enumerate(zip(rows, starts, strict=True)):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(r)] = 1
        labels[i, s : len(r)] = torch.tensor(r[s:])
    return ids, mask, labels


def train_until(
    model, tokenizer, stream, evaluate, args, *, log: list, acc: float, print_every: int, max_minutes: float = 0.0
) -> tuple[int, float, float]:
    """SFT on `stream` (AdamW, linear warmup, clip 1.0) until ``evaluate()`` (every ``args.eval_every`` steps from
    ``args.min_steps``) reaches ``args.target``, ``args.max_steps`` or `max_minutes` of training (0 = no limit).

    Appends each evaluation to `log`; returns (last step, training seconds, last accuracy).
    """
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup))
    train_time = 0.0
    model.train()
    for step in range(1, args.max_steps + 1):
        t0 = time.perf_counter()
        ids, mask, labels = sft_batch([next(stream) for _ in range(args.batch_size)], tokenizer)
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        train_time += time.perf_counter() - t0
        if step % args.eval_every == 0 and step >= args.min_steps:
            acc = evaluate()
            log.append({"step": step, "train_seconds": round(train_time, 1), "loss": loss.item(), "held_out": acc})
            print(json.dumps(log[-1]), flush=True)
            if acc >= args.target:
                break
        elif step % print_every == 0:
            print(json.dumps({"step": step, "train_seconds": round(train_time, 1), "loss": loss.item()}), flush=True)
        if max_minutes and train_time >= 60 * max_minutes:
            print(f"stopping at the time limit of {max_minutes} min (last check {acc:.1%})", flush=True)
            break
    else:
        print(f"did not reach {args.target:.0%} in {args.max_steps} steps (last {acc:.1%})", file=sys.stderr)
    return step, train_time, acc


def sft_parser(
    doc: str, *, out: str, lr: float, warmup: int, min_steps: int, target: float
) -> argparse.ArgumentParser:
    """The options of `train_until`, the output folder and the task files, shared with `pretrain_chain.py` (which
    adds its own); the keyword arguments are the script's defaults."""
    parser = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=lr)
    parser.add_argument("--warmup", type=int, default=warmup)
    parser.add_argument("--max-steps", type=int, default=4000)
    parser.add_argument("--eval-every", type=int, default=25)
    parser.add_argument("--min-steps", type=int, default=min_steps, help="no evaluation before this step")
    parser.add_argument("--target", type=float, default=target, help="stop at this held-out accuracy")
    parser.add_argument("--train-jsonl", type=int, default=20000, help="training problems written to train.jsonl")
    parser.add_argument("--threads", type=int, default=1)
    return parser


def save_sft(model, tokenizer, args, *, test: list, train: Iterator, summary: dict, log: list, accuracy: float):
    """Write ``args.out``: the model (safetensors) and tokenizer, the held-out split `test` as test.jsonl,
    ``args.train_jsonl`` problems of the stream `train` as train.jsonl, and sft_log.json (`summary`: steps,
    train_seconds, ...; the run's settings; the evaluations `log`); print the recorded held-out `accuracy`."""
    args.out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(args.out, safe_serialization=True)
    tokenizer.save_pretrained(args.out)
    write_jsonl(test, args.out / "test.jsonl")
    write_jsonl([next(train) for _ in range(args.train_jsonl)], args.out / "train.jsonl")
    settings = {k: getattr(args, k) for k in ("batch_size", "lr", "seed", "threads")}
    record = {**summary, **settings, "torch": torch.__version__, "log": log}
    (args.out / "sft_log.json").write_text(json.dumps(record, indent=1) + "\n")
    step, minutes = summary["steps"], summary["train_seconds"] / 60
    print(f"saved to {args.out}: {step} steps, {minutes:.1f} min of training, held-out {accuracy:.1%}")


def main(argv: list[str] | None = None) -> int:
    parser = sft_parser(__doc__, out="assets/arith_lm", lr=2e-3, warmup=100, min_steps=600, target=0.30)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    tokenizer = char_tokenizer(ALPHABET)
    model = char_llama(tokenizer)  # hidden 128, 4 layers, 4 heads (MHA), MLP 512, tied embeddings: 1.05M parameters
    n_params = sum(p.numel() for p in model.parameters())
    test = held_out_problems(1000)
    stream = train_stream(seed=args.seed, exclude={p.prompt for p in test})
    prompts, answers = [p.prompt for p in test], [p.answer for p in test]
    print(f"tiny Llama: {n_params:,} parameters, vocab {len(tokenizer)}", flush=True)

    def evaluate() -> float:
        return greedy_accuracy(model, tokenizer, prompts, answers, max_new_tokens=6, max_prompt_length=16)

    log: list = []
    step, train_time, acc = train_until(model, tokenizer, stream, evaluate, args, log=log, acc=0.0, print_every=50)

    model.generation_config.pad_token_id = tokenizer.pad_token_id
    model.generation_config.eos_token_id = tokenizer.eos_token_id
    more = train_stream(seed=args.seed + 1, exclude=set(prompts))
    summary = {"parameters": n_params, "steps": step, "train_seconds": round(train_time, 1), "held_out_accuracy": acc}
    save_sft(model, tokenizer, args, test=test, train=more, summary=summary, log=log, accuracy=acc)
    return 0


if __name__ == "__main__":
    random.seed(0)
    sys.exit(main())
