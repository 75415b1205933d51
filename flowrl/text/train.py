"""The text GRPO trainer: `flowrl train-text` (command line: `flowrl/text/cli.py`).

One step, for any GRPO-family loss of `flowrl.grpo.VARIANTS` (a token plays the role of a denoising step)::

    prompts (P per step, from the task JSONL) -> prefill each prompt once, sample G completions with `generate`
      -> decode up to EOS / stop string -> rewards (N, K) -> weighted sum -> group advantages (core)
      -> masks: completion tokens, truncation (core), zero-variance groups (core), NaN-reward groups skipped
      -> rows with signal in micro-batches, padding trimmed -> fp32 chunked log-probs (+ reference, KL estimator)
      -> policy_loss (core: ratio, surrogate, reduction with the step's global normaliser) -> backward
      -> gradient sum over processes -> clip -> AdamW -> metrics (TRL names), evaluation, checkpoint

Everything up to the advantages is `flowrl/text/collect.py`, the update `flowrl/text/update.py`, the step's sample
metrics `flowrl/text/step_metrics.py`; this file is the loop (resume, evaluation, checkpoints). Completions whose
advantage is zero at every token (under GRPO: the groups whose rewards are all equal) have exactly zero gradient
without a KL term: they are counted in the normaliser (as TRL does) but never forwarded.

The LLM variants of docs/papers_llm.md plug in at the named extension points of `flowrl/text/hooks.py` (config
section `hooks`): reward shaping between scoring and advantages, per-token weights and masks, the regulariser
(reference KL, a teacher's KL, LLDS; coefficient schedule), a whole-loss plugin replacing `policy_loss`, stable
prompt ids as group keys, and per-prompt group sizes. Each hook is called at one place (`collect`, `update`).

Every step's prompts and sampling seed derive from (seed, step, rank), so resuming from a checkpoint repeats the
uninterrupted run (the state of a stateful hook or advantage tracker is not checkpointed: it restarts empty).

Run: ``flowrl train-text`` (the shipped arithmetic model, DAPO, 14 minutes on CPU), ``flowrl train-text --preset
grpo train.time_limit_minutes=2``, ``flowrl train-text --resume runs/<name>``, ``flowrl train-text
model.path=/my/model task.train_file=train.jsonl task.test_file=test.jsonl``.
"""

from __future__ import annotations

import logging
import math
import time
from pathlib import Path
from typing import NamedTuple

import torch

from flowrl.config import ConfigError, dump_yaml
from flowrl.grpo import Variant, get_variant
from flowrl.grpo import weighted_sum as weighted_reward_sum
from flowrl.grpo.schedules import LinearSchedule
from flowrl.grpo.variants_llm import with_beta
from flowrl.runtime.optim import make_optimizer
from flowrl.runtime.paths import resolve_path
from flowrl.runtime.seeding import LORA_INIT, derive_seed, generator, seeded_global_rng
from flowrl.text import hooks as H
from flowrl.text.collect import (
    TrainerHooks,
    collect,
    decode_and_score,
    eval_mode,
    regularized,
    sampling_config,
)
from flowrl.text.config import TextTrainConfig
from flowrl.text.data import load_jsonl, step_rows
from flowrl.text.evaluate import greedy_accuracy
from flowrl.text.policy import (
    TextPolicy,
    base_model,
    bind_task_images,
    is_vlm_policy,
    load_policy,
    load_policy_state,
    load_teacher,
    policy_state,
    soup_model,
    trainable_parameters,
)
from flowrl.text.prompt_samplers import PROMPT_SAMPLERS
from flowrl.text.prompts import encode_prompts
from flowrl.text.rest import PREFIX_KEY, Assembly, assemble_rows
from flowrl.text.rollout import sample_groups
from flowrl.text.step_metrics import rollout_metrics
from flowrl.text.task_rewards import load_text_reward
from flowrl.text.update import update
from flowrl.vlm.rewards import extract_answer

logger = logging.getLogger(__name__)


class TextTrainResult(NamedTuple):
    run_dir: Path
    base_accuracy: float | None
    final_accuracy: float | None
    steps: int
    minutes: float


# ----------------------------------------------------------------------------------------------------- config


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


