"""The image GRPO trainer: `flowrl train`.

One iteration, for any method of `flowrl.flow.methods` (a chain, a shared-prefix branch, a probed spine, a tree)::

    prompts  -> plan of this iteration -> tree rollout per prompt (no grad)  -> rewards on the leaves
             -> credit by the method's estimator family (`flowrl.train.estimators`): per trained edge and an edge
                mask (step log-prob methods), or per sample and noised rows (DiffusionNFT, AWM)
             -> inner epochs x optimizer steps (`flowrl.train.update`): the estimator's loss -> backward
             -> gradient all-reduce over processes -> clip -> AdamW -> EMA -> metrics, evaluation, checkpoint

Scale-out: every process rolls out its share of the prompts (``prompts[rank::world]``); a prompt's whole tree lives on
one process, so groups never span processes and advantages need no gather. The loss of an optimizer step is divided
by the *global* count of trained edges and gradients are summed over processes, so 2 processes give the update of
1 process with the same global batch. All randomness is derived from (seed, iteration, prompt index), which makes
rollouts independent of the process count and resumption bit-exact.

Run: ``flowrl train`` (ShapeWorld default), ``flowrl train --preset shapes_mixgrpo train.iterations=20``,
``flowrl train --resume runs/<name>``; for two CPU processes
``accelerate launch --config_file configs/accelerate/cpu_2proc.yaml -m flowrl.train.image`` (docs/scaling.md).
"""

from __future__ import annotations

import math
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import NamedTuple

import torch

from flowrl.config import ConfigError
from flowrl.grpo import weighted_sum
from flowrl.runtime.distributed import gather_objects, merge_sums
from flowrl.runtime.metrics import read_metrics
from flowrl.runtime.optim import scheduled_lr, set_lr
from flowrl.runtime.plots import plot_curves
from flowrl.runtime.progress import progress
from flowrl.train.estimators import make_estimator, make_method
from flowrl.train.evaluation import EvalSummary, eval_metrics, headline
from flowrl.train.image_config import ImageTrainConfig
from flowrl.train.prompts import file_prompts, iteration_prompts
from flowrl.train.rollouts import collect
from flowrl.train.run_state import RunState, start_run
from flowrl.train.shapes_eval import change_lines, change_metrics
from flowrl.train.update import update


class TrainResult(NamedTuple):
    run_dir: Path
    base: EvalSummary | None
    final: EvalSummary | None
    iterations: int


def train(cfg: ImageTrainConfig, *, resume: Path | None = None, log_every_eval: bool = True) -> TrainResult:
    """Run (or resume) an image GRPO run and return where it lives and its base / final held-out accuracy."""
    from accelerate import Accelerator, DistributedType  # imported here: `flowrl train --help` stays fast

    if cfg.train.threads > 0:
        torch.set_num_threads(cfg.train.threads)
    accelerator = Accelerator(cpu=not torch.cuda.is_available())
    rank, world = accelerator.process_index, accelerator.num_processes
    if accelerator.distributed_type == DistributedType.DEEPSPEED:
        raise ConfigError(
            "The trainer does not drive DeepSpeed (configs/accelerate/deepspeed_zero2.yaml is untested, "
            "docs/scaling.md): launch with configs/accelerate/ddp.yaml, or shard full fine-tuning with "
            "configs/accelerate/fsdp_sd3.yaml / fsdp_flux.yaml (train.sharding=fsdp)."
        )
    if accelerator.distributed_type == DistributedType.FSDP and cfg.train.sharding == "none":
        cfg = replace(cfg, train=replace(cfg.train, sharding="fsdp"))  # an FSDP launch config asks for sharding
    if cfg.train.prompts_per_iteration % world:
        raise ConfigError(
            f"train.prompts_per_iteration ({cfg.train.prompts_per_iteration}) must be divisible by the "
            f"number of processes ({world})."
        )
    t_start = time.perf_counter()
    state = start_run(cfg, device=accelerator.device, rank=rank, world=world, resume=resume)
    state.evaluate_base()
    bar = progress(cfg.train.iterations - state.start_iteration, desc="flowrl train", disable=not state.main_process)
    try:
        for iteration in range(state.start_iteration, cfg.train.iterations):
            metrics = run_iteration(state, iteration)
            state.done = iteration + 1
            minutes = (time.perf_counter() - t_start) / 60
            stop = should_stop(cfg, minutes=minutes, nfe_total=state.nfe_total, world=world)
            finish_iteration(state, metrics, last=state.done == cfg.train.iterations or stop, t_start=t_start)
            if state.main_process:
                bar.set_postfix(reward=f"{metrics['reward_mean']:.3f}")
                bar.update(1)
            if stop:
                if state.main_process:
                    print(
                        f"[flowrl] budget reached after {state.done} iterations ({metrics['wall_minutes']:.1f} min, "
                        f"{state.nfe_total:.0f} NFE).",
                        file=sys.stderr,
                    )
                break
    finally:
        bar.close()
        if state.logger is not None:
            state.logger.close()
    state.save_final()
    if state.main_process:
        report(state, minutes=(time.perf_counter() - t_start) / 60)
    if world > 1:  # every process leaves together: a rank that exits while another still runs can abort in gloo
        accelerator.wait_for_everyone()
        torch.distributed.destroy_process_group()
    return TrainResult(state.run_dir, state.base, state.final, state.done)


