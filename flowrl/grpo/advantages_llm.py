"""Advantage estimators of the LLM GRPO variants (slot 2 of the core), one equation per function.

Same conventions as `flowrl.grpo.advantages`: `rewards (B,)`, integer `group_ids (B,)`, float32 `(B,)` out.
Sources and the parts that are our reading: docs/papers_llm.md.
"""

from __future__ import annotations

import torch

from flowrl.grpo.advantages import group_stats


def virtual_max_advantages(
    rewards: torch.Tensor, group_ids: torch.Tensor, *, max_reward: float = 1.0, eps: float = 1e-6
) -> torch.Tensor:
    """NGRPO advantage calibration (arXiv 2509.18851, section 3.1): statistics over the group plus one virtual
    sample with the maximal reward.

    ``mu' = mean(R_g u {r_max})``, ``sigma' = std(R_g u {r_max})`` (unbiased, over ``G + 1`` values),
    ``A_i = (R_i - mu') / (sigma' + eps)``. In closed form from the group's own mean ``mu``, unbiased std ``sigma``
    and size ``G``: ``mu' = (G mu + r_max) / (G + 1)`` and
    ``sigma'^2 = ((G - 1) sigma^2 + G (mu - mu')^2 + (r_max - mu')^2) / G``.
    An all-wrong binary group gets ``A = -1 / sqrt(G + 1)`` instead of 0; an all-correct one still gets 0.

    Args:
        rewards: `(B,)` rewards.
        group_ids: `(B,)` integer group keys.
        max_reward: the virtual sample's reward (NGRPO: 1, the maximum of a 0/1 verifier).
        eps: added to the std (verl default 1e-6, which NGRPO's code keeps).

    Returns:
        `(B,)` float32 advantages.
    """
    stats = group_stats(rewards, group_ids)
    n = stats.count
    mean_v = (n * stats.mean + max_reward) / (n + 1)  # (B,)
    sq_dev = (n - 1) * stats.std**2 + n * (stats.mean - mean_v) ** 2 + (max_reward - mean_v) ** 2
    denom = (sq_dev / n).sqrt() + eps  # unbiased std over the G + 1 values
    # an all-max group with eps = 0 would give 0 / 0: its advantage is 0, as with eps > 0
    return torch.where(denom > 0, (rewards.float() - mean_v) / torch.where(denom > 0, denom, 1.0), 0.0)


def smooth_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    cum_mean: torch.Tensor,
    cum_std: torch.Tensor,
    times_seen: torch.Tensor,
) -> torch.Tensor:
    """DCPO smooth advantage standardisation (arXiv 2509.02333, section 3.2; lime-RL/DCPO `core_algos.py`).

    With ``i`` the number of steps that sampled this prompt (this one included), the step's z-score
    ``A_new = (R - mu_step) / sigma_step`` and the cumulative one ``A_tot = (R - mu_cum) / sigma_cum`` (a term is 0
    where its sigma is 0)::

        A1 = A_tot / i + (1 - 1/i) A_new,   A2 = A_new / i + (1 - 1/i) A_tot,   A = A1 if |A1| < |A2| else A2

    A group whose rewards are all equal this step still gets a signal from the prompt's history.

    Args:
        rewards: `(B,)` this step's rewards.
        group_ids: `(B,)` integer prompt keys.
        cum_mean, cum_std: `(B,)` the prompt's cumulative mean and std, this step merged in
            (`flowrl.grpo.trackers.CumulativeRewardStats`).
        times_seen: `(B,)` ``i >= 1``.

    Returns:
        `(B,)` float32 advantages.
    """
    if bool((times_seen < 1).any()):
        raise ValueError("`times_seen` counts this step as well and must be >= 1 for every sample.")
    r = rewards.float()
    step = group_stats(r, group_ids)
    a_new = torch.where(step.std > 0, (r - step.mean) / step.std.clamp(min=1e-12), 0.0)
    sd = cum_std.float()
    a_tot = torch.where(sd > 0, (r - cum_mean.float()) / sd.clamp(min=1e-12), 0.0)
    inv = 1.0 / times_seen.float()
    a1 = a_tot * inv + (1 - inv) * a_new
    a2 = a_new * inv + (1 - inv) * a_tot
    return torch.where(a1.abs() < a2.abs(), a1, a2)


def baseline_advantages(rewards: torch.Tensor, values: torch.Tensor, *, eps: float = 1e-6) -> torch.Tensor:
    """SPO single-stream advantage (arXiv 2509.13232, section 3): ``A_i = (R_i - v(x_i)) / (std_B(R - v) + eps)``.

    The baseline ``v(x)`` is the prompt's tracked success probability before this update
    (`flowrl.grpo.trackers.BetaValueTracker`); the residuals are scaled by their std over the whole batch (global
    normalisation instead of per-group statistics). Our reading: the residuals are not re-centred.

    Args:
        rewards: `(B,)` rewards, one response per prompt.
        values: `(B,)` the tracker's ``v(x)`` for each sample's prompt.
        eps: added to the batch std.

    Returns:
        `(B,)` float32 advantages.
    """
    if rewards.shape != values.shape or rewards.ndim != 1:
        raise ValueError(
            f"`rewards` and `values` must both be (B,), got {tuple(rewards.shape)}, {tuple(values.shape)}."
        )
    resid = rewards.float() - values.float()
    scale = resid.std() if resid.numel() > 1 else torch.ones((), device=resid.device)
    return resid / (scale + eps)


