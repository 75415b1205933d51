"""The schema of an image GRPO run (`flowrl train`): nested dataclasses, one documented field each.

Defaults are the ShapeWorld CPU recipe (`flowrl/presets/shapes_flow_grpo.yaml` repeats them with the reasons).
Method hyper-parameters beyond the shared ones go in `method.kwargs` and are passed to the method's plan builder
(`flowrl.flow.methods`), whose defaults quote the papers.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from flowrl.config import OptimConfig as SharedOptimConfig


@dataclass
class ModelConfig:
    path: str = "assets/shapeworld"
    """Local model folder (ShapeWorld layout: transformer/, text_encoder/, tokenizer/). Relative paths are resolved
    against the current directory, then against the flowrl repository."""
    lora_rank: int = 0
    """0 = full fine-tuning with a frozen reference copy; > 0 = LoRA of this rank (reference = adapter disabled)."""
    lora_alpha: float = 16.0
    """LoRA scale numerator (scale = alpha / rank)."""
    kind: Literal["shapeworld", "sd3", "flux"] = "shapeworld"
    """Model family: the shipped pixel-space ShapeWorld model, a StableDiffusion3Pipeline folder (SD3, SD3.5-M/L) or
    a FluxPipeline folder (FLUX.1-dev)."""
    resolution: int = 0
    """Rollout / training resolution in pixels (sd3, flux); 0 = the adapter's default (512). ShapeWorld is fixed."""
    mixed_precision: Literal["no", "bf16"] = "no"
    """bf16 autocast of the transformer (sd3, flux; GPU); kernels and log-probs stay fp32."""
    gradient_checkpointing: bool = False
    """Recompute transformer activations in the backward pass (sd3, flux): less memory, ~30% more compute."""
    max_sequence_length: int = 0
    """T5 tokens per prompt (sd3, flux); 0 = the adapter's default (SD3: 256, diffusers; FLUX: 512). flow_grpo's
    train_sd3.py encodes at 128: SD3 attends to the padding, so this changes the conditioning and the cost."""
    detach_uncond: bool = False
    """Train through the conditional half of the CFG velocity only, the unconditional half detached (flow_grpo
    train_sd3.py compute_log_prob); sd3 and flux with guidance_scale > 1."""
    embedded_guidance: float = 3.5
    """FLUX.1-dev guidance embedding value (MixGRPO, DanceGRPO: 3.5); ignored by other kinds."""

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise ValueError(f"model.lora_rank must be >= 0 (0 = full fine-tuning), got {self.lora_rank}.")
        if self.max_sequence_length < 0:
            raise ValueError(
                f"model.max_sequence_length must be >= 0 (0 = the adapter's default), got {self.max_sequence_length}."
            )


