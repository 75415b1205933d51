"""SFT of the shipped tiny ShapeWorld VLM (`assets/shapeworld_vlm/`): a LLaVA (tiny CLIP vision tower + tiny Llama,
`flowrl.vlm.model.build_tiny_llava`) that answers ShapeWorld questions in the reasoning format
``<think> objects left to right </think> <answer> X </answer>``.

Each step draws a fresh batch of training-split items (`flowrl.shapes.questions.sample_items`, seed = step), loss on
the completion and EOS only. Half the completions have their reasoning emptied (TON's thought dropout, arXiv
2505.16854, dropout probability 0.5 [?]: the paper's value is not in our notes), so the base model can answer with or
without thinking. Greedy held-out accuracy (`flowrl.vlm.evaluate`) on the first ``--eval-rows`` rows of test.jsonl
every ``--eval-every`` steps; training stops at the first evaluation at or above ``--target`` (base accuracy with
room to learn), or when the process has used ``--cpu-minutes`` of CPU time. Writes the model, tokenizer, image
processor, train.jsonl / test.jsonl and `sft_log.json` (command, steps, CPU and wall minutes) into ``--out``.
``--save-every N`` also saves the model at every N-th step into ``--out/step_N`` (a ladder of bases from one run:
the same seed draws the same batches, so ``step_N`` is the checkpoint a run stopped at step N would ship).

    OMP_NUM_THREADS=1 nice -n 19 python scripts/pretrain_vlm.py --out assets/shapeworld_vlm
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import torch

from flowrl.shapes.questions import sample_items
from flowrl.vlm.evaluate import evaluate_vlm
from flowrl.vlm.images import pixel_values
from flowrl.vlm.model import NUM_IMAGE_TOKENS, KeyedImageVLM, build_processor, build_tiny_llava
from flowrl.vlm.tasks import bind_images, item_row, row_image, sft_target, write_task
from flowrl.vlm.tokenizer import IMAGE_TOKEN, vlm_tokenizer


def sft_batch(tok, processor, rows: list[dict], *, rng: random.Random, thought_dropout: float):
    """Right-padded `(B, L)` ids / mask / labels (-100 outside completion + EOS) and `(B, 3, 32, 32)` pixels."""
    seqs, labels = [], []
    for r in rows:
        question = r["prompt"].replace(IMAGE_TOKEN, " ".join([IMAGE_TOKEN] * NUM_IMAGE_TOKENS), 1)
        p = tok(question)["input_ids"]
        c = tok(sft_target(r, drop_thought=rng.random() < thought_dropout), add_special_tokens=False)["input_ids"]
        c = c + [tok.eos_token_id]
        seqs.append(p + c)
        labels.append([-100] * len(p) + c)
    width = max(map(len, seqs))
    ids = torch.full((len(seqs), width), tok.pad_token_id)
    lab = torch.full((len(seqs), width), -100)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, (s, l) in enumerate(zip(seqs, labels, strict=True)):
        ids[i, : len(s)], lab[i, : len(l)], mask[i, : len(s)] = torch.tensor(s), torch.tensor(l), 1
    pv = pixel_values(processor, [row_image(r) for r in rows])
    return ids, mask, lab, pv


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="assets/shapeworld_vlm")
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--warmup", type=int, default=100)
    ap.add_argument("--thought-dropout", type=float, default=0.5)
    ap.add_argument("--eval-every", type=int, default=100)
    ap.add_argument("--eval-rows", type=int, default=300)
    ap.add_argument("--target", type=float, default=0.40)
    ap.add_argument("--cpu-minutes", type=float, default=14.0)
    ap.add_argument("--train-rows", type=int, default=5000)
    ap.add_argument("--test-rows", type=int, default=1000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--save-every", type=int, default=0, help="also save out/step_N every N steps (0 = off)")
    args = ap.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    torch.set_num_threads(1)
    tok, processor = vlm_tokenizer(), build_processor()
    llava = build_tiny_llava(tok, seed=args.seed)
    write_task(out / "train.jsonl", n=args.train_rows, split="train", seed=1)
    test_rows = write_task(out / "test.jsonl", n=args.test_rows, split="test", seed=2)
    vlm = KeyedImageVLM(llava, tok, processor)
    eval_rows = bind_images(vlm, test_rows[: args.eval_rows])
    opt = torch.optim.AdamW(llava.parameters(), lr=args.lr, betas=(0.9, 0.98), weight_decay=0.01)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / args.warmup))
    rng = random.Random(args.seed)
    log, cpu0, wall0, step = [], time.process_time(), time.perf_counter(), 0
    n_params = sum(p.numel() for p in llava.parameters())
    print(f"parameters {n_params:,}", flush=True)
    while True:
        rows = [item_row(it) for it in sample_items(args.batch_size, split="train", seed=100_000 + step)]
        ids, mask, lab, pv = sft_batch(tok, processor, rows, rng=rng, thought_dropout=args.thought_dropout)
        llava.train()
        loss = llava(input_ids=ids, attention_mask=mask, pixel_values=pv, labels=lab).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(llava.parameters(), 1.0)
        opt.step()
        sched.step()
        step += 1
        cpu = (time.process_time() - cpu0) / 60
        entry = {"step": step, "loss": round(float(loss), 4), "cpu_minutes": round(cpu, 3)}
        done = cpu >= args.cpu_minutes
        if step % args.eval_every == 0 or done:
            ev = evaluate_vlm(vlm, tok, eval_rows)
            entry.update(accuracy=ev.accuracy, per_family=ev.per_family, mean_length=ev.mean_length)
            done = done or ev.accuracy >= args.target
        log.append(entry)
        if args.save_every and step % args.save_every == 0:
            vlm.save_pretrained(out / f"step_{step}")
            tok.save_pretrained(out / f"step_{step}")
        if step % 10 == 0 or "accuracy" in entry:
            print(json.dumps(entry), flush=True)
        if done:
            break
    vlm.save_pretrained(out)
    tok.save_pretrained(out)
    final = evaluate_vlm(vlm, tok, bind_images(vlm, test_rows))
    meta = {
        "command": "OMP_NUM_THREADS=1 python scripts/pretrain_vlm.py "
        + " ".join(sys.argv[1:] if argv is None else argv),
        "parameters": n_params,
        "steps": step,
        "cpu_minutes": round((time.process_time() - cpu0) / 60, 2),
        "wall_minutes": round((time.perf_counter() - wall0) / 60, 2),
        "held_out_accuracy": final.accuracy,
        "held_out_stderr": final.stderr,
        "held_out_rows": len(test_rows),
        "per_family": final.per_family,
        "mean_length": final.mean_length,
        "log": log,
    }
    (out / "sft_log.json").write_text(json.dumps(meta, indent=1))
    print(json.dumps({k: v for k, v in meta.items() if k != "log"}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
