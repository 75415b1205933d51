"""LLM GRPO variants of the seed papers as named compositions of the core (issue #9; docs/papers_llm.md).

Each factory takes the paper's hyper-parameters as keywords (defaults = the paper's or its code's, our reading
where marked in docs/papers_llm.md) and returns a `flowrl.grpo.Variant`, so `get_variant` and the text trainer
accept them (``loss.variant=flowrl.grpo.variants_llm:ngrpo`` today, or by name once `LLM_VARIANTS` is merged into
`VARIANTS`). Every factory accepts ``beta``, the coefficient of the batch's per-edge regulariser (`PolicyBatch.kl`).

What a `Variant` cannot carry lives next to it and is the trainer's job each step:

* schedules (`flowrl.grpo.schedules`): GRPO-D's KL coefficient, KDRL's annealing, D³S keep ratios, the Train Long
  Think Short budget: apply with `with_beta` or pass the number to the pure function;
* per-edge regularisers other than the reference KL go into `PolicyBatch.kl`: KDRL's
  `flowrl.grpo.regularizers.masked_teacher_kl`, LLDS's `flowrl.grpo.regularizers.llds_penalty`;
* reward shaping that needs lengths or likelihoods (`flowrl.grpo.shaping`: GRPO-λ, Rewarding the Unlikely, Train
  Long Think Short) runs before ``variant.advantages``; token masks / weights that need entropies or token ids
  (D³S token level, GTPO) go into `PolicyBatch.mask` / `PolicyBatch.weights`.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

import torch

from flowrl.grpo import reduce as R
from flowrl.grpo.advantages import group_advantages
from flowrl.grpo.advantages_llm import baseline_advantages, riskpo_advantages, virtual_max_advantages
from flowrl.grpo.objective import Objective, Variant, token_ratio
from flowrl.grpo.schedules import LinearSchedule
from flowrl.grpo.selection import max_variance_subset_mask
from flowrl.grpo.surrogates import clipped_surrogate, reinforce_surrogate
from flowrl.grpo.surrogates_llm import dcpo_surrogate
from flowrl.grpo.trackers import BetaValueTracker, CumulativeRewardStats


def with_beta(variant: Variant, beta: float) -> Variant:
    """The same variant with the regulariser coefficient replaced (a schedule's value for this step)."""
    return variant._replace(objective=variant.objective._replace(beta=beta))


def _clip_objective(eps_low: float, eps_high: float, reduce, beta: float) -> Objective:
    return Objective(token_ratio, partial(clipped_surrogate, eps_low=eps_low, eps_high=eps_high), reduce, beta)


def ngrpo(*, eps_low: float = 0.16, eps_high: float = 0.24, max_reward: float = 1.0, beta: float = 0.0) -> Variant:
    """NGRPO (arXiv 2509.18851): virtual max-reward sample in the group statistics (all-wrong groups learn),
    asymmetric clip 0.16 / 0.24, token-mean (verl's default aggregation, which its code keeps); KL 0 in the paper."""
    return Variant(
        advantages=partial(virtual_max_advantages, max_reward=max_reward),
        objective=_clip_objective(eps_low, eps_high, R.token_mean, beta),
    )


def dcpo(*, eps_low: float = 0.16, eps_high: float = 0.2, dual_clip: float = 10.0, beta: float = 0.0) -> Variant:
    """DCPO (arXiv 2509.02333): smooth advantage standardisation over each prompt's history (a fresh
    `CumulativeRewardStats` per variant: group ids must be stable prompt ids across steps), dynamic per-token clip
    bounds from the old probability, and OTM, which the released code computes as a token mean
    (`masked_mean(loss, mask).sum()`); flowrl divides by the step's global token count (`reduce.token_mean`)."""
    return Variant(
        advantages=CumulativeRewardStats(),
        objective=Objective(
            token_ratio,
            partial(dcpo_surrogate, eps_low=eps_low, eps_high=eps_high, dual_clip=dual_clip),
            R.token_mean,
            beta,
        ),
    )


def grpo_d(*, beta: float = 0.0, eps_low: float = 0.2, eps_high: float = 0.2) -> Variant:
    """GRPO-D (OThink-MR1, arXiv 2503.16081): GRPO whose KL coefficient follows a schedule. The variant holds the
    step's ``beta``; build the schedule with `grpo_d_schedule` and call ``with_beta(variant, schedule(step))``."""
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=_clip_objective(eps_low, eps_high, R.seq_mean_token_mean, beta),
    )