def entropy_shaped_advantages(
    adv: torch.Tensor, seq_entropy: torch.Tensor, *, threshold: float = 0.7, gamma: float = 0.1
) -> torch.Tensor:
    """GTPO entropy control (arXiv 2508.03772, section 3.2; winstonsmith1897/GTPO `gtpo_training.py`).

    ``A_i' = 0`` if ``H_i > threshold`` (the completion is filtered) else ``A_i - gamma H_i``, with ``H_i`` the
    completion's mean token entropy.

    Args:
        adv: `(B,)` group advantages.
        seq_entropy: `(B,)` mean token entropy of each completion.
        threshold: entropy above which a completion carries no gradient (code: 0.7).
        gamma: entropy penalty (code: 0.1).
    """
    h = seq_entropy.float()
    return torch.where(h > threshold, torch.zeros_like(h), adv.float() - gamma * h)


def bundle_paper_ids(group_ids: torch.Tensor, *, bundle_size: int) -> torch.Tensor:
    """RiskPO bundles (arXiv 2510.00911, section 3.2): questions, in order of first appearance, are cut into bundles
    of ``bundle_size``; "paper" ``j`` of a bundle holds the ``j``-th response of each of its questions.

    Args:
        group_ids: `(B,)` integer question keys.
        bundle_size: questions per bundle (RiskPO script: 5).

    Returns:
        `(B,)` int64 paper ids ``bundle * G_max + j``.
    """
    if bundle_size < 1:
        raise ValueError(f"`bundle_size` must be >= 1 question (RiskPO script: 5), got {bundle_size}.")
    order: dict[int, int] = {}
    seen: dict[int, int] = {}
    question, within = [], []
    for g in group_ids.cpu().tolist():
        order.setdefault(g, len(order))
        question.append(order[g])
        within.append(seen.get(g, 0))
        seen[g] = seen.get(g, 0) + 1
    g_max = max(seen.values()) if seen else 1
    ids = [(q // bundle_size) * g_max + j for q, j in zip(question, within, strict=True)]
    return torch.tensor(ids, dtype=torch.int64, device=group_ids.device)


def mvar_advantages(
    rewards: torch.Tensor,
    paper_ids: torch.Tensor,
    *,
    alpha: float = 0.2,
    beta: float = 0.8,
    weight: float = 1.5,
    q_low: float | None = None,
    q_high: float | None = None,
    eps: float = 1e-6,
) -> torch.Tensor:
    """RiskPO mixed value-at-risk advantage (arXiv 2510.00911, eq. 8-10; RTkenny/RiskPO `core_algos.py`
    `grpo_bundle_RVaR_quantile_tracking`).

    With the paper score ``S_j = sum`` of its responses' rewards and quantiles ``q_a = Q_alpha(S)``,
    ``q_b = Q_beta(S)``::

        A_R = (clip(S, q_a, q_b) - q_b) / (beta - alpha)          (range value-at-risk)
        A_C = -max(q_a - S, 0) / alpha                            (lower-tail CVaR)
        A = (weight A_C + A_R) / (weight + 1) / (std(S) + eps)

    and every response of a paper receives its paper's ``A`` (uniform credit). Low-scoring bundles get the
    largest push.

    Args:
        rewards: `(B,)` rewards.
        paper_ids: `(B,)` integer paper keys (`bundle_paper_ids`).
        alpha, beta: quantile levels (paper 0.2 / 0.8; the script uses beta 0.9).
        weight: CVaR weight ``w`` (1.5).
        q_low, q_high: tracked quantiles to use instead of the batch's (`trackers.QuantileTracker`), or None.
        eps: added to the std of the paper scores.

    Returns:
        `(B,)` float32 advantages.
    """
    if not 0.0 < alpha < beta <= 1.0:
        raise ValueError(f"Need 0 < alpha < beta <= 1, got alpha={alpha}, beta={beta} (RiskPO: 0.2, 0.8).")
    keys, inv = torch.unique(paper_ids, return_inverse=True)
    scores = torch.zeros(keys.numel(), dtype=torch.float32, device=rewards.device).index_add_(
        0, inv, rewards.float()
    )  # (n_papers,)
    qa = torch.quantile(scores, alpha) if q_low is None else torch.tensor(q_low, device=scores.device)
    qb = torch.quantile(scores, beta) if q_high is None else torch.tensor(q_high, device=scores.device)
    a_r = (torch.minimum(torch.maximum(scores, qa), qb) - qb) / (beta - alpha)
    a_c = -(qa - scores).clamp(min=0) / alpha
    spread = scores.std() if scores.numel() > 1 else torch.ones((), device=scores.device)
    return ((weight * a_c + a_r) / (weight + 1) / (spread + eps))[inv]


def riskpo_advantages(
    rewards: torch.Tensor,
    group_ids: torch.Tensor,
    *,
    bundle_size: int = 5,
    alpha: float = 0.2,
    beta: float = 0.8,
    weight: float = 1.5,
) -> torch.Tensor:
    """RiskPO advantage from rewards and question ids: `bundle_paper_ids` then `mvar_advantages` (batch quantiles)."""
    papers = bundle_paper_ids(group_ids, bundle_size=bundle_size)
    return mvar_advantages(rewards, papers, alpha=alpha, beta=beta, weight=weight)