def run_iteration(state: RunState, iteration: int) -> dict[str, float]:
    """Rollouts, credit and update of one iteration; its metrics (reward statistics, NFE, times) summed over ranks."""
    cfg, adapter, world = state.cfg, state.adapter, state.world
    t_it = time.perf_counter()
    method = make_method(cfg, iteration, default_shift=adapter.default_shift)
    estimator = make_estimator(cfg, adapter, method, old=state.old)
    prompts = _prompts(cfg, state.user_prompts, iteration)
    local = [(i, p) for i, p in enumerate(prompts) if i % world == state.rank]
    with estimator.sampling():  # the current weights, or the lagged policy (DiffusionNFT theta_old)
        units, stats = collect(cfg, adapter, estimator, state.reward_fns, local, iteration)
    units = estimator.finish_credit(units, world)  # every process's rewards are known only now
    t_train = time.perf_counter()
    o = cfg.optim
    lr = scheduled_lr(
        iteration,
        total=cfg.train.iterations,
        lr=o.lr,
        schedule=o.schedule,
        decay_start=o.decay_start,
        final_ratio=o.final_lr_ratio,
    )
    set_lr(state.optimizer, lr)
    metrics = update(cfg, estimator, units, state.optimizer, state.ema, iteration=iteration, world=world)
    metrics["lr"] = lr
    counts = merge_sums(gather_objects({k: torch.tensor(v) for k, v in stats.items()}, world))
    metrics.update({k: float(v) for k, v in counts.items()})  # NFE and skips summed, times summed over ranks
    metrics["time_train"] = time.perf_counter() - t_train
    metrics.update(reward_metrics(cfg, [u.rollout.rewards for u in units], world))
    metrics["time_iteration"] = time.perf_counter() - t_it
    state.nfe_total += metrics["nfe_rollout"] + metrics.get("nfe_train", 0.0)
    metrics["nfe_total"] = state.nfe_total
    return metrics


def _prompts(cfg: ImageTrainConfig, user_prompts: list[str], iteration: int) -> list[str]:
    """The iteration's prompts (all processes): drawn from train.prompts_file, or ShapeWorld's train split."""
    t = cfg.train
    if user_prompts:
        return file_prompts(user_prompts, t.prompts_per_iteration, seed=t.seed, iteration=iteration)
    return iteration_prompts(t.prompts_per_iteration, families=t.families, seed=t.seed, iteration=iteration)


def reward_metrics(cfg: ImageTrainConfig, local_rewards: list[torch.Tensor], world: int) -> dict[str, float]:
    """Mean of each reward and mean / std of their weighted sum over every process's `(L, K)` leaf rewards."""
    gathered = [r for part in gather_objects(local_rewards, world) for r in part]
    every = torch.cat(gathered) if gathered else torch.zeros(0, len(cfg.reward.names))
    out = {
        f"reward/{name}/mean": float(every[:, k].mean()) if len(every) else math.nan
        for k, name in enumerate(cfg.reward.names)
    }
    total = weighted_sum(every, weights=torch.tensor(cfg.reward.weights)) if len(every) else None
    out["reward_mean"] = float(total.mean()) if total is not None else math.nan
    out["reward_std"] = float(total.std()) if total is not None and total.numel() > 1 else math.nan
    return out


def finish_iteration(state: RunState, metrics: dict[str, float], *, last: bool, t_start: float) -> None:
    """Evaluate when due (FSDP: every rank takes part, rank 0 logs), log the metrics, checkpoint when due."""
    cfg, done = state.cfg, state.done
    due = done % cfg.eval.every == 0 or last
    if state.sharded and not state.main_process and due:
        state.evaluate(done)
    if state.main_process:
        if due:
            t_eval = time.perf_counter()
            state.final = state.evaluate(done)
            metrics.update(eval_metrics(state.final))
            if state.base is not None and state.base.outcomes and state.final.outcomes:
                metrics.update(change_metrics(state.base.outcomes, state.final.outcomes))
            metrics["time_eval"] = time.perf_counter() - t_eval
        metrics["wall_minutes"] = (time.perf_counter() - t_start) / 60
        state.logger.log(done, metrics)
    if done % cfg.run.checkpoint_every == 0 or last:
        state.checkpoint(done)


def should_stop(cfg: ImageTrainConfig, *, minutes: float, nfe_total: float, world: int) -> bool:
    """Budget check (wall time, network evaluations); any process over budget stops all of them."""
    t = cfg.train
    over = (t.time_limit_minutes > 0 and minutes >= t.time_limit_minutes) or (t.max_nfe > 0 and nfe_total >= t.max_nfe)
    return any(gather_objects(bool(over), world))


def report(state: RunState, *, minutes: float) -> None:
    """The learning curves (`curves.png`) and the closing lines: base -> final with paired standard errors."""
    cfg, base, final = state.cfg, state.base, state.final
    records = read_metrics(state.run_dir / "metrics.jsonl")
    plot_curves(
        records,
        ["reward_mean", "eval/strict/overall", "kl", "clip_ratio/region_mean"],
        state.run_dir / "curves.png",
        title=f"{cfg.method.name} on ShapeWorld",
    )
    if base is None or final is None:
        return
    name, b = headline(base)
    f = headline(final)[1]
    if base.strict:  # accuracies in percent
        change = f"{100 * b:.1f}% -> final {100 * f:.1f}% ({100 * (f - b):+.1f} points"
    else:
        change = f"{b:.4f} -> final {f:.4f} ({f - b:+.4f}"
    splits = change_lines(base.outcomes, final.outcomes) if base.outcomes and final.outcomes else []
    for line in splits:  # learning (train split) and generalisation (held-out), with paired s.e.
        print(f"flowrl train: {line}")
    print(
        f"flowrl train: {name} base {change}, {final.count} paired samples) in {minutes:.1f} min; "
        f"run folder {state.run_dir}"
    )


if __name__ == "__main__":  # `python -m flowrl.train.image` / `torchrun ... -m flowrl.train.image`
    from flowrl.train.image_cli import main

    sys.exit(main())