def grpo_d_schedule(
    *, total_steps: int, beta_min: float = 0.0, beta_max: float = 0.04, warmup_fraction: float = 1.0
) -> Callable[[int], float]:
    """GRPO-D's ``beta(s) = beta_min + (beta_max - beta_min) min(1, s / (f S))`` (our reading of the dynamic KL:
    small early, growing later; ``beta_max = 0.04`` is GRPO's default, ``beta_min = 0`` and ``f = 1`` ours)."""
    if not 0.0 < warmup_fraction <= 1.0:
        raise ValueError(f"`warmup_fraction` must be in (0, 1], got {warmup_fraction}.")
    return LinearSchedule(beta_min, beta_max, max(1, round(warmup_fraction * total_steps)))


def _d3s_advantages(rewards: torch.Tensor, group_ids: torch.Tensor, *, keep_ratio: float) -> torch.Tensor:
    """GRPO advantages with the samples outside each group's max-variance subset set to 0 (no gradient)."""
    adv = group_advantages(rewards, group_ids)
    return adv * max_variance_subset_mask(adv, group_ids, keep_ratio=keep_ratio).float()


def d3s(*, keep_ratio: float = 0.5, eps_low: float = 0.2, eps_high: float = 0.2, beta: float = 0.0) -> Variant:
    """D³S (arXiv 2509.22115), sample level: each group keeps the ``ceil(keep_ratio G)`` rollouts of largest
    advantage variance (the others get A = 0). The token level (`selection.adv_entropy_token_mask`) and the ratio
    schedule (`schedules.LinearSchedule`) are the trainer's; ``keep_ratio = 0.5`` is our reading."""
    return Variant(
        advantages=partial(_d3s_advantages, keep_ratio=keep_ratio),
        objective=_clip_objective(eps_low, eps_high, R.token_mean, beta),
    )


def kdrl(*, beta: float = 5e-3, eps_low: float = 0.2, eps_high: float = 0.28) -> Variant:
    """KDRL (arXiv 2506.02208): GRPO + ``beta`` times the reverse KL to a teacher, which the trainer puts in
    `PolicyBatch.kl` (`regularizers.masked_teacher_kl`); ``beta`` anneals 5e-3 -> 1e-3 (`schedules.LinearSchedule`
    with `with_beta`). Clip and token-mean follow the DAPO-style recipe the paper builds on (our reading)."""
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=_clip_objective(eps_low, eps_high, R.token_mean, beta),
    )


def llds(*, beta: float = 0.2, eps_low: float = 0.2, eps_high: float = 0.2) -> Variant:
    """LLDS (arXiv 2512.04220): GRPO + ``beta`` (the paper's lambda, 0.2 in the script) times the likelihood
    preservation term `regularizers.llds_penalty`, which the trainer puts in `PolicyBatch.kl`."""
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=_clip_objective(eps_low, eps_high, R.token_mean, beta),
    )


class SPOAdvantages:
    """SPO's advantage function: ``A = (R - v(x)) / std_B(R - v)`` with the pre-update tracked value, then the
    tracker folds the rewards in (``D(x) = divergence``, 0 by default: the trainer's KL estimate goes here). SPO's
    tracker is a Beta posterior of a binary reward: rewards enter its update clipped to [0, 1]."""

    def __init__(self, tracker: BetaValueTracker, *, divergence: float = 0.0) -> None:
        self.tracker, self.divergence = tracker, divergence

    def __call__(self, rewards: torch.Tensor, group_ids: torch.Tensor) -> torch.Tensor:
        values = self.tracker.values(group_ids)  # (B,) before the update
        adv = baseline_advantages(rewards, values)
        self.tracker.update(group_ids, rewards.clamp(0, 1), torch.full_like(values, self.divergence))
        return adv


