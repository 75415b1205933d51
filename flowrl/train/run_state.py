"""What an image run carries from one iteration to the next (`RunState`), how it starts or resumes (`start_run`),
and the acts that read all of it: evaluate, checkpoint, save the final weights."""

from __future__ import annotations

import contextlib
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from flowrl.config import ConfigError, dump_yaml
from flowrl.models.base import ImageAdapter
from flowrl.runtime.checkpoint import (
    capture_rng_state,
    latest_checkpoint,
    load_checkpoint,
    restore_rng_state,
    save_checkpoint,
)
from flowrl.runtime.metrics import MetricsLogger
from flowrl.runtime.optim import make_optimizer
from flowrl.runtime.run_dir import create_run_dir, write_config
from flowrl.runtime.seeding import LORA_INIT, seeded_global_rng
from flowrl.train import eval_cache, sharding
from flowrl.train.adapters import DEFAULT_RESOLUTION, build_adapter, resolve_model_path
from flowrl.train.ema import EMA
from flowrl.train.estimators import make_method, samples_with_lagged_policy
from flowrl.train.estimators.config import grid_name
from flowrl.train.estimators.forward_process import check_config as check_forward_config
from flowrl.train.evaluation import EvalPrompts, EvalSummary, eval_metrics, evaluate, headline, sample_grid, save_grid
from flowrl.train.image_config import ImageTrainConfig
from flowrl.train.model_card import write_model_card
from flowrl.train.prompts import read_prompts_file
from flowrl.train.reward_fns import load_rewards
from flowrl.train.shapes_eval import shapeworld_eval_set


