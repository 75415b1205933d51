"""Every image method as a rollout plan plus the estimator, weights and clip it pairs with (docs/flow_methods.md).

One builder per method; each is a pure function of the training iteration (window schedules move with it) and of
keyword hyper-parameters whose defaults are the published ones, with the source next to each
(docs/flow_methods.md has the full table). GRPO-Guard is a modifier: `with_guard(method)` or
``build_method(name, guard=True)``. Items marked [?] are our reading where no source fixes a value.

Every builder takes ``grid`` (`flowrl.flow.grid.GRIDS`): the time grid of its paper's model by default, "sd3"
(diffusers' SD3 scheduler: flow_grpo, TempFlow, TreeGRPO, DiffusionNFT, AWM on SD3.5-M) or "linear" (the shifted
``linspace(1, 0, T + 1)`` of FluxPipeline and of the FastVideo code of DanceGRPO, MixGRPO, G2RPO, BranchGRPO).
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from flowrl.flow.forward import awm_loss, nft_loss, old_policy_decay
from flowrl.flow.grid import named_grid
from flowrl.flow.method_spec import FlowMethod, ForwardSpec, Pruning, TreeRPOHooks
from flowrl.flow.plan import FinishSpec, ProbeSpec, RolloutPlan, StepSpec
from flowrl.flow.schedules import depth_noise, progressive_window, window_start, window_steps


def _chain(
    T: int,
    kernel: str,
    level: float,
    trained: set[int],
    *,
    sde: set[int] | None = None,
    branch_at: dict[int, int] | None = None,
    noise_scale: float = 1.0,
) -> tuple[StepSpec, ...]:
    # steps in `sde` use `kernel` (all when None), the rest Euler; `branch_at` = {step: factor}
    sde = set(range(T)) if sde is None else sde
    branch_at = branch_at or {}
    specs = []
    for i in range(T):
        if i in sde:
            b = branch_at.get(i, 1)
            specs.append(
                StepSpec(
                    kernel=kernel,
                    noise_level=level,
                    branch=b,
                    trained=i in trained,
                    noise_scale=noise_scale if b > 1 else 1.0,
                )
            )
        else:
            specs.append(StepSpec())
    return tuple(specs)


def flow_grpo(
    *,
    iteration: int = 0,
    num_inference_steps: int = 10,
    shift: float = 3.0,
    grid: str = "sd3",
    noise_level: float = 0.7,
    group_size: int = 24,
    timestep_fraction: float = 0.99,
    kl_beta: float = 0.04,
) -> FlowMethod:
    """Flow-GRPO (arXiv 2505.05470; flow_grpo `config/grpo.py`, SD3.5-M): G = 24 independent SDE chains per prompt,
    10 steps, shift 3, a = 0.7 on every step, the first ``int(T * 0.99) = 9`` steps trained, group advantage
    (eps 1e-4, clip 5), PPO clip 1e-4, KL beta 0.04 (GenEval / OCR; 0.01 PickScore)."""
    del iteration
    T = num_inference_steps
    trained = set(range(min(int(T * timestep_fraction), T - 1)))
    plan = RolloutPlan(
        named_grid(grid, T, shift=shift), _chain(T, "flow_sde", noise_level, trained), num_roots=group_size
    )
    return FlowMethod("flow_grpo", plan, "group", {"eps": 1e-4, "clip": 5.0}, clip_range=1e-4, kl_beta=kl_beta)


def flow_grpo_fast(
    *,
    iteration: int = 0,
    num_inference_steps: int = 10,
    shift: float = 3.0,
    grid: str = "sd3",
    kernel: str = "cps",
    noise_level: float = 0.8,
    window_size: int = 3,
    window_range: tuple[int, int] = (0, 5),
    group_size: int = 24,
    share_prefix: bool = False,
    seed: int = 0,
) -> FlowMethod:
    """Flow-GRPO-Fast (flow_grpo `train_sd3_fast.py`, README "Training Speed", `*_fast_nocfg` configs): ODE except an
    SDE window of 3 steps whose start is drawn uniformly in [0, 5) each iteration; only window steps trained; CPS
    with a = 0.8, clip 1e-5, beta 0. ``share_prefix=True`` is the older "S1" form: one ODE prefix per prompt that
    branches G ways at the window (the deterministic prefix computed once)."""
    T = num_inference_steps
    start = window_start("random", iteration, low=window_range[0], high=window_range[1], size=window_size, seed=seed)
    window = set(window_steps(start, size=window_size, num_steps=T))
    branch_at = {start: group_size} if share_prefix else None
    plan = RolloutPlan(
        named_grid(grid, T, shift=shift),
        _chain(T, kernel, noise_level, window, sde=window, branch_at=branch_at),
        num_roots=1 if share_prefix else group_size,
    )
    return FlowMethod("flow_grpo_fast", plan, "group", {"eps": 1e-4, "clip": 5.0}, clip_range=1e-5)


def dance_grpo(
    *,
    iteration: int = 0,
    num_inference_steps: int = 16,
    shift: float = 3.0,
    grid: str = "linear",
    eta: float = 0.3,
    group_size: int = 12,
    timestep_fraction: float = 0.6,
) -> FlowMethod:
    """DanceGRPO (arXiv 2505.07818; DanceGRPO `train_grpo_flux.py` @ 15cc71d, FLUX): one shared x_T per group of 12
    (`init_same_noise`), so the first SDE step is one evaluation branching 12 ways; dance SDE eta = 0.3 on steps
    0..14 of 16 (shift 3); the image is the clean prediction ``x - sigma v`` at the last sigma (`run_sample_step`
    returns ``pred_original``, 0.167 at 16 steps), which is an Euler step to 0, so the last step is Euler; a random
    ``int(15 * 0.6) = 9`` of the 15 steps before it trained per trajectory (the script drops the last transition,
    ``[:, :-1]``, then keeps the first 9 of a permutation; `flowrl.flow.schedules.timestep_subset_mask`); group
    advantage eps 1e-8 (unbiased std), clip 5; PPO clip 1e-4; no KL."""
    del iteration
    T = num_inference_steps
    steps = _chain(T, "dance_sde", eta, set(range(T - 1)), sde=set(range(T - 1)), branch_at={0: group_size})
    plan = RolloutPlan(named_grid(grid, T, shift=shift), steps, num_roots=1)
    return FlowMethod(
        "dance_grpo", plan, "group", {"eps": 1e-8, "clip": 5.0}, clip_range=1e-4, timestep_fraction=timestep_fraction
    )


def _mix_window(iteration, T, window_size, schedule, interval, stride, roll_back, seed):
    start = window_start(
        schedule,
        iteration,
        num_steps=T,
        interval=interval,
        stride=stride,
        roll_back=roll_back,
        low=0,
        high=T - 1,
        size=window_size,
        seed=seed,
    )
    return start, window_steps(start, size=window_size, num_steps=T)


def mixgrpo(
    *,
    iteration: int = 0,
    num_inference_steps: int = 25,
    shift: float = 3.0,
    grid: str = "linear",
    noise_level: float = 0.7,
    group_size: int = 12,
    window_size: int = 4,
    schedule: str = "progressive",
    interval: int = 25,
    stride: int = 1,
    roll_back: bool = True,
    share_init_noise: bool = True,
    seed: int = 0,
) -> FlowMethod:
    """MixGRPO (arXiv 2507.21802; MixGRPO `grpo_states.py`, `finetune_flux_grpo_MixGRPO.sh`, FLUX): 25 steps, shift 3,
    Flow-GRPO SDE (a = 0.7) only inside a window of 4 steps, ODE elsewhere, window trained; progressive window
    (+1 step every 25 iterations, roll back); G = 12 with one shared x_T (`init_same_noise`), which makes the
    prefix one ODE chain branching 12 ways at the window start; per-reward group advantages clipped to 5 (eps 1e-8
    as in the FastVideo/DanceGRPO code it builds on [?]); PPO clip 1e-4; beta 0."""
    T = num_inference_steps
    start, window = _mix_window(iteration, T, window_size, schedule, interval, stride, roll_back, seed)
    branch_at = {start: group_size} if share_init_noise else None
    steps = _chain(T, "flow_sde", noise_level, set(window), sde=set(window), branch_at=branch_at)
    plan = RolloutPlan(named_grid(grid, T, shift=shift), steps, num_roots=1 if share_init_noise else group_size)
    return FlowMethod("mixgrpo", plan, "group", {"eps": 1e-8, "clip": 5.0}, clip_range=1e-4)


def mixgrpo_flash(
    *,
    iteration: int = 0,
    num_inference_steps: int = 25,
    shift: float = 3.0,
    grid: str = "linear",
    noise_level: float = 0.7,
    group_size: int = 12,
    window_size: int = 4,
    interval: int = 20,
    stride: int = 1,
    compress: float = 0.4,
    share_init_noise: bool = True,
) -> FlowMethod:
    """MixGRPO-Flash (MixGRPO `sampling_utils.py`, `dpm_apply_strategy=post`): MixGRPO with interval 20 and, after
    the window, DPM-Solver++ 2M (midpoint) on a re-shifted grid of ``int(max((T - l_e) * 0.4, 1))`` points, seeded
    with the window's x0 prediction. Flash* = ``stride=0, compress=0.2`` (frozen window at 0)."""
    T = num_inference_steps
    start, window = _mix_window(iteration, T, window_size, "progressive", interval, stride, True, 0)
    branch_at = {start: group_size} if share_init_noise else None
    steps = _chain(window[-1] + 1, "flow_sde", noise_level, set(window), sde=set(window), branch_at=branch_at)
    plan = RolloutPlan(
        named_grid(grid, T, shift=shift),
        steps,
        FinishSpec("dpmpp_2m", compress=compress, shift=shift),
        num_roots=1 if share_init_noise else group_size,
    )
    return FlowMethod("mixgrpo_flash", plan, "group", {"eps": 1e-8, "clip": 5.0}, clip_range=1e-4)