@dataclass
class MethodConfig:
    name: str = "flow_grpo"
    """Image method (a plan builder in flowrl.flow.methods.METHODS): flow_grpo, flow_grpo_fast, dance_grpo, mixgrpo,
    mixgrpo_flash, tempflow_grpo, g2rpo, branch_grpo, tree_grpo, dynamic_treerpo, diffusion_nft, awm."""
    grid: Literal["sd3", "linear"] | None = None
    """Time grid of rollouts and evaluation (flowrl.flow.grid.GRIDS): "sd3" = diffusers' SD3 scheduler
    (``shift(linspace(1, sigma_min, T))`` + 0, what flow_grpo samples SD3.5-M on), "linear" = shifted
    ``linspace(1, 0, T + 1)`` (FluxPipeline, the FastVideo FLUX recipes); None = the model's: "sd3" for sd3 and
    shapeworld, "linear" for flux."""
    guard: bool = False
    """Apply GRPO-Guard (RatioNorm + 1/Delta step weights) on top of the method."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the method's plan builder (e.g. num_inference_steps, noise_level, group_size); unset
    ones keep the paper's defaults."""
    clip_range: float | None = None
    """PPO clip epsilon; None = the method's published value (Flow-GRPO 1e-4, GRPO-Guard 2e-6, ...)."""
    kl_beta: float | None = None
    """Weight of the closed-form Gaussian KL to the reference (forward-process methods: of the velocity MSE to the
    reference); None = the method's published value."""
    kl_form: Literal["exact", "flow_grpo"] = "exact"
    """Divisor of the Gaussian KL (flowrl.flow.loss.kl_std): "exact" = the step's std ``g sqrt(Delta)`` (the true KL),
    "flow_grpo" = flow_grpo train_sd3.py's ``std_dev_t = g`` without sqrt(Delta), i.e. Delta times the exact KL
    (3.7-25x weaker over the 9 trained steps of the SD3 10-step grid); the sd35m Flow-GRPO presets set it, so their
    beta is the paper's. TempFlow-GRPO divides by the exact step variance (its beta is for "exact")."""
    cps_logprob: Literal["gaussian", "flow_grpo"] = "gaussian"
    """How CPS steps are scored (flowrl.flow.loss.cps_flow_grpo_logprob): "gaussian" = the full Gaussian log-density
    as every kernel; "flow_grpo" = flow_grpo's ``-mean_d (x_next - mean)^2``, whose log-ratios are 2 std^2 times
    smaller: the scale its Flow-GRPO-Fast clip 1e-5 was tuned on. Needs method.logprob_pool = 1."""
    adv_clip: float | None = None
    """Clamp |advantage| to this; None = the method's published value (5 everywhere)."""
    adv_scale: Literal["group", "batch", "none"] | None = None
    """What divides a group's centred rewards: "group" its std (GRPO), "batch" the std of every reward of the
    iteration over all processes (DiffusionNFT's and flow_grpo's global std; = train.advantage_std=global), "none"
    nothing (Dr. GRPO: groups whose samples barely differ then barely move the policy); None = the method's value
    ("group"; "batch" for diffusion_nft and awm)."""
    logprob_pool: int = 1
    """Credit rewards only to the k x k block means of each step's noise (flowrl's addition, not from a paper:
    flowrl.flow.kernels.pooled_gaussian_logprob): the policy-gradient noise shrinks with the credited dimensions;
    1 = every latent element, as in the papers. Must divide the latent height and width."""
    sft_weight: float = 0.0
    """Dynamic-TreeRPO LayerTuning-RL (our reading, flowrl/train/layer_tuning.py): weight lambda_0 of the
    flow-matching term on rendered ShapeWorld targets, scaled per prompt by (1 - its mean reward); 0 = off."""
    sft_targets: int = 4
    """Rendered targets per prompt for the LayerTuning-RL term."""
    adaptive_clip_scale: float = 0.0
    """Dynamic-TreeRPO adaptive clip bounds (our reading): eps_i = clip_range * (1 + scale * tanh|A_i|); 0 = off."""

    def __post_init__(self) -> None:
        if self.cps_logprob == "flow_grpo" and self.logprob_pool != 1:
            raise ValueError(
                f"method.cps_logprob=flow_grpo scores every latent element; method.logprob_pool={self.logprob_pool} "
                "pools them. Set method.logprob_pool=1, or keep method.cps_logprob=gaussian."
            )
        if self.logprob_pool < 1:
            raise ValueError(
                f"method.logprob_pool must be >= 1 (1 = no pooling), got {self.logprob_pool}; use a block size that "
                "divides the latent height and width (1, 2, 4, 8 or 16 on the 32 px ShapeWorld model)."
            )


