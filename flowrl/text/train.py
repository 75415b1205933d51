"""The text GRPO trainer: `flowrl train-text`.

One step, for any GRPO-family loss of `flowrl.grpo.VARIANTS` (a token plays the role of a denoising step)::

    prompts (P per step, from the task JSONL) -> prefill each prompt once, sample G completions with `generate`
      -> decode up to EOS / stop string -> rewards (N, K) -> weighted sum -> group advantages (core)
      -> masks: completion tokens, truncation (core), zero-variance groups (core), NaN-reward groups skipped
      -> rows with signal in micro-batches, padding trimmed -> fp32 chunked log-probs (+ reference, KL estimator)
      -> policy_loss (core: ratio, surrogate, reduction with the step's global normaliser) -> backward
      -> gradient sum over processes -> clip -> AdamW -> metrics (TRL names), evaluation, checkpoint

Groups whose rewards are all equal have zero advantage, so with no KL term their gradient is exactly zero: they are
counted in the normaliser (as TRL does) but never forwarded. Every step's prompts and sampling seed derive from
(seed, step, rank), so resuming from a checkpoint repeats the uninterrupted run.

Run: ``flowrl train-text`` (the shipped arithmetic model, DAPO, 14 minutes on CPU), ``flowrl train-text --preset
grpo train.time_limit_minutes=2``, ``flowrl train-text --resume runs/<name>``, ``flowrl train-text
model.path=/my/model task.train_file=train.jsonl task.test_file=test.jsonl``.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path
from typing import NamedTuple

import torch

from flowrl.config import ConfigError, dump_yaml, from_dict, load_yaml_file, load_yaml_text, merge, parse_overrides
from flowrl.grpo import (
    KL_ESTIMATORS,
    PolicyBatch,
    Variant,
    get_variant,
    group_stats,
    nonzero_variance_mask,
    normalizer,
    policy_loss,
    top_entropy_mask,
    truncation_mask,
    weighted_sum,
)
from flowrl.text.config import TextTrainConfig
from flowrl.text.data import load_jsonl, step_rows
from flowrl.text.evaluate import completion_text, greedy_accuracy
from flowrl.text.logprobs import completion_logprobs
from flowrl.text.policy import TextPolicy, base_model, load_policy, reference_logprobs, trainable_parameters
from flowrl.text.prompts import encode_prompts
from flowrl.text.rollout import Rollout, SamplingConfig, sample_groups
from flowrl.text.task_rewards import load_text_reward, score_completions

REPO_ROOT = Path(__file__).resolve().parents[2]
PRESETS_DIR = Path(__file__).resolve().parent / "presets"
DEFAULT_PRESET = "dapo"
PRESETS = ("grpo", "dr_grpo", "dapo", "bnpo", "gspo", "cispo")


class TextTrainResult(NamedTuple):
    run_dir: Path
    base_accuracy: float | None
    final_accuracy: float | None
    steps: int
    minutes: float


class StepData(NamedTuple):
    """One step's rollout with its credit assignment (local rows)."""

    rollout: Rollout
    rewards: torch.Tensor  # (N, K)
    total: torch.Tensor  # (N,) weighted sum (NaN rows zeroed)
    adv: torch.Tensor  # (N,)
    mask: torch.Tensor  # (N, C) float, tokens in the loss
    train_rows: torch.Tensor  # (M,) rows that are forwarded
    skipped_groups: int  # groups with a NaN / inf reward


# ----------------------------------------------------------------------------------------------------- config


def resolve_path(path: str, *, what: str) -> Path:
    """`path` relative to the current directory or, failing that, to the flowrl repository."""
    for candidate in (Path(path), REPO_ROOT / path):
        if candidate.exists():
            return candidate
    raise FileNotFoundError(f"The {what} {path!r} was not found (looked in {Path.cwd()} and {REPO_ROOT}).")


def preset_path(name: str) -> Path:
    """`name` as a file path, or the packaged preset `flowrl/text/presets/<name>.yaml`."""
    if name.endswith((".yaml", ".yml")) or "/" in name:
        return Path(name)
    path = PRESETS_DIR / f"{name}.yaml"
    if not path.is_file():
        valid = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
        raise ConfigError(f"Unknown text preset {name!r}. Valid: {valid}, or a path to a YAML file.")
    return path