def tempflow_grpo(
    *,
    iteration: int = 0,
    num_inference_steps: int = 10,
    shift: float = 3.0,
    grid: str = "sd3",
    noise_level: float = 0.7,
    num_seeds: int = 4,
    num_probes: int = 6,
    kl_beta: float = 0.001,
) -> FlowMethod:
    """TempFlow-GRPO (arXiv 2508.04324; TempFlow `train_sd3_pr.py`, `config/dgx.py`, issue #3): per seed an ODE
    spine; at every step 0..T-2 K = 6 one-step SDE probes (a = 0.7 SD3.5-M, 0.9 FLUX) each finished by Euler;
    N = 4 seeds; probe reward normalised among its K siblings (eps 1e-4, clip 5); noise-aware step weight
    ``std_i / mean std`` computed from the grid; PPO clip 1e-4; KL beta 0.001 (PickScore; 0.004 GenEval)."""
    del iteration
    T = num_inference_steps
    probe_steps = tuple(range(T - 1))
    plan = RolloutPlan(
        named_grid(grid, T, shift=shift),
        tuple(StepSpec() for _ in probe_steps),
        probes=ProbeSpec(probe_steps, num_probes, "flow_sde", noise_level),
        num_roots=num_seeds,
    )
    return FlowMethod(
        "tempflow_grpo",
        plan,
        "per_sibling",
        {"eps": 1e-4, "clip": 5.0},
        clip_range=1e-4,
        kl_beta=kl_beta,
        noise_aware=True,
    )


