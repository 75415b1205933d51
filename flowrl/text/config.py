"""The schema of a text GRPO run (`flowrl train-text`): nested dataclasses, one documented field each.

Defaults are the CPU recipe for the shipped arithmetic model (`assets/arith_lm`): 4 prompts x 8 completions per
step, lr 1e-5, DAPO loss without KL (text_proto.md measured this setting with TRL). `flowrl/text/presets/*.yaml`
switch the loss family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal


@dataclass
class ModelConfig:
    path: str = "assets/arith_lm"
    """Local folder of a transformers causal LM and its tokenizer. Relative paths are resolved against the current
    directory, then against the flowrl repository."""
    dtype: Literal["float32", "bfloat16", "float16"] = "float32"
    """Weights dtype (log-probs are always computed in fp32)."""
    lora_rank: int = 0
    """0 = full fine-tuning with a frozen reference copy (only when loss.kl_beta > 0); > 0 = LoRA of this rank on all
    linear layers (reference = adapter disabled)."""
    lora_alpha: float = 16.0
    """LoRA scale numerator (scale = alpha / rank)."""

    def __post_init__(self) -> None:
        if self.lora_rank < 0:
            raise ValueError(f"model.lora_rank must be >= 0 (0 = full fine-tuning), got {self.lora_rank}.")


@dataclass
class TaskConfig:
    train_file: str = "assets/arith_lm/train.jsonl"
    """JSONL of training rows, each with a 'prompt' and an 'answer' (extra columns reach the rewards' metadata)."""
    test_file: str = "assets/arith_lm/test.jsonl"
    """JSONL of held-out rows for the greedy exact-match evaluation ('' = no evaluation)."""
    system: str = ""
    """System message put before the prompt when the tokenizer has a chat template."""
    test_size: int = 1000
    """Held-out rows evaluated (the first ones of test_file)."""


@dataclass
class RewardConfig:
    names: list[str] = field(default_factory=lambda: ["exact_match_eos"])
    """Reward functions: exact_match_eos (the arithmetic task's strict match), a rewards.REWARDS name (exact_match,
    format, length, ...), or 'package.module:factory'."""
    weights: list[float] = field(default_factory=lambda: [1.0])
    """One weight per reward; the trained reward is the weighted sum."""

    def __post_init__(self) -> None:
        if not self.names or len(self.names) != len(self.weights):
            raise ValueError(
                f"reward.names ({len(self.names)}) and reward.weights ({len(self.weights)}) must be non-empty and "
                "of the same length: one weight per reward."
            )


@dataclass
class GenerationConfig:
    group_size: int = 8
    """Completions sampled per prompt (the GRPO group, TRL num_generations)."""
    max_new_tokens: int = 8
    """Most generated tokens per completion (TRL max_completion_length)."""
    max_prompt_length: int = 48
    """Longest prompt in tokens (chat template included); a longer one is an error naming it."""
    temperature: float = 1.0
    """Sampling temperature (log-probs are computed at the same temperature)."""
    top_k: int = 0
    """Top-k sampling (0 = off)."""
    top_p: float = 1.0
    """Nucleus sampling (1 = off)."""
    stop_strings: list[str] = field(default_factory=list)
    """Strings that end a completion like EOS (kept in the completion)."""
    prefill_once: bool = True
    """Prefill each prompt once and share its KV cache with the group's samples (same distribution, less work)."""

    def __post_init__(self) -> None:
        if self.group_size < 2:
            raise ValueError(f"generation.group_size must be >= 2 (a group needs a baseline), got {self.group_size}.")
        if self.max_new_tokens < 1 or self.max_prompt_length < 1:
            raise ValueError("generation.max_new_tokens and generation.max_prompt_length must be >= 1.")
        if self.temperature <= 0:
            raise ValueError(f"generation.temperature must be > 0, got {self.temperature}.")


@dataclass
class LossConfig:
    variant: str = "dapo"
    """GRPO-family loss (flowrl.grpo.VARIANTS): grpo, dr_grpo, dapo, bnpo, gspo, cispo, reinforce; or
    'package.module:factory'."""
    kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the variant factory (eps_low, eps_high, scale, ...); unset ones keep its defaults.
    dr_grpo's max_len defaults to generation.max_new_tokens."""
    kl_beta: float = 0.0
    """Weight of the per-token KL to the reference model (0 = no reference model is kept, as TRL's default)."""
    kl_estimator: Literal["k1", "k2", "k3"] = "k3"
    """Per-token KL estimator (k3 = GRPO's low-variance KL)."""
    mask_truncated: bool = False
    """Drop completions that hit max_new_tokens without EOS from the loss (DAPO overlong filtering)."""
    top_entropy_quantile: float = 1.0
    """Train only this top fraction of tokens by entropy (1 = all; the 80/20 paper uses 0.2)."""


@dataclass
class OptimConfig:
    lr: float = 1e-5
    """AdamW learning rate (constant). 1e-4 already hurts the arithmetic model with 4 prompts per step."""
    weight_decay: float = 0.0
    """AdamW weight decay."""
    betas: tuple[float, float] = (0.9, 0.999)
    """AdamW betas."""
    grad_clip: float = 1.0
    """Clip the global gradient norm to this (0 = off)."""


@dataclass
class TrainConfig:
    steps: int = 100000
    """Optimizer steps (rollout + update); the default run stops on time_limit_minutes first."""
    prompts_per_step: int = 4
    """Prompts (groups) per step over all processes; must be divisible by the number of processes."""
    micro_batch_size: int = 64
    """Most completions per forward/backward."""
    inner_epochs: int = 1
    """Updates per rollout (TRL num_iterations); above 1 the old log-probs are recomputed and the clip acts."""
    logprob_chunk: int = 64
    """Completion positions per chunk of the fp32 log-softmax (bounds memory for long completions)."""
    skip_zero_variance: bool = True
    """Skip the forward/backward of groups whose rewards are all equal (zero advantage: no signal). With
    loss.kl_beta > 0 they are kept, because their KL term still has a gradient."""
    seed: int = 0
    """Seed of the prompt order and of sampling (each step's generator derives from (seed, step))."""
    time_limit_minutes: float = 14.0
    """Stop after the step that crosses this much training time, evaluation excluded (0 = no limit)."""
    threads: int = 1
    """torch CPU threads (`flowrl train-text` sets them; 0 = torch's default); one is fastest for tiny models."""

    def __post_init__(self) -> None:
        for name in ("steps", "prompts_per_step", "micro_batch_size", "inner_epochs", "logprob_chunk"):
            if getattr(self, name) < 1:
                raise ValueError(f"train.{name} must be >= 1, got {getattr(self, name)}.")


@dataclass
class EvalConfig:
    every_minutes: float = 2.0
    """Greedy held-out evaluation every this many minutes of training time (and before and after the run)."""
    every_steps: int = 0
    """Also evaluate every this many steps (0 = off)."""
    max_new_tokens: int = 8
    """Greedy decoding budget."""


@dataclass
class RunConfig:
    root: str = "runs"
    """Folder under which run folders are created."""
    name: str = ""
    """Run folder name ('' = loss variant + timestamp)."""
    checkpoint_every: int = 500
    """Write a checkpoint every this many steps (and at the end); metrics are flushed at the same steps."""
    keep_last: int = 2
    """Checkpoints kept."""
    tensorboard: bool = True
    """Also write TensorBoard scalars."""
    log_every: int = 10
    """Write metrics every this many steps (averaged over them)."""


@dataclass
class TextTrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    """The causal LM to fine-tune."""
    task: TaskConfig = field(default_factory=TaskConfig)
    """Training and held-out prompts."""
    reward: RewardConfig = field(default_factory=RewardConfig)
    """Reward functions."""
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    """Sampling of the groups."""
    loss: LossConfig = field(default_factory=LossConfig)
    """GRPO-family loss, KL and token selection."""
    optim: OptimConfig = field(default_factory=OptimConfig)
    """Optimizer."""
    train: TrainConfig = field(default_factory=TrainConfig)
    """Loop sizes, seeds and time limit."""
    eval: EvalConfig = field(default_factory=EvalConfig)
    """Held-out evaluation."""
    run: RunConfig = field(default_factory=RunConfig)
    """Run folder, checkpoints and logging."""