@dataclass
class RunState:
    """The model, its optimizer state and the run's bookkeeping; `nfe_total`, `base`, `final`, `done` change as the
    run goes."""

    cfg: ImageTrainConfig
    adapter: ImageAdapter
    optimizer: torch.optim.Optimizer
    ema: EMA | None  # EMA of the trained weights, used for evaluation and the saved weights
    old: EMA | None  # the lagged sampling policy of forward-process methods (DiffusionNFT theta_old)
    reward_fns: list
    eval_prompts: EvalPrompts
    user_prompts: list[str]  # train.prompts_file's prompts ([] = ShapeWorld's generator)
    run_dir: Path
    logger: MetricsLogger | None  # main process only
    rank: int
    world: int
    start_iteration: int = 0
    nfe_total: float = 0.0
    base: EvalSummary | None = None
    final: EvalSummary | None = None
    done: int = 0  # iterations finished

    @property
    def main_process(self) -> bool:
        return self.rank == 0

    @property
    def sharded(self) -> bool:
        return self.cfg.train.sharding == "fsdp"

    def evaluate(self, iteration: int) -> EvalSummary:
        """Evaluate (with the EMA weights when there are some, at `eval.resolution`); the main process saves the
        grid."""
        cfg, adapter = self.cfg, self.adapter
        with self.ema.swapped() if self.ema is not None else contextlib.nullcontext():
            if cfg.eval.resolution:  # sample at the evaluation resolution, then go back to the training one
                adapter.set_resolution(height=cfg.eval.resolution, width=cfg.eval.resolution)
            try:
                e = self.eval_prompts
                summary, images = evaluate(cfg, adapter, e.prompts, self.reward_fns, e.prefixes)
            finally:
                if cfg.eval.resolution:
                    train_px = cfg.model.resolution or DEFAULT_RESOLUTION
                    adapter.set_resolution(height=train_px, width=train_px)
        if self.main_process:
            imgs, captions = sample_grid(e.prompts, images, cfg.eval.grid_prompts, e.graded)
            grid = save_grid(self.run_dir, iteration, imgs, captions)
            if self.logger is not None:  # the trackers show it beside the curves
                self.logger.log_image(iteration, "eval/samples", grid)
        return summary

    def evaluate_base(self) -> None:
        """The base model's evaluation (`eval.at_start`): from the cache of an earlier run with the same model and
        settings (`eval.cache_base`), else run (and cached); logged at step 0."""
        cfg = self.cfg
        if self.base is not None or not cfg.eval.at_start:
            return
        key = None
        if cfg.eval.cache_base and not self.sharded:  # same model + settings, same numbers
            settings = {
                "eval": asdict(cfg.eval),
                "prompts": self.eval_prompts.prompts,
                "prefixes": self.eval_prompts.prefixes,
                "grid": grid_name(cfg),
                "shift": self.adapter.default_shift,
                "kind": cfg.model.kind,
                "rewards": [cfg.reward.names, cfg.reward.weights],
            }
            key = eval_cache.cache_key(resolve_model_path(cfg.model.path), settings)
            cached = eval_cache.load(cfg.run.root, key)
            if cached is not None:
                self.base = EvalSummary(cached["strict"], cached["score"], int(cached["count"]), cached["outcomes"])
                if self.main_process:
                    self.logger.log(0, eval_metrics(self.base))
                    print(
                        f"[flowrl] base model evaluation reused from {cfg.run.root}/{eval_cache.CACHE_DIR}",
                        file=sys.stderr,
                    )
                return
        if not (self.main_process or self.sharded):  # sharded: every rank runs the forwards
            return
        self.base = self.evaluate(0)
        if self.main_process:
            if key is not None:
                eval_cache.store(cfg.run.root, key, self.base._asdict())
            self.logger.log(0, eval_metrics(self.base))
            name, value = headline(self.base)
            print(f"[flowrl] base model: {name} {value:.4f} ({self.base.count} samples)", file=sys.stderr)

    def checkpoint(self, next_iteration: int) -> None:
        """A checkpoint to resume at `next_iteration` (sharded: collective, rank 0 writes the full tensors)."""
        ema = self.ema
        if self.sharded:  # gathering the full tensors is collective: every rank takes part, rank 0 writes them
            model_state = sharding.gather_state(self.adapter.trained_state())
            optimizer_state = sharding.gather_optimizer_state(self.optimizer.state_dict())
            ema_state = sharding.gather_state(ema.state_dict()) if ema is not None else None
        if not self.main_process:
            return
        if not self.sharded:
            model_state, optimizer_state = self.adapter.trained_state(), self.optimizer.state_dict()
            ema_state = ema.state_dict() if ema is not None else None
        trainer = {"iteration": next_iteration, "nfe_total": self.nfe_total}
        if self.base is not None:
            b = self.base
            trainer.update(base_strict=b.strict, base_score=b.score, base_count=b.count, base_outcomes=b.outcomes)
        state = {
            "model": model_state,
            "optimizer": optimizer_state,
            "ema": ema_state,
            "old_policy": self.old.state_dict() if self.old is not None else None,
            "rng": capture_rng_state(),
            "trainer": trainer,
            "config": dump_yaml(self.cfg),
        }
        save_checkpoint(self.run_dir, next_iteration, state, keep_last=self.cfg.run.keep_last)

    def save_final(self) -> None:
        """The trained weights (with EMA: the EMA copy every evaluation used, as flow_grpo's `save_ckpt`; the raw
        ones stay in the last checkpoint) and the model card beside them."""
        with self.ema.swapped() if self.ema is not None else contextlib.nullcontext():
            with sharding.full_parameters(self.adapter.transformer) if self.sharded else contextlib.nullcontext():
                if self.main_process:  # sharded: rank 0 holds the gathered full weights here
                    saved = self.adapter.save_trained(self.run_dir)
                    write_model_card(
                        saved, self.cfg, run_dir=self.run_dir, iterations=self.done, base=self.base, final=self.final
                    )


def start_run(cfg: ImageTrainConfig, *, device: torch.device, rank: int, world: int, resume: Path | None) -> RunState:
    """Load the model, rewards and prompts; restore the latest checkpoint of `resume` or create a run folder."""
    sharded = cfg.train.sharding == "fsdp"
    with seeded_global_rng(cfg.train.seed, LORA_INIT):  # peft's LoRA init draws from torch's global generator
        adapter = build_adapter(cfg, device)
    if sharded:  # before the optimizer and the EMA: they hold the sharded parameters
        sharding.shard_transformer(adapter.transformer, device_type=device.type)
    params = adapter.trainable_parameters()
    o = cfg.optim
    optimizer = make_optimizer(params, name=o.name, lr=o.lr, betas=o.betas, weight_decay=o.weight_decay)
    ema = EMA(params, decay=cfg.train.ema_decay) if cfg.train.ema_decay > 0 else None
    lagged = samples_with_lagged_policy(make_method(cfg, 0))
    if lagged:
        check_forward_config(cfg)
    old = EMA(params, decay=0.0) if lagged else None
    reward_fns = load_rewards(cfg, device)
    eval_prompts, user_prompts = _prompts(cfg, adapter)
    state = RunState(
        cfg,
        adapter,
        optimizer,
        ema,
        old,
        reward_fns,
        eval_prompts,
        user_prompts,
        Path(cfg.run.root),
        None,
        rank,
        world,
    )
    if resume is not None:
        _restore(state, resume)
    elif state.main_process:
        state.run_dir = create_run_dir(cfg.run.root, cfg.run.name or None)
    if state.main_process:
        write_config(state.run_dir, dump_yaml(cfg))
        # metrics of iteration i are logged at step i + 1: on resume, drop what the abandoned continuation wrote after
        resume_step = state.start_iteration + 1 if resume is not None else None
        state.logger = MetricsLogger(
            state.run_dir, report_to=cfg.run.trackers, config=flat_config(cfg), resume_step=resume_step
        )
    state.done = state.start_iteration
    return state


