"""The shared GRPO core: pure torch functions on `(B, T)` tensors, one equation each (docs/architecture.md).

Both branches hand the core per trained edge (a generated token or a denoising transition) `logp`, `old_logp`,
an advantage and a mask. This package imports only torch.

Slots: 1 reward aggregation (`aggregate`), 2 advantages (`advantages`, `tree`), 3 selection masks (`masks`),
4 ratio + surrogate (`ratios`, `surrogates`), 5 per-edge weights (`weights`), 6 reductions (`reduce`),
7 regularisers (`kl`); composed by `objective.policy_loss` and named in `variants.VARIANTS`.
"""

from flowrl.grpo.advantages import (
    batch_std,
    broadcast_advantages,
    clip_advantages,
    group_advantages,
    group_stats,
    rloo_advantages,
)
from flowrl.grpo.aggregate import normalize_then_sum, sum_then_normalize, weighted_sum
from flowrl.grpo.kl import KL_ESTIMATORS, gaussian_kl_same_std, kl_k1, kl_k2, kl_k3, straight_through
from flowrl.grpo.masks import nonzero_variance_mask, top_entropy_mask, truncation_mask
from flowrl.grpo.objective import (
    Objective,
    PolicyBatch,
    guard_ratio,
    policy_loss,
    sequence_ratio,
    token_ratio,
)
from flowrl.grpo.ratios import ratio_norm_log_ratio, sequence_log_ratio, token_log_ratio
from flowrl.grpo.reduce import (
    Normalizer,
    constant_norm,
    normalizer,
    seq_mean_token_mean,
    seq_mean_token_sum,
    token_mean,
    token_mean_local,
)
from flowrl.grpo.surrogates import cispo_surrogate, clipped_surrogate, reinforce_surrogate
from flowrl.grpo.tree import (
    depthwise_advantages,
    fuse_children_mean,
    fuse_leaf_mean,
    fuse_logp_softmax,
    leaf_first_advantages,
    multi_granular_advantages,
    sibling_advantages,
)
from flowrl.grpo.variants import VARIANTS, Variant, get_variant
from flowrl.grpo.weights import inverse_delta_weights, noise_aware_weights

__all__ = [
    "KL_ESTIMATORS",
    "VARIANTS",
    "Normalizer",
    "Objective",
    "PolicyBatch",
    "Variant",
    "batch_std",
    "broadcast_advantages",
    "cispo_surrogate",
    "clip_advantages",
    "clipped_surrogate",
    "constant_norm",
    "depthwise_advantages",
    "fuse_children_mean",
    "fuse_leaf_mean",
    "fuse_logp_softmax",
    "leaf_first_advantages",
    "multi_granular_advantages",
    "sibling_advantages",
    "gaussian_kl_same_std",
    "get_variant",
    "group_advantages",
    "group_stats",
    "guard_ratio",
    "inverse_delta_weights",
    "kl_k1",
    "kl_k2",
    "kl_k3",
    "noise_aware_weights",
    "nonzero_variance_mask",
    "normalize_then_sum",
    "normalizer",
    "policy_loss",
    "ratio_norm_log_ratio",
    "reinforce_surrogate",
    "rloo_advantages",
    "seq_mean_token_mean",
    "seq_mean_token_sum",
    "sequence_log_ratio",
    "sequence_ratio",
    "straight_through",
    "sum_then_normalize",
    "token_log_ratio",
    "token_mean",
    "token_mean_local",
    "token_ratio",
    "top_entropy_mask",
    "truncation_mask",
    "weighted_sum",
]