def load_config(*, preset: str | None, overrides: list[str]) -> TextTrainConfig:
    """Defaults < preset (default: dapo) < ``key.path=value`` overrides."""
    data = load_yaml_file(preset_path(preset or DEFAULT_PRESET))
    return from_dict(TextTrainConfig, merge(data, parse_overrides(overrides)))


def build_variant(cfg: TextTrainConfig) -> Variant:
    """The loss variant with the configured KL weight; dr_grpo's constant normaliser uses max_new_tokens."""
    kwargs = dict(cfg.loss.kwargs)
    if cfg.loss.variant == "dr_grpo":
        kwargs.setdefault("max_len", cfg.generation.max_new_tokens)
    try:
        return get_variant(cfg.loss.variant, beta=cfg.loss.kl_beta, **kwargs)
    except TypeError as e:
        raise ConfigError(f"loss.kwargs {sorted(kwargs)} do not fit variant {cfg.loss.variant!r}: {e}") from e
    except ValueError as e:
        raise ConfigError(str(e)) from e


def check_context(cfg: TextTrainConfig, policy: TextPolicy) -> None:
    """Prompt budget + completion budget must fit the model's context."""
    limit = base_model(policy).config.to_dict().get("max_position_embeddings")
    need = cfg.generation.max_prompt_length + max(cfg.generation.max_new_tokens, cfg.eval.max_new_tokens)
    if limit is not None and need > limit:
        raise ConfigError(
            f"generation.max_prompt_length ({cfg.generation.max_prompt_length}) + max_new_tokens "
            f"({max(cfg.generation.max_new_tokens, cfg.eval.max_new_tokens)}) = {need} exceeds the model's context "
            f"of {limit} positions. Lower generation.max_prompt_length or the new-token budgets."
        )


# ----------------------------------------------------------------------------------------------------- phases


def _seed(*keys: int) -> int:
    seed = 0
    for k in keys:
        seed = (seed * 1_000_003 + int(k)) % (2**63 - 1)
    return seed


@torch.no_grad()
def collect(
    cfg: TextTrainConfig,
    policy: TextPolicy,
    variant: Variant,
    reward_fns: list,
    rows: list[dict],
    prompt_ids: list[list[int]],
    indices: list[int],
    *,
    step: int,
    rank: int,
) -> StepData:
    """Sample the groups of `indices`, score them, and build advantages and the loss mask."""
    g = cfg.generation
    torch.manual_seed(_seed(cfg.train.seed, step, rank))
    model = policy.model
    was_training = model.training
    model.eval()
    try:
        ro = sample_groups(
            model,
            policy.tokenizer,
            [prompt_ids[i] for i in indices],
            group_size=g.group_size,
            sampling=SamplingConfig(g.max_new_tokens, g.temperature, g.top_k, g.top_p, tuple(g.stop_strings)),
            eos_ids=policy.eos_ids,
            prefill_once=g.prefill_once,
        )
    finally:
        model.train(was_training)
    comp_rows = (ro.completion_ids * ro.completion_mask).tolist()
    lengths = ro.completion_mask.sum(-1).tolist()
    texts = [
        completion_text(policy.tokenizer, r[:n], eos_ids=policy.eos_ids)[0]
        for r, n in zip(comp_rows, lengths, strict=True)
    ]
    group_rows = [rows[indices[int(k)]] for k in ro.group_ids.tolist()]
    metadata = [{**r, "terminated": not bool(t)} for r, t in zip(group_rows, ro.truncated.tolist(), strict=True)]
    rewards, _ = score_completions(reward_fns, texts, [r["prompt"] for r in group_rows], metadata)  # (N, K)
    total = weighted_sum(rewards, weights=torch.tensor(cfg.reward.weights))  # (N,)
    groups = ro.group_ids.cpu()
    bad = torch.isin(groups, torch.unique(groups[~torch.isfinite(total)]))  # (N,) rows of groups with a NaN reward
    skipped = int(torch.unique(groups[bad]).numel())
    if skipped:
        print(
            f"[flowrl] step {step}: {skipped} group(s) had a NaN / inf reward and were skipped "
            "(counted in metric skipped_groups).",
            file=sys.stderr,
        )
    total = torch.where(bad, 0.0, total)
    adv = torch.where(bad, 0.0, variant.advantages(total, groups))  # (N,)
    mask = ro.completion_mask.float().cpu()  # (N, C)
    if cfg.loss.mask_truncated:
        mask = truncation_mask(mask, ro.truncated.cpu())
    varies = nonzero_variance_mask(total, groups)  # (N,)
    if variant.drop_constant_groups:
        mask = mask * varies[:, None].float()
    mask = mask * (~bad)[:, None].float()
    forward = mask.sum(-1) > 0
    if cfg.train.skip_zero_variance and cfg.loss.kl_beta == 0.0:
        forward &= varies
    return StepData(ro, rewards, total, adv, mask, torch.nonzero(forward).flatten(), skipped)