def g2rpo(
    *,
    iteration: int = 0,
    num_inference_steps: int = 16,
    shift: float = 3.0,
    grid: str = "linear",
    noise_level: float = 0.7,
    group_size: int = 12,
    probe_steps: tuple[int, ...] = tuple(range(8)),
    granularities: tuple[int, ...] = (1, 2),
) -> FlowMethod:
    """G2RPO (arXiv 2510.01982; Granular-GRPO `train_g2rpo_hps.py`, `finetune_g2rpo_hps.sh`, FLUX): one shared x_T
    per group, ODE anchor; at steps 0..7 G = 12 one-step SDE probes (a = 0.7), each finished on the main grid and on
    the grid of stride 2 (decoding the last x0 prediction); advantages normalised among siblings per granularity
    (eps 1e-8) and summed, clip 5; PPO clip 1e-4; no KL, no step weights."""
    del iteration
    T = num_inference_steps
    plan = RolloutPlan(
        named_grid(grid, T, shift=shift),
        tuple(StepSpec() for _ in range(max(probe_steps) + 1)),
        FinishSpec("ode_euler", strides=granularities),
        ProbeSpec(probe_steps, group_size, "flow_sde", noise_level),
        num_roots=1,
    )
    return FlowMethod("g2rpo", plan, "multi_granular", {"eps": 1e-8, "clip": 5.0}, clip_range=1e-4)