@dataclass
class RewardConfig:
    names: list[str] = field(default_factory=lambda: ["shapes"])
    """Reward functions (rewards.REWARDS names or 'package.module:factory')."""
    weights: list[float] = field(default_factory=lambda: [1.0])
    """One weight per reward."""
    aggregation: Literal["sum_then_normalize", "normalize_then_sum"] = "sum_then_normalize"
    """Weighted sum then advantage (Flow-GRPO), or an advantage per reward then the weighted sum (MixGRPO, G2RPO):
    the per-reward advantages unclipped, their sum clamped to +-method.adv_clip (MixGRPO `advantage_aggr`)."""

    device: str = ""
    """Where the model-based rewards (rewards.MODEL_REWARDS: pickscore, hpsv2, image_reward, ...) run, e.g. "cuda:0";
    "" = the trainer's device (each process's own GPU). Programmatic rewards and user factories run where they do."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype of the model-based rewards (bfloat16 halves their memory on GPU; scores move by ~1e-2)."""
    paths: dict[str, str] = field(default_factory=dict)
    """Checkpoint path per reward name, e.g. {hpsv2: /ckpt/HPS_v2.1_compressed.pt} (model-based rewards and user
    factories, passed as ``path=``); unset ones use $FLOWRL_REWARDS_HOME (docs/rewards.md)."""
    args: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Other constructor keyword arguments per reward name, e.g. {geneval: {detector: mypkg.det:make,
    metadata_file: [prompts/geneval_train.jsonl, prompts/geneval_test.jsonl]}} (docs/geneval.md); they win over
    reward.device / dtype / paths."""

    def __post_init__(self) -> None:
        if not self.names or len(self.names) != len(self.weights):
            raise ValueError(
                f"reward.names ({len(self.names)}) and reward.weights ({len(self.weights)}) must be "
                "non-empty and of the same length: one weight per reward."
            )
        unknown = sorted(set(self.paths) - set(self.names))
        if unknown:
            raise ValueError(
                f"reward.paths names {unknown}, which are not in reward.names {self.names}: a path belongs to one of "
                "the configured rewards (key = its name)."
            )
        unknown = sorted(set(self.args) - set(self.names))
        if unknown:
            raise ValueError(
                f"reward.args names {unknown}, which are not in reward.names {self.names}: keyword arguments belong "
                "to one of the configured rewards (key = its name)."
            )


@dataclass
class OptimConfig(SharedOptimConfig):
    name: Literal["adamw", "sgd"] = "adamw"
    """adamw (every reference repo), or sgd with momentum betas[0]: its step follows the gradient's size per
    weight, where AdamW moves every weight by about lr even when its gradient is mostly noise."""
    schedule: Literal["constant", "linear", "cosine"] = "constant"
    """Learning rate over the run's iterations (flowrl.runtime.optim.scheduled_lr): constant, or lr until
    decay_start x train.iterations, then down to final_lr_ratio x lr at the last iteration (linear or cosine). Set at
    every iteration, so a resumed run follows the config's optim.lr and schedule, not the checkpoint's."""
    decay_start: float = 0.0
    """Fraction of train.iterations after which the schedule decays (0: from the first iteration)."""
    final_lr_ratio: float = 0.0
    """The schedule's last learning rate as a fraction of lr."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.decay_start < 1.0 or not 0.0 <= self.final_lr_ratio <= 1.0:
            raise ValueError(
                f"optim.decay_start must be in [0, 1) and optim.final_lr_ratio in [0, 1] (fractions of the run and of "
                f"optim.lr); got {self.decay_start} and {self.final_lr_ratio}."
            )