def _trimmed(data: StepData, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows of the step with all-padding columns cut: prompt ids/mask, completion ids/mask(attention), loss mask."""
    ro = data.rollout
    p_ids, p_mask = ro.prompt_ids[rows], ro.prompt_mask[rows]  # (M, P)
    c_ids, c_mask, loss_mask = ro.completion_ids[rows], ro.completion_mask[rows], data.mask[rows]  # (M, C)
    first = int((p_mask.sum(0) > 0).nonzero()[0])
    last = int((c_mask.sum(0) > 0).nonzero()[-1]) + 1 if c_mask.any() else 1
    return p_ids[:, first:], p_mask[:, first:], c_ids[:, :last], c_mask[:, :last], loss_mask[:, :last]


def micro_batches(rows: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Consecutive chunks of at most `size` row indices."""
    return [rows[s : s + size] for s in range(0, rows.numel(), size)]


def update(
    cfg: TextTrainConfig,
    policy: TextPolicy,
    variant: Variant,
    data: StepData,
    optimizer: torch.optim.Optimizer,
    accelerator,
) -> dict[str, float]:
    """Inner epochs over the step's rollout: micro-batch forward / backward through the core, gradient sum over
    processes, clip, AdamW. Returns metrics averaged over the trained tokens."""
    world = accelerator.num_processes
    model, params = policy.model, trainable_parameters(policy)
    mbs = micro_batches(data.train_rows, cfg.train.micro_batch_size)
    counts = normalizer(data.mask, num_micro_batches=max(len(mbs), 1))
    num_tokens, num_seqs = (
        _all_reduce(counts.num_tokens.clone(), world),
        _all_reduce(counts.num_sequences.clone(), world),
    )
    norm = counts._replace(num_tokens=num_tokens, num_sequences=num_seqs)
    temp, chunk = cfg.generation.temperature, cfg.train.logprob_chunk
    kl_fn = KL_ESTIMATORS[cfg.loss.kl_estimator]
    old, ref = {}, {}
    if cfg.train.inner_epochs > 1 or cfg.loss.kl_beta > 0:
        with torch.no_grad():
            for i, mb in enumerate(mbs):
                args = _trimmed(data, mb)[:4]
                if cfg.train.inner_epochs > 1:
                    old[i] = completion_logprobs(model, *args, temperature=temp, chunk_size=chunk).logp
                if cfg.loss.kl_beta > 0:
                    ref[i] = reference_logprobs(policy, *args, temperature=temp, chunk_size=chunk).logp
    sums: dict[str, float] = {}
    for _ in range(cfg.train.inner_epochs):
        optimizer.zero_grad(set_to_none=False)
        for i, mb in enumerate(mbs):
            p_ids, p_mask, c_ids, c_mask, loss_mask = _trimmed(data, mb)
            lp = completion_logprobs(model, p_ids, p_mask, c_ids, c_mask, temperature=temp, chunk_size=chunk)
            tok_mask = loss_mask.to(lp.logp.device)
            if cfg.loss.top_entropy_quantile < 1.0:
                tok_mask = top_entropy_mask(lp.entropy, tok_mask, quantile=cfg.loss.top_entropy_quantile)
            old_logp = old[i] if i in old else lp.logp.detach()
            kl = kl_fn(lp.logp, ref[i]) if i in ref else None
            batch = PolicyBatch(lp.logp, old_logp, data.adv[mb].to(lp.logp.device), tok_mask, kl=kl)
            loss, metrics = policy_loss(variant.objective, batch, norm=norm)
            accelerator.backward(loss)
            n = float(tok_mask.sum())
            metrics["entropy"] = (lp.entropy * c_mask).sum() / c_mask.sum().clamp(min=1)
            for k, v in metrics.items():
                sums[k] = sums.get(k, 0.0) + float(v) * n
            sums["_tokens"] = sums.get("_tokens", 0.0) + n
        for p in params:
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            _all_reduce(p.grad, world)
        if cfg.optim.grad_clip > 0:
            sums["grad_norm"] = sums.get("grad_norm", 0.0) + float(
                torch.nn.utils.clip_grad_norm_(params, cfg.optim.grad_clip)
            )
        optimizer.step()
    tokens = sums.pop("_tokens", 0.0)
    out = {k: v / tokens for k, v in sums.items() if k != "grad_norm" and tokens > 0}
    if "grad_norm" in sums:
        out["grad_norm"] = sums["grad_norm"] / cfg.train.inner_epochs
    out["num_trained_tokens"] = tokens
    return out


def _all_reduce(t: torch.Tensor, world: int) -> torch.Tensor:
    if world > 1:
        torch.distributed.all_reduce(t, op=torch.distributed.ReduceOp.SUM)
    return t


def rollout_metrics(cfg: TextTrainConfig, data: StepData, reward_names: list[str]) -> dict[str, float]:
    """TRL-named metrics of the step's samples: reward, reward_std, rewards/<fn>/mean|std, frac_reward_zero_std,
    completions/{mean,min,max}_length, completions/mean_terminated_length, completions/clipped_ratio."""
    ro, groups = data.rollout, data.rollout.group_ids.cpu()
    stats = group_stats(data.total, groups)
    lengths = ro.completion_mask.sum(-1).float().cpu()
    terminated = ~ro.truncated.cpu()
    out = {
        "reward": float(data.total.mean()),
        "reward_std": float(stats.std.mean()),
        "frac_reward_zero_std": float((stats.std == 0).float().mean()),
        "completions/mean_length": float(lengths.mean()),
        "completions/min_length": float(lengths.min()),
        "completions/max_length": float(lengths.max()),
        "completions/clipped_ratio": float(ro.truncated.float().mean()),
        "completions/mean_terminated_length": float(lengths[terminated].mean()) if terminated.any() else math.nan,
        "skipped_groups": float(data.skipped_groups),
        "num_tokens": float(lengths.sum()),
        "trained_groups_ratio": float(data.train_rows.numel() / max(len(groups), 1)),
    }
    for k, name in enumerate(reward_names):
        col = data.rewards[:, k]
        out[f"rewards/{name}/mean"] = float(col.nanmean())
        out[f"rewards/{name}/std"] = float(col[~col.isnan()].std()) if (~col.isnan()).sum() > 1 else math.nan
    return out


# ----------------------------------------------------------------------------------------------------- the loop


def _model_state(policy: TextPolicy) -> dict[str, torch.Tensor]:
    if policy.lora:
        from peft.utils import get_peft_model_state_dict

        return {k: v.detach().clone() for k, v in get_peft_model_state_dict(policy.model).items()}
    return {k: v.detach().clone() for k, v in policy.model.state_dict().items()}


def _load_model_state(policy: TextPolicy, state: dict[str, torch.Tensor]) -> None:
    if policy.lora:
        from peft.utils import set_peft_model_state_dict

        set_peft_model_state_dict(policy.model, state)
    else:
        policy.model.load_state_dict(state)


def train(cfg: TextTrainConfig, *, resume: Path | None = None) -> TextTrainResult:
    """Run (or resume) a text GRPO run; returns its folder and base / final held-out accuracy."""
    from accelerate import Accelerator

    from flowrl.train.checkpoint import (
        capture_rng_state,
        latest_checkpoint,
        load_checkpoint,
        restore_rng_state,
        save_checkpoint,
    )
    from flowrl.train.metrics import MetricsLogger, read_metrics
    from flowrl.train.plots import plot_curves
    from flowrl.train.progress import progress
    from flowrl.train.run_dir import create_run_dir, write_config

    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    if cfg.train.prompts_per_step % world:
        raise ConfigError(
            f"train.prompts_per_step ({cfg.train.prompts_per_step}) must be divisible by the number of processes "
            f"({world})."
        )
    main_process = accelerator.is_main_process
    t_start = time.perf_counter()
    variant = build_variant(cfg)
    policy = load_policy(
        resolve_path(cfg.model.path, what="model folder"),
        dtype=cfg.model.dtype,
        lora_rank=cfg.model.lora_rank,
        lora_alpha=cfg.model.lora_alpha,
        keep_reference=cfg.loss.kl_beta > 0,
        device=accelerator.device,
    )
    check_context(cfg, policy)
    rows = load_jsonl(resolve_path(cfg.task.train_file, what="training task file"), what="training task file")
    prompt_ids = encode_prompts(
        policy.tokenizer,
        [str(r["prompt"]) for r in rows],
        max_prompt_length=cfg.generation.max_prompt_length,
        system=cfg.task.system,
    )
    test_rows = (
        load_jsonl(resolve_path(cfg.task.test_file, what="held-out task file"), what="held-out task file")[
            : cfg.task.test_size
        ]
        if cfg.task.test_file
        else []
    )
    reward_fns = [load_text_reward(name) for name in cfg.reward.names]
    reward_names = [fn.name for fn in reward_fns]
    params = trainable_parameters(policy)
    optimizer = torch.optim.AdamW(  # fused: one kernel over all tensors (5x less optimizer time on CPU than foreach)
        params, lr=cfg.optim.lr, betas=cfg.optim.betas, weight_decay=cfg.optim.weight_decay, fused=True
    )

    def run_eval() -> float | None:
        if not test_rows:
            return None
        return greedy_accuracy(
            policy.model,
            policy.tokenizer,
            [str(r["prompt"]) for r in test_rows],
            [str(r["answer"]) for r in test_rows],
            max_new_tokens=cfg.eval.max_new_tokens,
            max_prompt_length=cfg.generation.max_prompt_length,
            system=cfg.task.system,
        )

    start_step, base, train_seconds, last_eval_seconds = 0, None, 0.0, 0.0
    if resume is not None:
        ckpt_path = latest_checkpoint(resume)
        if ckpt_path is None:
            raise FileNotFoundError(f"No checkpoint in {resume}/checkpoints to resume from.")
        ckpt = load_checkpoint(ckpt_path)
        _load_model_state(policy, ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["rng"] is not None:
            restore_rng_state(ckpt["rng"])
        trainer = ckpt["trainer"]
        start_step, base = int(trainer["step"]), trainer["base_accuracy"]
        train_seconds, last_eval_seconds = float(trainer["train_seconds"]), float(trainer["last_eval_seconds"])
        run_dir = Path(resume)
    else:
        run_dir = create_run_dir(cfg.run.root, cfg.run.name or None) if main_process else Path(cfg.run.root)
    if main_process:
        write_config(run_dir, dump_yaml(cfg))
    resume_step = start_step + 1 if resume is not None else None
    logger = MetricsLogger(run_dir, tensorboard=cfg.run.tensorboard, resume_step=resume_step) if main_process else None

    if resume is None and main_process:
        base = run_eval()
        if base is not None:
            logger.log(0, {"eval/accuracy": base})
            print(
                f"[flowrl] base model: held-out accuracy {100 * base:.1f}% ({len(test_rows)} problems)",
                file=sys.stderr,
            )

    def checkpoint(next_step: int) -> None:
        if not main_process:
            return
        trainer = {
            "step": next_step,
            "base_accuracy": base,
            "train_seconds": train_seconds,
            "last_eval_seconds": last_eval_seconds,
        }
        save_checkpoint(
            run_dir,
            next_step,
            {
                "model": _model_state(policy),
                "optimizer": optimizer.state_dict(),
                "rng": capture_rng_state(),
                "trainer": trainer,
                "config": dump_yaml(cfg),
            },
            keep_last=cfg.run.keep_last,
        )

    final, step, window = None, start_step, {}
    limit = cfg.train.time_limit_minutes
    bar = progress(cfg.train.steps - start_step, desc="flowrl train-text", disable=not main_process)
    try:
        for step in range(start_step, cfg.train.steps):
            t0 = time.perf_counter()
            indices = step_rows(len(rows), cfg.train.prompts_per_step, seed=cfg.train.seed, step=step)[rank::world]
            data = collect(cfg, policy, variant, reward_fns, rows, prompt_ids, indices, step=step, rank=rank)
            t1 = time.perf_counter()
            metrics = rollout_metrics(cfg, data, reward_names)
            metrics.update(update(cfg, policy, variant, data, optimizer, accelerator))
            t2 = time.perf_counter()
            metrics.update(time_generate=t1 - t0, time_train=t2 - t1, step_time=t2 - t0)
            train_seconds += t2 - t0
            done = step + 1
            for k, v in metrics.items():
                window.setdefault(k, []).append(v)
            evaluate_now = (
                cfg.eval.every_minutes > 0 and train_seconds - last_eval_seconds >= 60 * cfg.eval.every_minutes
            ) or (cfg.eval.every_steps > 0 and done % cfg.eval.every_steps == 0)
            out_of_time = limit > 0 and train_seconds / 60 >= limit
            last = done == cfg.train.steps or out_of_time
            if main_process:
                bar.set_postfix(reward=f"{metrics['reward']:.3f}")
                bar.update(1)
                if done % cfg.run.log_every == 0 or done % cfg.run.checkpoint_every == 0 or evaluate_now or last:
                    logged = {k: _nanmean(v) for k, v in window.items()}
                    logged["learning_rate"] = cfg.optim.lr
                    logged["train_minutes"] = train_seconds / 60
                    if evaluate_now or last:
                        final = run_eval()
                        last_eval_seconds = train_seconds
                        if final is not None:
                            logged["eval/accuracy"] = final
                    logged["wall_minutes"] = (time.perf_counter() - t_start) / 60
                    logged["process_cpu_time"] = time.process_time()  # CPU seconds of this process so far
                    logger.log(done, logged)
                    window = {}
            if done % cfg.run.checkpoint_every == 0 or last:
                checkpoint(done)
            if out_of_time:
                if main_process:
                    print(f"[flowrl] time limit of {limit} min reached after {done} steps.", file=sys.stderr)
                break
    finally:
        bar.close()
        if logger is not None:
            logger.close()
    steps_done = step + 1
    minutes = train_seconds / 60
    if main_process:
        out = run_dir / "final"
        policy.model.save_pretrained(out)  # full model, or the LoRA adapter (peft layout)
        policy.tokenizer.save_pretrained(out)
        plot_curves(
            read_metrics(run_dir / "metrics.jsonl"),
            ["reward", "eval/accuracy", "entropy", "completions/mean_length", "kl", "clip_ratio/region_mean"],
            run_dir / "curves.png",
            title=f"{cfg.loss.variant} on {Path(cfg.task.train_file).name}",
        )
        if base is not None and final is not None:
            print(
                f"flowrl train-text: held-out accuracy base {100 * base:.1f}% -> final {100 * final:.1f}% "
                f"({100 * (final - base):+.1f} points, {len(test_rows)} problems) after {steps_done} steps, "
                f"{minutes:.1f} min of training, {(time.perf_counter() - t_start) / 60:.1f} min wall; run folder "
                f"{run_dir}"
            )
        else:
            print(f"flowrl train-text: {steps_done} steps, {minutes:.1f} min of training; run folder {run_dir}")
    return TextTrainResult(run_dir, base, final, steps_done, minutes)


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan


# ----------------------------------------------------------------------------------------------------- CLI


def main(argv: list[str] | None = None) -> int:
    """`flowrl train-text [--preset NAME] [--resume RUN] [--show-config] [key.path=value ...]` -> exit code."""
    parser = argparse.ArgumentParser(
        prog="flowrl train-text",
        description="GRPO-train a causal language model. Defaults: the shipped arithmetic LM (assets/arith_lm), "
        f"preset {DEFAULT_PRESET}, on CPU for 14 minutes. Override any field with key.path=value.",
        epilog="Examples: flowrl train-text --preset grpo train.time_limit_minutes=2 | flowrl train-text "
        "model.path=/my/model task.train_file=t.jsonl task.test_file=h.jsonl | flowrl train-text --resume runs/<name>",
    )
    parser.add_argument("--preset", help=f"preset name ({', '.join(PRESETS)}) or a YAML file")
    parser.add_argument("--resume", type=Path, help="continue the run in this folder from its last checkpoint")
    parser.add_argument("--show-config", action="store_true", help="print the resolved config and exit")
    parser.add_argument("overrides", nargs="*", help="key.path=value overrides (e.g. optim.lr=2e-5)")
    args = parser.parse_args(argv)
    try:
        if args.resume is not None:
            saved = args.resume / "config.yaml"
            if not saved.is_file():
                raise ConfigError(f"{args.resume} has no config.yaml: not a flowrl run folder.")
            cfg = load_yaml_text(TextTrainConfig, saved.read_text())
            if args.overrides:
                cfg = from_dict(TextTrainConfig, merge(load_yaml_file(saved), parse_overrides(args.overrides)))
        else:
            cfg = load_config(preset=args.preset, overrides=args.overrides)
        if args.show_config:
            print(dump_yaml(cfg), end="")
            return 0
        if cfg.train.threads > 0:
            torch.set_num_threads(cfg.train.threads)
        train(cfg, resume=args.resume)
    except (ConfigError, FileNotFoundError, ValueError) as e:
        print(f"flowrl train-text: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
