"""`flowrl eval-text`: held-out exact match of a causal LM under one or more decoders, with standard errors.

Decoders: ``greedy`` (the trainer's held-out evaluation) and ``vm_mcts`` (ReST-RL's value-model-guided tree search,
flowrl/text/vm_mcts.py: needs ``--value-model``, a folder written by scripts/train_value_model.py). Each problem's hit
is 1 when the decoded completion equals its 'answer' and ended with EOS. The first decoder is the reference of the
paired differences. ``--out`` writes the per-problem hits and the summary as JSON.

    flowrl eval-text --model assets/chain_lm --test-file assets/chain_lm/test.jsonl --decode greedy vm_mcts \\
        --value-model runs/vm_chain/value_model
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

DECODERS = ("greedy", "vm_mcts")


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="flowrl eval-text", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--model", required=True, help="causal LM folder (a run's final/ folder, or assets/chain_lm)")
    ap.add_argument("--test-file", default="assets/chain_lm/test.jsonl", help="JSONL with 'prompt' and 'answer'")
    ap.add_argument("--test-size", type=int, default=1000, help="held-out rows evaluated (the first ones)")
    ap.add_argument("--decode", nargs="+", default=["greedy"], choices=DECODERS, help="decoders, in order")
    ap.add_argument("--value-model", default="", help="VM folder for --decode vm_mcts")
    ap.add_argument("--max-new-tokens", type=int, default=24)
    ap.add_argument("--max-prompt-length", type=int, default=16)
    ap.add_argument("--iterations", type=int, default=15, help="VM-MCTS iteration_limit (official decoding: 15)")
    ap.add_argument("--num-sample", type=int, default=5, help="VM-MCTS continuations per expansion (5)")
    ap.add_argument("--num-decision", type=int, default=3, help="VM-MCTS visible children per node (3)")
    ap.add_argument("--exploration", type=float, default=0.1, help="VM-MCTS UCT constant c (decoding: 0.1)")
    ap.add_argument("--eps", type=float, default=0.1, help="VM-MCTS UCT zero-visit guard (0.1)")
    ap.add_argument("--temperature", type=float, default=0.7, help="VM-MCTS sampling temperature (0.7)")
    ap.add_argument("--delimiter", default="=", help="VM-MCTS step delimiter")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1, help="torch CPU threads (0 = torch's default)")
    ap.add_argument("--out", type=Path, default=None, help="JSON file of per-problem hits and the summary")
    return ap


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if "vm_mcts" in args.decode and not args.value_model:
        raise SystemExit(
            "flowrl eval-text: --decode vm_mcts needs --value-model <folder> (scripts/train_value_model.py)."
        )

    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from flowrl.text.data import load_jsonl
    from flowrl.text.evaluate import eos_token_ids, exact_match, greedy_hits
    from flowrl.text.pass_at_k import mean_se, paired_diff
    from flowrl.text.prompts import encode_prompts
    from flowrl.text.value_model import load_value_model, vm_mcts_decode
    from flowrl.text.vm_mcts import MctsParams

    if args.threads > 0:
        torch.set_num_threads(args.threads)
    vm = load_value_model(args.value_model) if "vm_mcts" in args.decode else None  # fails before the model loads
    if not (Path(args.model) / "config.json").is_file():
        raise SystemExit(f"flowrl eval-text: --model {args.model!r} is not a model folder (no config.json).")
    model = AutoModelForCausalLM.from_pretrained(args.model).eval()
    tok = AutoTokenizer.from_pretrained(args.model)
    rows = load_jsonl(args.test_file, what="held-out task file")[: args.test_size]
    prompts, answers = [str(r["prompt"]) for r in rows], [str(r["answer"]) for r in rows]
    summary, hits = {}, {}
    for decoder in args.decode:
        t0 = time.perf_counter()
        if decoder == "greedy":
            h = greedy_hits(
                model, tok, prompts, answers, max_new_tokens=args.max_new_tokens,
                max_prompt_length=args.max_prompt_length,
            )  # fmt: skip
            extra = {}
        else:
            params = MctsParams(
                args.iterations, args.num_sample, args.num_decision, args.exploration, args.eps, args.delimiter
            )
            ids = encode_prompts(tok, prompts, max_prompt_length=args.max_prompt_length)
            res = vm_mcts_decode(
                model, tok, vm, ids, params=params, temperature=args.temperature, max_new_tokens=args.max_new_tokens,
                eos_ids=eos_token_ids(model, tok), seed=args.seed,
            )  # fmt: skip
            h = [exact_match(c.text, a, terminated=c.ended) for c, a in zip(res.answers, answers, strict=True)]
            # how often the tree holds a correct completion at all: what a perfect VM could pick
            found = [
                max((exact_match(c.text, a, terminated=c.ended) for c in tree), default=0.0)
                for tree, a in zip(res.trees, answers, strict=True)
            ]
            extra = {
                "generated_tokens_per_problem": res.generated_tokens / len(rows),
                "vm_calls_per_problem": res.vm_calls / len(rows),
                "completions_per_tree": sum(map(len, res.trees)) / len(rows),
                "tree_holds_a_correct_completion": mean_se(torch.tensor(found))._asdict(),
                "params": params._asdict(),
            }
        hits[decoder] = torch.tensor(h, dtype=torch.float64)
        summary[decoder] = {"accuracy": mean_se(hits[decoder])._asdict(), "seconds": time.perf_counter() - t0, **extra}
        if decoder != args.decode[0]:
            summary[decoder]["vs_" + args.decode[0]] = paired_diff(hits[args.decode[0]], hits[decoder])._asdict()
        acc = summary[decoder]["accuracy"]
        line = f"{decoder}: {100 * acc['mean']:.1f} +- {100 * acc['se']:.1f} % ({len(rows)} problems"
        if "vs_" + args.decode[0] in summary[decoder]:
            d = summary[decoder]["vs_" + args.decode[0]]
            line += f"; vs {args.decode[0]} {100 * d['mean']:+.1f} +- {100 * d['se']:.1f}"
        if extra:
            found = extra["tree_holds_a_correct_completion"]
            line += (
                f"; {extra['generated_tokens_per_problem']:.0f} generated tokens / problem; a correct completion in "
                f"{100 * found['mean']:.1f} +- {100 * found['se']:.1f} % of the trees"
            )
        print(line + f"; {summary[decoder]['seconds']:.0f} s)", flush=True)
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        record = {"model": args.model, "value_model": args.value_model, "test_file": args.test_file,
                  "summary": summary, "hits": {k: v.tolist() for k, v in hits.items()}}  # fmt: skip
        args.out.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
