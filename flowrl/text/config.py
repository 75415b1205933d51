"""The schema of a text GRPO run (`flowrl train-text`): nested dataclasses, one documented field each.

Defaults are the CPU recipe for the shipped arithmetic model (`assets/arith_lm`): 4 prompts x 8 completions per
step, lr 1e-5, DAPO loss without KL (text_proto.md measured this setting with TRL). `flowrl/text/presets/*.yaml`
switch the loss family.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from flowrl.config import OptimConfig as SharedOptimConfig


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
    rubric: list[str] = field(default_factory=list)
    """Items of the 'rubric' reward (RGR-GRPO; flowrl/text/rubric.py), each 'kind[:K][@weight]' with kind in result,
    step, steps, length, eos; e.g. ['result@2', 'steps', 'eos']. Used only when 'rubric' is in reward.names."""

    def __post_init__(self) -> None:
        if not self.names or len(self.names) != len(self.weights):
            raise ValueError(
                f"reward.names ({len(self.names)}) and reward.weights ({len(self.weights)}) must be non-empty and "
                "of the same length: one weight per reward."
            )
        if ("rubric" in self.names) != bool(self.rubric):
            raise ValueError(
                "reward.rubric and the 'rubric' reward go together: name 'rubric' in reward.names and give its items "
                f"in reward.rubric (got names {self.names}, rubric {self.rubric})."
            )
        if self.rubric:
            from flowrl.text.rubric import parse_rubric

            parse_rubric(self.rubric)  # an item that does not parse names reward.rubric[i] and the valid kinds


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
class OptimConfig(SharedOptimConfig):
    lr: float = 1e-5
    """AdamW learning rate (constant). 1e-4 already hurts the arithmetic model with 4 prompts per step."""


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
    skip_zero_advantage: bool = True
    """Skip the forward/backward of completions whose advantage is 0 at every token (no policy-gradient signal: e.g.
    the groups whose rewards are all equal under GRPO, but not under NGRPO / DCPO / SPO / RiskPO, which give such
    groups an advantage). With a regulariser (loss.kl_beta > 0 or hooks.kl_beta_end > 0) every row is kept, because
    its KL term still has a gradient; a whole-loss plugin (hooks.whole_loss) forwards the groups with both outcomes."""
    seed: int = 0
    """Seed of the prompt order and of sampling (each step's generator derives from (seed, step))."""
    time_limit_minutes: float = 14.0
    """Stop after the step that crosses this much training time, evaluation excluded (0 = no limit)."""
    max_generated_tokens: int = 0
    """Stop after the step that crosses this many generated tokens in all (rollouts, plus ReST-GRPO's assembly
    sampling; 0 = no limit): runs compared at an equal generated-token budget."""
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
class HooksConfig:
    """The trainer's extension points (flowrl/text/hooks.py), where the LLM variants of docs/papers_llm.md plug in.
    '' = off. Each ``*_kwargs`` holds the hook's keyword arguments (unset ones keep its defaults)."""

    shaping: str = ""
    """Reward shaping between scoring and advantages (hooks.SHAPERS): grpo_lambda, unlikely, think_short, posterior,
    tp_grpo, multi_objective, dynamic_weights. The shapers that need a verifier read reward.names[0] as 0/1."""
    shaping_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the shaper (e.g. {top_fraction: 0.2}; multi_objective needs {weights: [...]})."""
    token_weights: str = ""
    """Per-token loss weights (hooks.TOKEN_WEIGHTS): gtpo (conflict tokens + entropy-shaped advantages), tw_grpo,
    segment_po (Monte-Carlo segment advantages on the cutpoint tokens)."""
    token_weights_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the token-weight hook."""
    token_mask: str = ""
    """Token down-sampling (hooks.TOKEN_MASKS): d3s (top |A| x entropy, keep ratio ramping to 1)."""
    token_mask_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the token-mask hook (d3s: start, ramp_steps)."""
    regularizer: str = "reference_kl"
    """Per-token term weighted by loss.kl_beta (hooks.REGULARIZERS): reference_kl (loss.kl_estimator to the reference
    model, or to the soup of hooks.reference_soup), teacher_kl (KDRL, needs hooks.teacher_path), llds."""
    teacher_path: str = ""
    """KDRL teacher: a local causal LM folder with the policy's tokenizer."""
    reference_soup: list[str] = field(default_factory=list)
    """SALSA: the reference model is the uniform weight soup of these model folders (>= 2, same architecture)."""
    kl_beta_end: float = 0.0
    """Regulariser coefficient schedule: loss.kl_beta ramps linearly to this over kl_ramp_steps (GRPO-D, KDRL)."""
    kl_ramp_steps: int = 0
    """Steps of the coefficient ramp (0 = constant loss.kl_beta)."""
    whole_loss: str = ""
    """A loss that replaces advantages + policy_loss (hooks.WHOLE_LOSSES): disco, drpo. Reads reward.names[0] as 0/1;
    needs train.micro_batch_size to be a multiple of generation.group_size (whole groups per micro-batch)."""
    whole_loss_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the whole-loss plugin (tau, delta, beta; drpo: lam)."""
    group_ids: Literal["batch", "prompt"] = "batch"
    """Group keys handed to the advantage function: the group's position in the step, or the prompt's row index in
    the training file, stable across steps (the per-prompt trackers of DCPO and SPO need it)."""
    hints: str = ""
    """A hinted second rollout for groups whose every completion failed (hooks.HINTS): scaf_grpo (hint kept in the
    prompt) or guide (trained as if the hint were absent, with the hinted sampler as the ratio's denominator)."""
    hints_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the hints (exemption_steps, guided_samples, hint: a hooks.HINT_TEXTS name, tiers)."""
    group_sizes: Literal["fixed", "knapsack", "gvm"] = "fixed"
    """Completions per prompt: generation.group_size each, or the same budget split by a planner: Knapsack RL (each
    prompt's last success rate, reward.names[0]) or GVM-RAFT (a pre-sampling pass each step)."""
    group_sizes_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the planner (knapsack: n_min, n_max, prior; gvm: n0, alpha, beta, fallback)."""
    prompt_sampler: str = ""
    """Which training rows a step rolls out (flowrl/text/prompt_samplers.py): '' = the next slice of a per-epoch
    permutation; vas (MMR1 Variance-Aware Sampling) or vade (VADE's Thompson sampler), from reward.names[0]."""
    prompt_sampler_kwargs: dict[str, Any] = field(default_factory=dict)
    """Keyword arguments of the sampler (vas: alpha, beta, lam, prior; vade: a0, b0, gamma_fast, gamma_slow)."""

    def __post_init__(self) -> None:
        from flowrl.text.hooks import HINTS, REGULARIZERS, SHAPERS, TOKEN_MASKS, TOKEN_WEIGHTS, WHOLE_LOSSES
        from flowrl.text.prompt_samplers import PROMPT_SAMPLERS

        for name, table in (
            ("prompt_sampler", PROMPT_SAMPLERS),
            ("shaping", SHAPERS),
            ("hints", HINTS),
            ("token_weights", TOKEN_WEIGHTS),
            ("token_mask", TOKEN_MASKS),
            ("whole_loss", WHOLE_LOSSES),
        ):
            value = getattr(self, name)
            if value and value not in table:
                raise ValueError(f"Unknown hooks.{name} {value!r}. Valid: {sorted(table)}, or '' (off).")
        if self.regularizer not in REGULARIZERS:
            raise ValueError(f"Unknown hooks.regularizer {self.regularizer!r}. Valid: {sorted(REGULARIZERS)}.")
        if self.kl_ramp_steps < 0:
            raise ValueError(f"hooks.kl_ramp_steps must be >= 0 (0 = constant), got {self.kl_ramp_steps}.")
        if self.reference_soup and len(self.reference_soup) < 2:
            raise ValueError("hooks.reference_soup needs at least two model folders (SALSA soups two SFT models).")
        if self.regularizer == "teacher_kl" and not self.teacher_path:
            raise ValueError("hooks.regularizer=teacher_kl needs hooks.teacher_path (a model folder of the teacher).")


@dataclass
class RolloutConfig:
    """How a group's completions are generated (flowrl/text/latr.py; paper values in docs/papers_llm.md)."""

    kind: Literal["sample", "latr", "soft"] = "sample"
    """sample: G independent samples per prompt (`generate`); latr: LATR lookahead tree rollouts (branch at uncertain
    tokens, prune branches whose lookahead stays close to their parent), the rest of the group sampled; soft:
    SofT-GRPO, soft_think_steps Gumbel-Softmax soft tokens then a discrete answer (flowrl/text/soft_rollout.py)."""
    soft_think_steps: int = 4
    """SofT-GRPO: soft tokens before the discrete answer [ours; the paper thinks until </think>]."""
    soft_tau: float = 0.1
    """SofT-GRPO Gumbel-Softmax temperature tau (official training script 0.1)."""
    soft_scale: float = 1.0
    """SofT-GRPO Gumbel noise scale beta (noise_factor 1)."""
    soft_top_k: int = 5
    """SofT-GRPO top-k of the soft mixture and of the answer tokens (training script 5)."""
    soft_top_p: float = 0.95
    """SofT-GRPO top-p of the soft mixture and of the answer tokens (0.95)."""
    latr_max_branch_per_token: int = 2
    """LATR k: candidates considered per step (paper 2)."""
    latr_prob_abs: float = 0.25
    """LATR tau_abs: a candidate forks only if its probability exceeds this (paper 0.25)."""
    latr_prob_rel: float = 0.15
    """LATR tau_rel: ... and if the top probability exceeds it by less than this (paper 0.15)."""
    latr_edit_dist: float = 0.4
    """LATR tau_ed: prune a branch whose normalised edit distance to its parent over a lookahead is below it (0.4)."""
    latr_lookahead: list[int] = field(default_factory=lambda: [20, 30, 50])
    """LATR lookahead lengths in tokens at which a branch is compared with its parent (paper [20, 30, 50] for
    1,024-token responses)."""
    latr_return_threshold: float = 0.98
    """LATR rho_0: the tree returns once this fraction of its branches exist (paper 0.98)."""
    latr_return_decay: float = 0.05
    """LATR rho_decay: the threshold falls linearly by this over max_new_tokens (paper 0.05)."""
    latr_mix_schedule: list[list[float]] = field(
        default_factory=lambda: [[0, 1.0], [10, 0.75], [20, 0.5], [80, 0.25], [200, 0.0]]
    )
    """[training step, LATR share of each group] pairs: from each step on, that share of a group comes from the tree
    and the rest is sampled (paper {0: 1, 10: 0.75, 20: 0.5, 80: 0.25, 200: 0})."""

    def __post_init__(self) -> None:
        if self.latr_max_branch_per_token < 2:
            raise ValueError(f"rollout.latr_max_branch_per_token must be >= 2, got {self.latr_max_branch_per_token}.")
        if not self.latr_mix_schedule or any(len(e) != 2 or not 0 <= e[1] <= 1 for e in self.latr_mix_schedule):
            raise ValueError(
                f"rollout.latr_mix_schedule must be a non-empty list of [step, share] pairs with 0 <= share <= 1, got "
                f"{self.latr_mix_schedule}."
            )
        if any(n < 1 for n in self.latr_lookahead):
            raise ValueError(f"rollout.latr_lookahead lengths must be >= 1 token, got {self.latr_lookahead}.")


@dataclass
class RestConfig:
    """ReST-GRPO data assembly (ReST-RL stage 1, flowrl/text/rest.py; values from THUDM/ReST-RL's README and
    experiment/process_gen_data.py, sources in docs/papers_llm.md): before training (and every `every_steps`), the
    policy samples `samples` completions per prompt of a pool; prompts with reward std < std_threshold are dropped and
    partial solutions of the solved ones are added as prompts."""

    enabled: bool = False
    """Train on the assembled set instead of the task's training rows."""
    pool_size: int = 256
    """Training rows sampled per assembly [ours; the paper samples its whole training sets]."""
    samples: int = 5
    """Completions per pool prompt (README `--n 5`)."""
    temperature: float = 0.7
    """Sampling temperature of the assembly (README 0.7)."""
    std_threshold: float = 0.05
    """sigma_0: keep a prompt iff the population std of its rewards >= this (std_accept_threshold_grpo 0.05)."""
    completion_threshold: float = 0.9
    """r_0: draw partial solutions only from a best completion with reward >= this (0.9)."""
    n_sample: int | float = 0.5
    """Partial solutions drawn per solved prompt: a ratio of its prefixes (float, README 0.5) or a count (int)."""
    alpha: float = 0.95
    """Decay of the drawing weights alpha^i over prefixes (README 0.95)."""
    delimiter: str = "="
    """Where a partial solution ends ('=' after each chain step; the code splits at code lines)."""
    every_steps: int = 0
    """Re-assemble from a fresh pool with the current policy every this many steps (0 = once, before training)
    [ours: the paper's rounds of self-training]."""

    def __post_init__(self) -> None:
        if self.pool_size < 1 or self.samples < 2:
            raise ValueError(f"rest.pool_size must be >= 1 and rest.samples >= 2 (a reward std needs two samples), "
                             f"got {self.pool_size} and {self.samples}.")  # fmt: skip
        if self.temperature <= 0 or not 0 < self.alpha < 1 or self.every_steps < 0 or not self.delimiter:
            raise ValueError("rest.temperature must be > 0, rest.alpha in (0, 1), rest.every_steps >= 0 and "
                             "rest.delimiter non-empty.")  # fmt: skip
        if isinstance(self.n_sample, float) and not 0 < self.n_sample <= 1 or self.n_sample <= 0:
            raise ValueError(f"rest.n_sample is a ratio in (0, 1] (a float) or a count >= 1 (an int), got "
                             f"{self.n_sample!r}.")  # fmt: skip


@dataclass
class SynthConfig:
    """Syn-GRPO for `flowrl train-vlm` (flowrl/vlm/synth.py): a background data server draws training-split ShapeWorld
    prompts (family chosen by the diversity reward), generates their images with a ShapeWorld pipeline, keeps those the
    grader passes strictly, asks a question about each; a step takes up to share x prompts_per_step of those rows
    without waiting, in place of its last questions."""

    share: float = 0.0
    """Share of each step's questions taken from the server (0 = off)."""
    pipeline: str = "assets/shapeworld"
    """The image source: a ShapeWorld pipeline folder (a trained run's final/ or the shipped base), or 'renderer'
    (the ShapeWorld renderer's exact scenes, a control)."""
    num_inference_steps: int = 10
    """Sampling steps of the pipeline."""
    queue_size: int = 64
    """Most rows waiting in the server's queue (the worker waits when it is full)."""
    batch: int = 8
    """Prompts the worker generates at once."""
    tau: float = 0.1
    """Softmax temperature of the family guidance by the diversity reward [?]."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.share <= 1.0:
            raise ValueError(f"synth.share must be in [0, 1] (0 = off), got {self.share}.")
        if self.queue_size < 1 or self.batch < 1 or self.num_inference_steps < 1 or self.tau <= 0:
            raise ValueError(
                "synth.queue_size, synth.batch and synth.num_inference_steps must be >= 1, synth.tau > 0."
            )


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
    hooks: HooksConfig = field(default_factory=HooksConfig)
    """Extension points of the LLM variants (reward shaping, token weights, regularisers, whole losses, ...)."""
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    """How groups are generated: independent samples or LATR trees."""
    rest: RestConfig = field(default_factory=RestConfig)
    """ReST-GRPO: train on prompts assembled from the policy's own samples (reward-std filter, partial solutions)."""
    synth: SynthConfig = field(default_factory=SynthConfig)
    """Syn-GRPO (train-vlm): questions about images synthesised by a ShapeWorld pipeline in a background thread."""

    def __post_init__(self) -> None:
        if self.synth.share > 0 and (
            self.rest.enabled or self.hooks.prompt_sampler or self.hooks.group_sizes != "fixed"
        ):
            raise ValueError(
                "synth.share > 0 (Syn-GRPO) puts synthesised questions in place of part of each step; it does not "
                "combine with rest.enabled, hooks.prompt_sampler or hooks.group_sizes (they keep per-row statistics "
                "of the task file)."
            )
        if self.hooks.whole_loss and self.train.micro_batch_size % self.generation.group_size:
            raise ValueError(
                f"hooks.whole_loss={self.hooks.whole_loss} compares a group's completions inside one micro-batch: "
                f"train.micro_batch_size ({self.train.micro_batch_size}) must be a multiple of generation.group_size "
                f"({self.generation.group_size})."
            )
        if self.hooks.group_sizes != "fixed" and self.hooks.whole_loss:
            raise ValueError(
                "hooks.group_sizes=knapsack gives groups of different sizes; it cannot combine with "
                "hooks.whole_loss (whole groups per micro-batch). Use one of them."
            )
        if self.rollout.kind == "soft" and (
            self.hooks.group_sizes != "fixed" or self.hooks.hints or self.hooks.whole_loss
            or self.train.inner_epochs != 1 or self.loss.kl_beta > 0 or self.hooks.kl_beta_end > 0
        ):  # fmt: skip
            raise ValueError(
                "rollout.kind=soft (SofT-GRPO) scores soft steps by their Gumbel log-density in the update only; it "
                "needs train.inner_epochs=1, loss.kl_beta=0 and no hooks.group_sizes / hints / whole_loss."
            )
        if self.rest.enabled and (
            self.rollout.kind != "sample" or self.hooks.group_sizes != "fixed" or self.hooks.hints
            or self.hooks.group_ids == "prompt"
        ):  # fmt: skip
            raise ValueError(
                "rest.enabled (ReST-GRPO) replaces the training rows by an assembled set of prompts and partial "
                "solutions; it needs rollout.kind=sample and no hooks.group_sizes / hints / group_ids=prompt."
            )
        if self.rollout.kind == "latr" and (self.hooks.group_sizes != "fixed" or self.hooks.hints):
            raise ValueError(
                "rollout.kind=latr grows generation.group_size branches per prompt; it does not combine with "
                "hooks.group_sizes (per-prompt sizes) or hooks.hints (a second rollout). Use rollout.kind=sample."
            )

    run: RunConfig = field(default_factory=RunConfig)
    """Run folder, checkpoints and logging."""