def branch_grpo(
    *,
    iteration: int = 0,
    num_inference_steps: int = 20,
    shift: float = 3.0,
    grid: str = "linear",
    eta: float = 0.3,
    split_points: tuple[int, ...] = (0, 3, 6, 9),
    branch: int = 2,
    noise_scale: float = 4.0,
    prob_weighted: bool = False,
    pruning: Pruning | None = None,
) -> FlowMethod:
    """BranchGRPO (arXiv 2509.06040; Fredreic1849/BranchGRPO @ 19fbb9f `fastvideo/train_branchgrpo_flux.py`,
    `scripts/finetune/finetune_flux_branchgrpo_8gpus.sh`: ``--sampling_steps 20 --shift 3 --eta 0.3 --h 720``):
    dance SDE eta = 0.3 on steps 0..18, binary splits at {0, 3, 6, 9} (16 leaves per root) sampled with kappa = 4
    times the std but scored with the std [reproduced as published; flagged]; the image is the last step's clean
    prediction ``x - sigma v`` (the script decodes ``pred_original``, as DanceGRPO), an Euler step to 0, so the last
    step is Euler; leaf-mean reward fusion (or log-prob softmax, alpha 1) and per-depth normalisation (eps 1e-8);
    every edge but the last trained; clip 1e-3."""
    del iteration
    T = num_inference_steps
    steps = _chain(
        T,
        "dance_sde",
        eta,
        set(range(T - 1)),
        sde=set(range(T - 1)),
        branch_at={s: branch for s in split_points},
        noise_scale=noise_scale,
    )
    plan = RolloutPlan(named_grid(grid, T, shift=shift), steps, num_roots=1)
    name = "tree_depthwise_prob" if prob_weighted else "tree_depthwise"
    return FlowMethod(
        "branch_grpo", plan, name, {"eps": 1e-8, "clip": 5.0}, clip_range=1e-3, pruning=pruning or Pruning()
    )


def _tree_window(iteration: int, T: int, window_size: int, interval: int, stride: int) -> int:
    # slide by `stride` every `interval` iterations, the window kept inside the trainable steps 0..T-2
    return min(
        progressive_window(iteration, num_steps=T, interval=interval, stride=stride, roll_back=False),
        T - 1 - window_size,
    )


def tree_grpo(
    *,
    iteration: int = 0,
    num_inference_steps: int = 10,
    shift: float = 3.0,
    grid: str = "sd3",
    noise_level: float = 0.7,
    window_size: int = 4,
    branch: int = 2,
    interval: int = 50,
    stride: int = 1,
) -> FlowMethod:
    """TreeGRPO (arXiv 2512.08153; [2nd] walkthrough of `configs/base.yaml`): SD3.5-M, 10 steps, a window of 4
    consecutive branching steps with k = 2 children each (Flow-GRPO SDE, a = 0.7), ODE elsewhere: 16 leaves, 15
    branching nodes; window += 1 every 50 epochs (kept inside 0..T-2, our reading); leaf-normalised advantages
    averaged upward; clip 1e-4."""
    T = num_inference_steps
    start = _tree_window(iteration, T, window_size, interval, stride)
    window = set(range(start, start + window_size))
    steps = _chain(T, "flow_sde", noise_level, window, sde=window, branch_at={s: branch for s in window})
    plan = RolloutPlan(named_grid(grid, T, shift=shift), steps, num_roots=1)
    return FlowMethod("tree_grpo", plan, "tree_leaf_first", {"eps": 1e-4, "clip": 5.0}, clip_range=1e-4)