@dataclass
class TrainConfig:
    iterations: int = 40
    """Rollout-then-update iterations."""
    prompts_per_iteration: int = 8
    """Prompts (GRPO groups) per iteration, over all processes; must be divisible by the number of processes."""
    families: dict[str, float] = field(
        default_factory=lambda: {"single": 1.0, "two_objects": 1.0, "counting": 1.0, "colors": 1.0, "position": 1.0}
    )
    """Training prompt families and their sampling weights (ShapeWorld train split)."""
    prompts_file: str = ""
    """Train on the prompts of this text file (one per line, '#' comments) instead of ShapeWorld's generator; each
    iteration draws prompts_per_iteration of them with replacement. '' = the stratified ShapeWorld train split."""
    inner_epochs: int = 2
    """Passes over each iteration's rollouts (PPO epochs); ratios move off 1 from the second pass on."""
    steps_per_epoch: int = 1
    """Optimizer steps per pass; each takes prompts_per_iteration / steps_per_epoch prompts' edges."""
    rollout_batch: int = 8
    """Most prompts rolled out together: one batched tree (each step one forward over all their states, CFG rows
    included) and one reward call; 8 = all of the ShapeWorld recipe's prompts. Each prompt keeps its own noise
    generators, so the samples do not depend on it (up to batched-forward numerics); memory grows with it (flow_grpo
    samples 9 images per GPU per call at 512 px on SD3.5-M; the sd35m presets use 2, the FLUX ones 1)."""
    step_split: Literal["prompts", "denoising_step"] = "prompts"
    """How an inner epoch is cut into optimizer steps: "prompts" = steps_per_epoch steps over shares of the prompts;
    "denoising_step" = one step per denoising step, over every prompt's edges at that step (G2RPO: one optimizer
    step per probe step, 8 per iteration). Step-likelihood methods only; needs steps_per_epoch = 1."""
    micro_batch_edges: int = 256
    """Most trained edges per forward/backward (edges sharing a parent stay together); for forward-process methods
    (diffusion_nft) the most noised rows per forward."""
    advantage_std: Literal["group", "global"] = "group"
    """What divides a prompt's centred rewards: "group" = the method's scale (its group's std for GRPO), "global" =
    the std of every reward of the iteration over all processes, the mean still per prompt (flow_grpo
    ``sample.global_std=True``, every official SD3.5-M config; the same as method.adv_scale=batch)."""
    unbiased_std: bool = True
    """Bessel-corrected advantage stds (torch, DanceGRPO); false = numpy's biased std (flow_grpo and TempFlow stat
    trackers: 0.913x the unbiased one at 6 samples)."""
    ema_decay: float = 0.0
    """EMA of the trained weights used for evaluation (0 = off; Flow-GRPO uses EMA on SD3.5)."""
    seed: int = 0
    """Seed of prompts, initial noise and SDE noise (each derived from (seed, iteration, prompt))."""
    threads: int = 1
    """torch CPU threads per process (0 = torch's default). One thread is fastest for small models on a shared CPU:
    two threads made a 3.6M-parameter forward 4-5x slower on the 2-core machine while other jobs ran."""
    time_limit_minutes: float = 0.0
    """Stop after the iteration that crosses this wall time (0 = no limit); evaluation and checkpoint still run."""
    max_nfe: int = 0
    """Stop after the iteration that crosses this many network evaluations, rollout + training (0 = no limit)."""
    sharding: Literal["none", "fsdp"] = "none"
    """none = every process holds the whole model and the trainer sums gradients itself (DDP); fsdp = full
    fine-tuning with the transformer's parameters, gradients and AdamW state split over the processes (torch FSDP2,
    one unit per block; flowrl/train/sharding.py, docs/scaling.md). An accelerate launch config whose
    distributed_type is FSDP (configs/accelerate/fsdp_*.yaml) sets fsdp."""

    def __post_init__(self) -> None:
        for name in (
            "iterations",
            "prompts_per_iteration",
            "inner_epochs",
            "steps_per_epoch",
            "micro_batch_edges",
            "rollout_batch",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}.")
        if self.prompts_per_iteration % self.steps_per_epoch:
            raise ValueError(
                f"train.prompts_per_iteration ({self.prompts_per_iteration}) must be divisible by "
                f"train.steps_per_epoch ({self.steps_per_epoch})."
            )
        if self.step_split == "denoising_step" and self.steps_per_epoch != 1:
            raise ValueError(
                f"train.step_split=denoising_step takes one optimizer step per denoising step; "
                f"train.steps_per_epoch={self.steps_per_epoch} would split them again. Set train.steps_per_epoch=1."
            )
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"train.ema_decay must be in [0, 1), got {self.ema_decay}.")