def build_hooks(cfg: TextTrainConfig) -> TrainerHooks:
    """The hook objects named in `cfg.hooks`, with their keyword arguments."""
    h = cfg.hooks

    def make(table: dict, name: str, kwargs: dict, field: str):
        if not name or (field == "group_sizes" and name == "fixed"):
            return None
        try:
            return table[name](**kwargs)
        except TypeError as e:
            raise ConfigError(f"hooks.{field}_kwargs {sorted(kwargs)} do not fit hooks.{field}={name!r}: {e}") from e

    return TrainerHooks(
        shaper=make(H.SHAPERS, h.shaping, h.shaping_kwargs, "shaping"),
        token_weights=make(H.TOKEN_WEIGHTS, h.token_weights, h.token_weights_kwargs, "token_weights"),
        token_mask=make(H.TOKEN_MASKS, h.token_mask, h.token_mask_kwargs, "token_mask"),
        whole_loss=make(H.WHOLE_LOSSES, h.whole_loss, h.whole_loss_kwargs, "whole_loss"),
        sizes=make(H.GROUP_SIZES, h.group_sizes, h.group_sizes_kwargs, "group_sizes"),
        hints=make(H.HINTS, h.hints, h.hints_kwargs, "hints"),
        sampler=make(PROMPT_SAMPLERS, h.prompt_sampler, h.prompt_sampler_kwargs, "prompt_sampler"),
    )


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


def rest_assembly(
    cfg: TextTrainConfig, policy: TextPolicy, reward_fns: list, rows: list[dict], prompt_ids: list[list[int]], *,
    round_: int, rank: int,
) -> Assembly:  # fmt: skip
    """ReST-GRPO (flowrl/text/rest.py): a pool of `rest.pool_size` training rows, `rest.samples` completions each from
    the trainer's sampler at `rest.temperature`, scored by the run's rewards (weighted sum), then filtered on reward
    std and extended with partial solutions. Draws derive from (train.seed, round, rank)."""
    r, g = cfg.rest, cfg.generation
    pool = step_rows(len(rows), min(r.pool_size, len(rows)), seed=cfg.train.seed, step=round_)
    sampling = sampling_config(cfg)._replace(temperature=r.temperature)
    weights = torch.tensor(cfg.reward.weights)

    def sample_and_score(pool: list[int]) -> tuple[torch.Tensor, list[list[str]], int]:
        totals, texts, tokens = [], [], 0
        for s in range(0, len(pool), 64):  # 64 prompts per sampling call
            part = pool[s : s + 64]
            with eval_mode(policy.model):
                ro = sample_groups(
                    policy.model, policy.tokenizer, [prompt_ids[i] for i in part], group_size=r.samples,
                    sampling=sampling, eos_ids=policy.eos_ids, prefill_once=g.prefill_once,
                )  # fmt: skip
            dec, rewards = decode_and_score(policy, reward_fns, rows, part, ro)
            totals.append(weighted_reward_sum(rewards, weights=weights).view(len(part), r.samples))
            texts += [dec.texts[j * r.samples : (j + 1) * r.samples] for j in range(len(part))]
            tokens += int(ro.completion_mask.sum())
        return torch.cat(totals), texts, tokens

    torch.manual_seed(derive_seed(cfg.train.seed, REST_KEY, round_, rank))
    asm = assemble_rows(
        rows, pool, sample_and_score, std_threshold=r.std_threshold, completion_threshold=r.completion_threshold,
        n_sample=r.n_sample, alpha=r.alpha, delimiter=r.delimiter,
        generator=generator(cfg.train.seed, REST_KEY, round_, rank, 1),
    )  # fmt: skip
    if not asm.rows:
        raise RuntimeError(
            f"ReST-GRPO kept no prompt: all {asm.pool_size} pool prompts had a reward std below rest.std_threshold "
            f"({r.std_threshold}) over {r.samples} samples (mean std {asm.mean_std:.3f}). Lower the threshold, raise "
            "rest.samples / rest.pool_size, or use a task the policy sometimes solves."
        )
    return asm