def spo(*, beta: float = 0.0, eps_low: float = 0.2, eps_high: float = 0.28, divergence: float = 0.0) -> Variant:
    """SPO (arXiv 2509.13232): per-prompt Beta value tracker as the baseline, batch-global normalisation, PPO clip
    with token-mean (our reading). Group ids must be stable prompt ids across steps."""
    return Variant(
        advantages=SPOAdvantages(BetaValueTracker(), divergence=divergence),
        objective=_clip_objective(eps_low, eps_high, R.token_mean, beta),
    )


def gtpo(*, beta: float = 0.0) -> Variant:
    """GTPO (arXiv 2508.03772): on-policy ``r = 1`` (REINFORCE gradient), sequence-mean; conflict-token weights
    (`weights_llm.conflict_token_weights` into `PolicyBatch.weights`) and entropy shaping
    (`advantages_llm.entropy_shaped_advantages`) are applied by the trainer. No KL in the paper (beta 0)."""
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=Objective(token_ratio, reinforce_surrogate, R.seq_mean_token_mean, beta),
    )


def riskpo(
    *,
    bundle_size: int = 5,
    alpha: float = 0.2,
    beta_quantile: float = 0.8,
    weight: float = 1.5,
    eps_low: float = 0.2,
    eps_high: float = 0.28,
    beta: float = 0.0,
) -> Variant:
    """RiskPO (arXiv 2510.00911): bundle the step's questions (5 per bundle), score "papers", mixed value-at-risk
    advantage (alpha 0.2, beta 0.8 in the paper, 0.9 in the script; w 1.5) with the batch's quantiles (a
    `trackers.QuantileTracker` is the trainer's); verl-style clip and token-mean (our reading)."""
    return Variant(
        advantages=partial(riskpo_advantages, bundle_size=bundle_size, alpha=alpha, beta=beta_quantile, weight=weight),
        objective=_clip_objective(eps_low, eps_high, R.token_mean, beta),
    )


def tp_grpo(*, eps_low: float = 0.2, eps_high: float = 0.28, beta: float = 0.0) -> Variant:
    """TP-GRPO (arXiv 2507.23317): GRPO whose per-token advantage adds thought-level process rewards with a
    capability-adaptive weight (`flowrl.grpo.thoughts`). A `Variant`'s advantage is per sample, so the variant holds
    the outcome part (group advantages, clip-higher and token-mean: our reading, the paper builds on DAPO-style
    GRPO) and the trainer's reward-shaping hook adds the process part from a pluggable step scorer
    (`thoughts.tp_grpo_advantages`)."""
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=_clip_objective(eps_low, eps_high, R.token_mean, beta),
    )


def mo_grpo(*, eps_low: float = 0.2, eps_high: float = 0.2, beta: float = 0.0) -> Variant:
    """Multi-objective GRPO for safe and aligned generation (arXiv 2503.21819): plain GRPO (group advantage, clip,
    per-sequence mean) on the weighted sum of a multi-label reward model's heads
    (`reward_weights.multi_objective_rewards`, which the trainer's reward-shaping hook applies). Clip 0.2 and KL 0
    are GRPO's / TRL's defaults (the paper's values: [?])."""
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=_clip_objective(eps_low, eps_high, R.seq_mean_token_mean, beta),
    )


LLM_VARIANTS: dict[str, Callable[..., Variant]] = {
    "ngrpo": ngrpo,
    "dcpo": dcpo,
    "grpo_d": grpo_d,
    "d3s": d3s,
    "kdrl": kdrl,
    "llds": llds,
    "spo": spo,
    "gtpo": gtpo,
    "riskpo": riskpo,
    "tp_grpo": tp_grpo,
    "mo_grpo": mo_grpo,
}