@dataclass
class EvalConfig:
    every: int = 20
    """Evaluate every this many iterations (and always before the first and after the last)."""
    prompts_per_family: int = 20
    """Held-out (test split) prompts per family."""
    train_prompts_per_family: int = 20
    """Train-split prompts per family, graded beside the held-out ones under ``train/...`` keys (ShapeWorld only):
    a gain there is learning, a gain on held-out compositions is generalisation. 0 = held-out only."""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2, 3])
    """One sample per prompt and seed; the same prompts and seeds at every evaluation (paired comparison)."""
    num_inference_steps: int = 10
    """Euler ODE steps."""
    guidance_scale: float = 4.0
    """CFG scale."""
    grid_prompts: int = 10
    """Prompts shown in the sample grid of each evaluation."""
    at_start: bool = True
    """Evaluate the base model before training (the paired baseline of the final summary line)."""
    cache_base: bool = True
    """Reuse the base evaluation of an earlier run with the same model files and evaluation settings (kept under
    ``<run.root>/.base_eval_cache/``, `flowrl.train.eval_cache`); the base's sample grid is then not redrawn."""
    prompts_file: str = ""
    """Evaluation prompts (one per line); '' = ShapeWorld's held-out and train-split sets. ShapeWorld prompts (from
    either) are graded by its grader (strict accuracy per family); for other models the score is the mean of the
    configured rewards."""
    resolution: int = 0
    """Evaluation resolution in pixels (sd3, flux); 0 = the training resolution."""


@dataclass
class RunConfig:
    root: str = "runs"
    """Folder under which run folders are created."""
    name: str = ""
    """Run folder name ('' = method name + timestamp)."""
    checkpoint_every: int = 5
    """Write a checkpoint every this many iterations (and at the end)."""
    keep_last: int = 2
    """Checkpoints kept."""
    report_to: list[str] = field(default_factory=lambda: ["tensorboard"])
    """Experiment trackers (accelerate's, `flowrl.runtime.trackers`): any of tensorboard (under ``<run>/tb``), wandb,
    trackio; each gets every metric and the sample grid of each evaluation. [] = metrics.jsonl only."""
    tensorboard: bool = True
    """false = leave tensorboard out of report_to (the earlier switch, kept for existing configs)."""

    def __post_init__(self) -> None:
        from flowrl.runtime.trackers import TRACKERS  # no model library: the CLI's --help stays fast

        unknown = [n for n in self.report_to if n not in TRACKERS]
        if unknown:
            raise ValueError(f"run.report_to names unknown tracker(s) {unknown}; valid: {list(TRACKERS)}.")

    @property
    def trackers(self) -> list[str]:
        """`report_to`, without tensorboard when `tensorboard` is false."""
        return [n for n in self.report_to if self.tensorboard or n != "tensorboard"]


@dataclass
class ImageTrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """The model to fine-tune."""
    method: MethodConfig = field(default_factory=MethodConfig)
    """The rollout plan and credit assignment (one of the published image methods)."""
    guidance_scale: float = 4.0
    """CFG scale during rollouts and training (the policy is the guided velocity)."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward functions and their aggregation."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Loop sizes and seeds."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out evaluation."""
    run: RunConfig = field(default_factory=RunConfig)
    """Run folder, checkpoints and logging."""

    def __post_init__(self) -> None:
        if self.train.sharding == "fsdp" and self.model.lora_rank > 0:
            raise ValueError(
                f"train.sharding=fsdp shards full fine-tuning, but model.lora_rank={self.model.lora_rank}: LoRA "
                "trains few weights and the frozen base fits every rank (docs/scaling.md), so train LoRA with "
                "train.sharding=none, or set model.lora_rank=0 for sharded full fine-tuning."
            )
        if self.train.step_split == "denoising_step" and self.method.sft_weight > 0:
            raise ValueError(
                "train.step_split=denoising_step runs one optimizer step per denoising step; the LayerTuning-RL term "
                "(method.sft_weight > 0) is one term per optimizer step and would be counted T times. Set "
                "method.sft_weight=0 or train.step_split=prompts."
            )
        if self.train.sharding == "fsdp" and self.method.sft_weight > 0:
            raise ValueError(
                "train.sharding=fsdp cannot run the LayerTuning-RL term (method.sft_weight > 0): it runs one forward "
                "per prompt whose weight is not 0, a count that differs between ranks, and FSDP needs the same "
                "forward passes on every rank. Set method.sft_weight=0 or train.sharding=none."
            )