def dynamic_treerpo(
    *,
    iteration: int = 0,
    num_inference_steps: int = 10,
    shift: float = 3.0,
    grid: str = "sd3",
    noise_levels: tuple[float, ...] = (0.7,),
    window_size: int = 4,
    branch: int = 2,
    interval: int = 50,
    stride: int = 1,
    hooks: TreeRPOHooks | None = None,
) -> FlowMethod:
    """Dynamic-TreeRPO (arXiv 2509.23352, abstract only; no code): a sliding-window tree with shared prefixes and a
    noise level per tree depth. Everything beyond that is [?]: structure = TreeGRPO's (window 4, k = 2),
    `noise_levels` per depth default to a constant 0.7 (Flow-GRPO's), advantage = leaf-first tree estimator,
    LayerTuning-RL weight and adaptive clip bounds are `TreeRPOHooks` defaulting to off / constant."""
    T = num_inference_steps
    start = _tree_window(iteration, T, window_size, interval, stride)
    steps = []
    for i in range(T):
        d = i - start
        if 0 <= d < window_size:
            steps.append(
                StepSpec(kernel="flow_sde", noise_level=depth_noise(noise_levels, d), branch=branch, trained=True)
            )
        else:
            steps.append(StepSpec())
    plan = RolloutPlan(named_grid(grid, T, shift=shift), tuple(steps), num_roots=1)
    return FlowMethod(
        "dynamic_treerpo",
        plan,
        "tree_leaf_first",
        {"eps": 1e-4, "clip": 5.0},
        clip_range=1e-4,
        hooks=hooks or TreeRPOHooks(),
    )


def diffusion_nft(
    *,
    iteration: int = 0,
    num_inference_steps: int = 10,
    shift: float = 3.0,
    grid: str = "sd3",
    group_size: int = 24,
    per_sample: int = 9,
    beta: float = 1.0,
    adv_max: float = 5.0,
    decay_rate: float = 0.001,
    decay_cap: float = 0.5,
    decay_warmup: int = 0,
) -> FlowMethod:
    """DiffusionNFT (arXiv 2509.16117; NVlabs/DiffusionNFT `config/nft.py`, `scripts/train_nft_sd3.py`, SD3.5-M):
    G = 24 deterministic samples per prompt (the anchor's 2nd-order DPM solver, 10 steps; here Euler ODE chains of
    the tree sampler), rewards -> per-prompt advantage over the batch std, clip 5 -> ``r``; per sample the first
    ``int(10 * 0.99) = 9`` of the shuffled schedule sigmas are trained with fresh noise by `nft_loss` (beta 1,
    scale 5); the sampling policy is the lagged ``theta_old`` with decay ``min(0.001 step, 0.5)``. Its velocity-MSE
    regulariser to the reference (weight 1e-4) is ``kl_beta``. Not a PPO method: ``clip_range`` is unused (0)."""
    del iteration
    T = num_inference_steps
    plan = RolloutPlan(named_grid(grid, T, shift=shift), tuple(StepSpec() for _ in range(T)), num_roots=group_size)
    spec = ForwardSpec(
        partial(nft_loss, beta=beta, scale=adv_max),
        per_sample,
        adv_max,
        partial(old_policy_decay, rate=decay_rate, cap=decay_cap, warmup=decay_warmup),
    )
    advantage = {"eps": 1e-4, "clip": adv_max, "scale": "batch"}
    return FlowMethod("diffusion_nft", plan, "group", advantage, clip_range=0.0, kl_beta=1e-4, forward=spec)


