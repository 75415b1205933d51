"""How much of a policy-gradient estimate is signal? Cosine between independent estimates, per configuration.

Two unbiased estimates g1, g2 of the same policy gradient s, each with independent noise n_i, have
``E[g1 . g2] = |s|^2`` while ``E|g_i|^2 = |s|^2 + E|n|^2``; so the mean pairwise cosine estimates the *signal
fraction* ``|s|^2 / (|s|^2 + E|n|^2)`` of one estimate (1 = noiseless, 0 = pure noise). Every estimate here is one
optimizer step's gradient of the trainer itself (`flowrl.train.image`): the same prompts, rollouts from
independent noise (a different iteration seed), at the starting weights (on-policy, ratios 1).

This is the diagnostic behind docs/shapeworld_rl.md: it tells, without a 20-minute run, whether a change of noise
level, trained steps, group size or reward moves the update towards signal.

    python scripts/grad_snr.py --estimates 4 \
        --config "default=" \
        --config "early2=--preset shapes_flow_grpo_fast method.kwargs.kernel=flow_sde method.kwargs.window_size=2"

Each ``--config NAME=ARGS`` is ``[--preset P] key=value ...`` as for `flowrl train`. Prints a table, writes JSON.
"""

from __future__ import annotations

import argparse
import itertools
import json
import shlex
import time
from pathlib import Path

import torch

import rewards as reward_lib
from flowrl.grpo import Normalizer
from flowrl.train.adapters import build_adapter
from flowrl.train.estimators import StepContext, make_estimator, make_method
from flowrl.train.image_cli import load_config
from flowrl.train.prompts import iteration_prompts
from flowrl.train.rollouts import collect


def parse_config(spec: str) -> tuple[str, str | None, list[str]]:
    """``NAME=[--preset P] k=v ...`` -> (name, preset, overrides)."""
    name, sep, rest = spec.partition("=")
    if not sep or not name:
        raise SystemExit(f"--config must look like NAME=[--preset P] key=value ..., got {spec!r}")
    words = shlex.split(rest)
    preset = None
    if words[:1] == ["--preset"]:
        if len(words) < 2:
            raise SystemExit(f"--config {spec!r}: --preset needs a name")
        preset, words = words[1], words[2:]
    return name, preset, words


def gradient_estimates(preset: str | None, overrides: list[str], *, estimates: int, prompts: int) -> dict:
    """`estimates` flattened gradients of one optimizer step each, plus what they were made of."""
    cfg = load_config(preset=preset, overrides=overrides)
    adapter = build_adapter(cfg, torch.device("cpu"))
    method = make_method(cfg, 0, default_shift=adapter.default_shift)
    estimator = make_estimator(cfg, adapter, method, old=None)  # a step log-prob method (its edges' gradient)
    reward_fns = [reward_lib.load_reward(name) for name in cfg.reward.names]
    chosen = iteration_prompts(prompts, families=cfg.train.families, seed=cfg.train.seed, iteration=0)
    params = adapter.trainable_parameters()
    grads, reward_std, edges, seconds = [], [], [], []
    for k in range(estimates):
        begin = time.perf_counter()
        units, _ = collect(cfg, adapter, estimator, reward_fns, list(enumerate(chosen)), iteration=10_000 + k)
        n = torch.tensor(float(sum(estimator.trained_units(u) for u in units)))
        for p in params:
            p.grad = None
        norm = Normalizer(num_tokens=n, num_sequences=n)
        estimator.step_loss(units, norm, StepContext(0, torch.tensor(float(len(units))), units))
        grads.append(torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in params]))
        reward_std.append(float(torch.stack([u.rollout.rewards[:, 0].std() for u in units]).mean()))
        edges.append(int(n))
        seconds.append(time.perf_counter() - begin)
    return {"grads": grads, "reward_std": reward_std, "edges": edges, "seconds": seconds}


def signal_fraction(grads: list[torch.Tensor]) -> tuple[float, float]:
    """Mean and standard error of the pairwise cosine of independent estimates."""
    cos = [float(torch.nn.functional.cosine_similarity(a, b, dim=0)) for a, b in itertools.combinations(grads, 2)]
    mean = sum(cos) / len(cos)
    spread = (sum((c - mean) ** 2 for c in cos) / max(1, len(cos) - 1)) ** 0.5
    return mean, spread / len(cos) ** 0.5


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", action="append", required=True, help="NAME=[--preset P] key=value ...")
    parser.add_argument("--estimates", type=int, default=4, help="independent gradient estimates per config")
    parser.add_argument("--prompts", type=int, default=8, help="prompts per estimate (the same prompts each time)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--json", type=Path, default=Path("runs/grad_snr.json"))
    args = parser.parse_args(argv)
    if args.estimates < 2:
        raise SystemExit("--estimates must be at least 2 (a cosine needs two estimates)")
    torch.set_num_threads(args.threads)
    rows = []
    for spec in args.config:
        name, preset, overrides = parse_config(spec)
        out = gradient_estimates(preset, overrides, estimates=args.estimates, prompts=args.prompts)
        mean, se = signal_fraction(out["grads"])
        norms = [float(g.norm()) for g in out["grads"]]
        rows.append(
            {
                "config": name,
                "preset": preset,
                "overrides": overrides,
                "signal_fraction": mean,
                "signal_fraction_se": se,
                "grad_norm": sum(norms) / len(norms),
                "reward_std_in_group": sum(out["reward_std"]) / len(out["reward_std"]),
                "edges": out["edges"][0],
                "seconds_per_estimate": sum(out["seconds"]) / len(out["seconds"]),
            }
        )
        r = rows[-1]
        print(
            f"{name:<28} signal {r['signal_fraction']:+.4f} +- {r['signal_fraction_se']:.4f}  "
            f"|g| {r['grad_norm']:.2e}  reward std {r['reward_std_in_group']:.3f}  edges {r['edges']}  "
            f"{r['seconds_per_estimate']:.1f} s/estimate",
            flush=True,
        )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps({"estimates": args.estimates, "prompts": args.prompts, "rows": rows}, indent=2))
    print(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