def rest_prompt_ids(cfg: TextTrainConfig, policy: TextPolicy, rows: list[dict]) -> list[list[int]]:
    """Prompt ids of assembled rows: the encoded prompt, then the partial solution's tokens (as the Scaf-GRPO hint);
    a row longer than generation.max_prompt_length is an error naming it."""
    ids = encode_prompts(
        policy.tokenizer, [str(r["prompt"]) for r in rows], max_prompt_length=cfg.generation.max_prompt_length,
        system=cfg.task.system,
    )  # fmt: skip
    out = []
    for row, p in zip(rows, ids, strict=True):
        prefix = row[PREFIX_KEY]
        full = p + (policy.tokenizer(prefix, add_special_tokens=False)["input_ids"] if prefix else [])
        if len(full) > cfg.generation.max_prompt_length:
            raise ConfigError(
                f"ReST-GRPO prompt {row['prompt']!r} + partial solution {prefix!r} is {len(full)} tokens, over "
                f"generation.max_prompt_length ({cfg.generation.max_prompt_length}); raise it (prompt + completion "
                "budget must fit the model's context)."
            )
        out.append(full)
    return out


REST_KEY = 7_919  # key of ReST-GRPO's draws (derive_seed)


# ----------------------------------------------------------------------------------------------------- the loop