def awm(
    *,
    iteration: int = 0,
    num_inference_steps: int = 14,
    shift: float = 3.0,
    grid: str = "sd3",
    group_size: int = 24,
    per_sample: int = 6,
    power: float = 0.25,
    ema_beta: float = 1.0,
    decay_rate: float = 0.001,
    decay_cap: float = 0.3,
    kl_beta: float = 0.001,
) -> FlowMethod:
    """AWM, Advantage Weighted Matching (arXiv 2509.25050; scxue/advantage_weighted_matching `config/dgx_awm.py`,
    SD3.5-M GenEval): G = 24 samples per prompt, 6 trained sigmas per sample, advantages per prompt over the batch
    std, clipped to 5 and rescaled to [-1, 1], `awm_loss` with ghuber p = 0.25 and KL-EMA weight 1 against weights
    averaged with decay ``min(0.001 step, 0.3)``, reference velocity MSE 0.001 (0.003 in the README). Differences:
    the anchor samples with SA-Solver (stochasticity 0.4 for t in [0.3, 0.9], 14 steps) from the current policy and
    stratifies the sigmas over step indices 1..0.9 T; flowrl samples Euler ODE chains from the lagged copy (one
    optimizer step behind at most a 0.3 decay) and draws distinct random schedule sigmas."""
    del iteration
    T = num_inference_steps
    plan = RolloutPlan(named_grid(grid, T, shift=shift), tuple(StepSpec() for _ in range(T)), num_roots=group_size)
    spec = ForwardSpec(
        partial(awm_loss, power=power, ema_beta=ema_beta),
        per_sample,
        5.0,
        partial(old_policy_decay, rate=decay_rate, cap=decay_cap),
    )
    advantage = {"eps": 1e-4, "clip": 5.0, "scale": "batch"}
    return FlowMethod("awm", plan, "group", advantage, clip_range=0.0, kl_beta=kl_beta, forward=spec)


def with_guard(method: FlowMethod, *, clip_range: float = 2e-6) -> FlowMethod:
    """GRPO-Guard (arXiv 2510.22319; flow_grpo `config/grpo_guard.py`) on top of any method: RatioNorm of the
    log-ratio (needs the stored old means) and 1/Delta step weights, clip 2e-6 (OCR, GenEval; 4e-6 PickScore),
    beta 0. RatioNorm was derived for the flow_sde kernel; with CPS it is untested/unstable (flow_grpo #192)."""
    if method.forward is not None:
        raise ValueError(
            f"GRPO-Guard corrects the importance ratios of sampling steps; {method.name!r} trains on the forward "
            "process and has none. Use guard with a step-likelihood method (flow_grpo, mixgrpo, ...)."
        )
    return method._replace(guard=True, clip_range=clip_range, kl_beta=0.0)


METHODS: dict[str, Callable[..., FlowMethod]] = {
    "flow_grpo": flow_grpo,
    "flow_grpo_fast": flow_grpo_fast,
    "dance_grpo": dance_grpo,
    "mixgrpo": mixgrpo,
    "mixgrpo_flash": mixgrpo_flash,
    "tempflow_grpo": tempflow_grpo,
    "g2rpo": g2rpo,
    "branch_grpo": branch_grpo,
    "tree_grpo": tree_grpo,
    "dynamic_treerpo": dynamic_treerpo,
    "diffusion_nft": diffusion_nft,
    "awm": awm,
}


def build_method(name: str, *, guard: bool = False, **kwargs) -> FlowMethod:
    """`METHODS[name](**kwargs)`, optionally wrapped by `with_guard`; unknown names raise with the valid ones."""
    if name not in METHODS:
        raise ValueError(
            f"Unknown flow method {name!r}. Valid: {sorted(METHODS)}. GRPO-Guard is not a method of its "
            "own: pass guard=True to any of them."
        )
    method = METHODS[name](**kwargs)
    return with_guard(method) if guard else method