def flat_config(cfg: ImageTrainConfig) -> dict[str, str | float | int | bool]:
    """The config as ``{"section.key": value}`` (lists and dicts as text): hyper-parameters for W&B / Trackio."""
    out = {}
    for section, fields in asdict(cfg).items():
        items = fields.items() if isinstance(fields, dict) else [("", fields)]
        for key, value in items:
            name = f"{section}.{key}" if key else section
            out[name] = value if isinstance(value, (str, int, float, bool)) else str(value)
    return out


def _prompts(cfg: ImageTrainConfig, adapter: ImageAdapter) -> tuple[EvalPrompts, list[str]]:
    """The evaluation prompts and train.prompts_file's prompts, each checked against the model's tokenizer."""
    if cfg.model.kind != "shapeworld" and not (cfg.train.prompts_file and cfg.eval.prompts_file):
        raise ConfigError(
            f"model.kind={cfg.model.kind!r} needs train.prompts_file and eval.prompts_file (ShapeWorld's prompt "
            "generator and grader fit only the ShapeWorld model)."
        )
    graded = cfg.model.kind == "shapeworld"  # strict accuracy by the grader, also on a prompts file's prompts
    if graded and not cfg.eval.prompts_file:
        held_out, prefixes = shapeworld_eval_set(
            heldout_per_family=cfg.eval.prompts_per_family, train_per_family=cfg.eval.train_prompts_per_family
        )
    else:
        held_out = read_prompts_file(cfg.eval.prompts_file)
        prefixes = [""] * len(held_out) if graded else None
        adapter.encode(held_out)  # fail now, naming any word the model's tokenizer does not know
    user_prompts = read_prompts_file(cfg.train.prompts_file) if cfg.train.prompts_file else []
    if user_prompts:
        adapter.encode(user_prompts)  # fail now, naming any word the model's tokenizer does not know
    return EvalPrompts(held_out, prefixes, graded), user_prompts


def _restore(state: RunState, resume: Path) -> None:
    """The latest checkpoint of the run folder `resume` into `state` (sharded: each rank keeps its shards)."""
    ckpt_path = latest_checkpoint(resume)
    if ckpt_path is None:
        raise FileNotFoundError(f"No checkpoint in {resume}/checkpoints to resume from.")
    ckpt = load_checkpoint(ckpt_path)
    adapter, optimizer, ema = state.adapter, state.optimizer, state.ema
    if state.sharded:  # the checkpoint holds full tensors (every rank read them): keep this rank's shards
        adapter.load_trained_state(sharding.shard_state(ckpt["model"], like=adapter.transformer.state_dict()))
        optimizer.load_state_dict(sharding.shard_optimizer_state(ckpt["optimizer"], adapter.trainable_parameters()))
    else:
        adapter.load_trained_state(ckpt["model"])
        optimizer.load_state_dict(ckpt["optimizer"])
    if ema is not None and ckpt["ema"] is not None:
        ema.load_state_dict(sharding.shard_state(ckpt["ema"], like=ema.state_dict()) if state.sharded else ckpt["ema"])
    if state.old is not None and ckpt["old_policy"] is not None:
        state.old.load_state_dict(ckpt["old_policy"])
    if ckpt["rng"] is not None:
        restore_rng_state(ckpt["rng"])
    trainer = ckpt["trainer"]
    state.start_iteration = int(trainer["iteration"])
    state.nfe_total = float(trainer["nfe_total"])
    if trainer.get("base_strict") is not None:
        state.base = EvalSummary(
            trainer["base_strict"], trainer["base_score"], int(trainer["base_count"]), trainer.get("base_outcomes")
        )
    state.run_dir = Path(resume)