def train(cfg: TextTrainConfig, *, resume: Path | None = None) -> TextTrainResult:
    """Run (or resume) a text GRPO run; returns its folder and base / final held-out accuracy."""
    from accelerate import Accelerator

    from flowrl.runtime.checkpoint import (
        capture_rng_state,
        latest_checkpoint,
        load_checkpoint,
        restore_rng_state,
        save_checkpoint,
    )
    from flowrl.runtime.metrics import MetricsLogger, read_metrics
    from flowrl.runtime.plots import plot_curves
    from flowrl.runtime.progress import progress
    from flowrl.runtime.run_dir import create_run_dir, write_config

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
    hooks = build_hooks(cfg)
    if hooks.sampler is not None and world > 1:
        raise ConfigError(f"hooks.prompt_sampler={cfg.hooks.prompt_sampler} keeps per-process statistics: run it on "
                          f"one process (got {world}).")  # fmt: skip
    reference_kl = regularized(cfg) and cfg.hooks.regularizer == "reference_kl"
    with seeded_global_rng(cfg.train.seed, LORA_INIT):  # peft's LoRA init draws from torch's global generator
        policy = load_policy(
            resolve_path(cfg.model.path, what="model folder"),
            dtype=cfg.model.dtype,
            lora_rank=cfg.model.lora_rank,
            lora_alpha=cfg.model.lora_alpha,
            keep_reference=reference_kl and not cfg.hooks.reference_soup,
            device=accelerator.device,
        )
    check_context(cfg, policy)
    if cfg.synth.share > 0 and not is_vlm_policy(policy):
        raise ConfigError(f"synth.share > 0 synthesises images: {cfg.model.path} is not a VLM (flowrl train-vlm).")
    if cfg.hooks.reference_soup:  # hook: SALSA's reference = a weight soup of model folders
        if policy.lora or not reference_kl:
            raise ConfigError(
                "hooks.reference_soup replaces the frozen reference copy of full fine-tuning: it needs "
                "model.lora_rank=0, hooks.regularizer=reference_kl and loss.kl_beta > 0 (or hooks.kl_beta_end > 0)."
            )
        paths = [resolve_path(p, what="soup model folder") for p in cfg.hooks.reference_soup]
        policy = policy._replace(reference=soup_model(policy.model, paths))
    teacher = None
    if cfg.hooks.regularizer == "teacher_kl":  # hook: KDRL's teacher
        teacher = load_teacher(resolve_path(cfg.hooks.teacher_path, what="teacher model folder"), policy)
    schedule = None
    if cfg.hooks.kl_ramp_steps > 0:  # hook: regulariser coefficient schedule (GRPO-D, KDRL)
        schedule = LinearSchedule(cfg.loss.kl_beta, cfg.hooks.kl_beta_end, cfg.hooks.kl_ramp_steps)
    train_path = resolve_path(cfg.task.train_file, what="training task file")
    rows = bind_task_images(policy, load_jsonl(train_path, what="training task file"), train_path)  # VLM: image keys
    prompt_ids = encode_prompts(
        policy.tokenizer,
        [str(r["prompt"]) for r in rows],
        max_prompt_length=cfg.generation.max_prompt_length,
        system=cfg.task.system,
    )
    test_rows = []
    if cfg.task.test_file:
        test_path = resolve_path(cfg.task.test_file, what="held-out task file")
        test_rows = load_jsonl(test_path, what="held-out task file")[: cfg.task.test_size]
        test_rows = bind_task_images(policy, test_rows, test_path)
    reward_fns = [load_text_reward(name, rubric=cfg.reward.rubric) for name in cfg.reward.names]
    reward_names = [fn.name for fn in reward_fns]
    o = cfg.optim
    optimizer = make_optimizer(
        trainable_parameters(policy), lr=o.lr, betas=o.betas, weight_decay=o.weight_decay, fused=True
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
            answer_of=extract_answer if is_vlm_policy(policy) else None,
        )

    start_step, base, train_seconds, last_eval_seconds = 0, None, 0.0, 0.0
    generated_tokens, rest_rows = 0, None  # tokens generated so far (rollouts + ReST assembly); ReST's training rows
    if resume is not None:
        ckpt_path = latest_checkpoint(resume)
        if ckpt_path is None:
            raise FileNotFoundError(f"No checkpoint in {resume}/checkpoints to resume from.")
        ckpt = load_checkpoint(ckpt_path)
        load_policy_state(policy, ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
        if ckpt["rng"] is not None:
            restore_rng_state(ckpt["rng"])
        trainer = ckpt["trainer"]
        start_step, base = int(trainer["step"]), trainer["base_accuracy"]
        train_seconds, last_eval_seconds = float(trainer["train_seconds"]), float(trainer["last_eval_seconds"])
        generated_tokens, rest_rows = int(trainer.get("generated_tokens", 0)), trainer.get("rest_rows")
        run_dir = Path(resume)
    else:
        run_dir = create_run_dir(cfg.run.root, cfg.run.name or None) if main_process else Path(cfg.run.root)
    if main_process:
        write_config(run_dir, dump_yaml(cfg))
    resume_step = start_step + 1 if resume is not None else None
    metrics_log = (
        MetricsLogger(run_dir, tensorboard=cfg.run.tensorboard, resume_step=resume_step) if main_process else None
    )

    if resume is None and main_process:
        base = run_eval()
        if base is not None:
            metrics_log.log(0, {"eval/accuracy": base})
            logger.info("base model: held-out accuracy %.1f%% (%d problems)", 100 * base, len(test_rows))

    def checkpoint(next_step: int) -> None:
        if not main_process:
            return
        trainer = {
            "step": next_step,
            "base_accuracy": base,
            "train_seconds": train_seconds,
            "last_eval_seconds": last_eval_seconds,
            "generated_tokens": generated_tokens,
            "rest_rows": rest_rows,
        }
        state = {"model": policy_state(policy), "optimizer": optimizer.state_dict(), "rng": capture_rng_state()}
        state.update(trainer=trainer, config=dump_yaml(cfg))
        save_checkpoint(run_dir, next_step, state, keep_last=cfg.run.keep_last)

    final, step, window = None, start_step, {}
    step_src, step_prompt_ids = rows, prompt_ids  # the rows the steps draw from (ReST-GRPO: the assembled set)
    if rest_rows is not None:
        step_src, step_prompt_ids = rest_rows, rest_prompt_ids(cfg, policy, rest_rows)
    feed = None
    if cfg.synth.share > 0:  # Syn-GRPO: questions about synthesised images (flowrl/vlm/synth.py)
        from functools import partial

        from flowrl.vlm.synth import start_feed

        encode = partial(encode_prompts, policy.tokenizer, max_prompt_length=cfg.generation.max_prompt_length,
                         system=cfg.task.system)  # fmt: skip
        feed = start_feed(cfg.synth, policy.model, encode, seed=derive_seed(cfg.train.seed, rank))
    limit = cfg.train.time_limit_minutes
    bar = progress(cfg.train.steps - start_step, desc="flowrl train-text", disable=not main_process)
    try:
        for step in range(start_step, cfg.train.steps):
            t0 = time.perf_counter()
            rest_metrics = {}
            every = cfg.rest.every_steps
            if cfg.rest.enabled and (rest_rows is None or (every > 0 and step > start_step and step % every == 0)):
                asm = rest_assembly(cfg, policy, reward_fns, rows, prompt_ids, round_=step, rank=rank)
                rest_rows = asm.rows
                step_src, step_prompt_ids = rest_rows, rest_prompt_ids(cfg, policy, rest_rows)
                generated_tokens += asm.generated_tokens
                rest_metrics = {
                    "rest/assembly_tokens": float(asm.generated_tokens), "rest/kept_prompts": float(asm.kept_prompts),
                    "rest/rows": float(len(asm.rows)), "rest/pool_mean_std": asm.mean_std,
                    "rest/prefixed_rows": float(sum(bool(r[PREFIX_KEY]) for r in asm.rows)),
                    "rest/assembly_seconds": time.perf_counter() - t0,
                }  # fmt: skip
                if main_process:
                    logger.info("ReST-GRPO assembly at step %d: %s", step, rest_metrics)
            t0 = time.perf_counter() - rest_metrics.get("rest/assembly_seconds", 0.0)
            n_rows = len(step_src)
            indices = step_rows(n_rows, cfg.train.prompts_per_step, seed=cfg.train.seed, step=step)[rank::world]
            if hooks.sampler is not None:  # hook: the step's rows picked by VAS / VADE (one process)
                indices = hooks.sampler.select(n_rows, cfg.train.prompts_per_step, seed=cfg.train.seed, step=step)
            src, src_ids, synth_rows = step_src, step_prompt_ids, 0
            if feed is not None:  # Syn-GRPO: synthesised questions in place of the step's last ones
                src, src_ids, indices, synth_rows = feed.mix(step_src, step_prompt_ids, indices)
            step_variant = variant if schedule is None else with_beta(variant, schedule(step))
            data = collect(
                cfg, policy, step_variant, reward_fns, src, src_ids, indices, step=step, rank=rank, hooks=hooks
            )
            if hooks.sampler is not None:
                hooks.sampler.report(indices, data.outcome, data.rollout)
            t1 = time.perf_counter()
            metrics = rollout_metrics(cfg, data, reward_names)
            metrics.update(rest_metrics)
            if feed is not None:
                metrics.update(feed.stats(), synth_rows=float(synth_rows))
            generated_tokens += int(data.rollout.completion_mask.sum())
            metrics.update(
                update(cfg, policy, step_variant, data, optimizer, accelerator, hooks=hooks, teacher=teacher)
            )
            metrics["kl_beta"] = step_variant.objective.beta
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
            budget = cfg.train.max_generated_tokens
            out_of_time = out_of_time or (budget > 0 and generated_tokens >= budget)
            last = done == cfg.train.steps or out_of_time
            if main_process:
                bar.set_postfix(reward=f"{metrics['reward']:.3f}")
                bar.update(1)
                if done % cfg.run.log_every == 0 or done % cfg.run.checkpoint_every == 0 or evaluate_now or last:
                    logged = {k: _nanmean(v) for k, v in window.items()}
                    logged["learning_rate"] = cfg.optim.lr
                    logged["train_minutes"] = train_seconds / 60
                    logged["generated_tokens"] = float(generated_tokens)
                    if evaluate_now or last:
                        final = run_eval()
                        last_eval_seconds = train_seconds
                        if final is not None:
                            logged["eval/accuracy"] = final
                    logged["wall_minutes"] = (time.perf_counter() - t_start) / 60
                    logged["process_cpu_time"] = time.process_time()  # CPU seconds of this process so far
                    metrics_log.log(done, logged)
                    window = {}
            if done % cfg.run.checkpoint_every == 0 or last:
                checkpoint(done)
            if out_of_time:
                if main_process:
                    logger.info("time / token limit reached after %d steps (%.1f min, %d generated tokens).", done,
                                train_seconds / 60, generated_tokens)  # fmt: skip
                break
    finally:
        bar.close()
        if metrics_log is not None:
            metrics_log.close()
        if feed is not None:
            feed.stop()
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
