"""GRPO-family variants as named compositions of the core's pure functions (optax `alias.py` style).

A variant factory takes the variant's hyper-parameters as keywords (defaults = the paper's or the anchor's, see
docs/papers.md) and returns a `Variant`: the advantage estimator used after rollout and the `Objective` used in the
update. `VARIANTS` is a plain dict literal; `get_variant("name", **overrides)` also accepts a user factory given as
``"package.module:factory"``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial

from flowrl.grpo import reduce as R
from flowrl.grpo.advantages import group_advantages
from flowrl.grpo.objective import Objective, Variant, guard_ratio, sequence_ratio, token_ratio
from flowrl.grpo.registry import lookup
from flowrl.grpo.surrogates import cispo_surrogate, clipped_surrogate, reinforce_surrogate
from flowrl.grpo.variants_llm import LLM_VARIANTS


def reinforce(*, beta: float = 0.0) -> Variant:
    """REINFORCE with a group-mean baseline: ``A = R - mean_g R``; loss ``-A logp`` averaged per sequence."""
    return Variant(
        advantages=partial(group_advantages, scale="none"),
        objective=Objective(token_ratio, reinforce_surrogate, R.seq_mean_token_mean, beta),
    )


def grpo(
    *, eps_low: float = 0.2, eps_high: float = 0.2, scale: str = "group", eps: float = 1e-4, beta: float = 0.0
) -> Variant:
    """GRPO (DeepSeekMath, arXiv 2402.03300, eq. 3): group-normalised advantage, PPO clip, seq-mean-token-mean.

    beta defaults to 0 as in TRL (the paper used 0.04 with the k3 estimator).
    """
    return Variant(
        advantages=partial(group_advantages, scale=scale, eps=eps),
        objective=Objective(
            token_ratio, partial(clipped_surrogate, eps_low=eps_low, eps_high=eps_high), R.seq_mean_token_mean, beta
        ),
    )


def dr_grpo(*, max_len: int, eps_low: float = 0.2, eps_high: float = 0.2, beta: float = 0.0) -> Variant:
    """Dr. GRPO (arXiv 2503.20783): no std division, constant normaliser ``N_seq * max_len`` (no length bias)."""
    return Variant(
        advantages=partial(group_advantages, scale="none"),
        objective=Objective(
            token_ratio,
            partial(clipped_surrogate, eps_low=eps_low, eps_high=eps_high),
            partial(R.constant_norm, max_len=max_len),
            beta,
        ),
    )


def dapo(*, eps_low: float = 0.2, eps_high: float = 0.28, beta: float = 0.0) -> Variant:
    """DAPO (arXiv 2503.14476): clip-higher (0.2 / 0.28), token-mean over the global batch, zero-std groups dropped."""
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=Objective(
            token_ratio, partial(clipped_surrogate, eps_low=eps_low, eps_high=eps_high), R.token_mean, beta
        ),
        drop_constant_groups=True,
    )


def bnpo(*, eps_low: float = 0.2, eps_high: float = 0.2, beta: float = 0.0) -> Variant:
    """TRL's `bnpo` loss type: GRPO with a token-mean over the *local* micro-batch's tokens."""
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=Objective(
            token_ratio, partial(clipped_surrogate, eps_low=eps_low, eps_high=eps_high), R.token_mean_local, beta
        ),
    )


def gspo(*, eps_low: float = 3e-4, eps_high: float = 4e-4, beta: float = 0.0) -> Variant:
    """GSPO (arXiv 2507.18071): sequence-level ratio, clip 3e-4 / 4e-4 (paper, verl example), sequence mean."""
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=Objective(
            sequence_ratio, partial(clipped_surrogate, eps_low=eps_low, eps_high=eps_high), R.seq_mean_token_mean, beta
        ),
    )


def cispo(*, eps_low: float = 1e9, eps_high: float = 4.0, beta: float = 0.0) -> Variant:
    """CISPO (MiniMax-M1, arXiv 2506.13585): clipped, detached IS weight times REINFORCE; token-mean.

    The lower bound is off by default (``eps_low`` huge, as verl's example); TRL's ``epsilon_high`` default is 4.0
    (the TRL docs recommend 4.0 for CISPO).
    """
    return Variant(
        advantages=partial(group_advantages, scale="group"),
        objective=Objective(
            token_ratio, partial(cispo_surrogate, eps_low=eps_low, eps_high=eps_high), R.token_mean, beta
        ),
    )


def flow_grpo(
    *,
    clip_range: float = 1e-4,
    adv_clip: float = 5.0,
    scale: str = "group",
    eps: float = 1e-4,
    beta: float = 0.04,
    guard: bool = False,
) -> Variant:
    """Flow-GRPO (arXiv 2505.05470, yifan123/flow_grpo): per-prompt group advantage clipped to +-5, PPO clip 1e-4 on
    the per-step Gaussian log-prob (a mean over pixels), mean over trained steps, closed-form Gaussian KL (beta).

    ``guard=True`` swaps the ratio for GRPO-Guard's RatioNorm (pass 1/Delta step weights in the batch as well);
    GRPO-Guard's own clip is 2e-6 to 4e-6 and beta 0 (`config/grpo_guard.py`).
    """
    return Variant(
        advantages=partial(group_advantages, scale=scale, eps=eps, clip=adv_clip),
        objective=Objective(
            guard_ratio if guard else token_ratio,
            partial(clipped_surrogate, eps_low=clip_range, eps_high=clip_range),
            R.token_mean,
            beta,
        ),
        drop_constant_groups=True,
    )


VARIANTS: dict[str, Callable[..., Variant]] = {
    "reinforce": reinforce,
    "grpo": grpo,
    "dr_grpo": dr_grpo,
    "dapo": dapo,
    "bnpo": bnpo,
    "gspo": gspo,
    "cispo": cispo,
    "flow_grpo": flow_grpo,
    **LLM_VARIANTS,  # ngrpo, dcpo, grpo_d, d3s, kdrl, llds, spo, gtpo, riskpo, tp_grpo, mo_grpo (docs/papers_llm.md)
}


def get_variant(name: str, **kwargs) -> Variant:
    """Build a variant by name (`VARIANTS`) or from a user factory ``"package.module:factory"``.

    Raises:
        ValueError: unknown name, listing the valid ones.
    """
    variant = lookup(name, VARIANTS, what="GRPO variant")(**kwargs)
    if not isinstance(variant, Variant):
        raise TypeError(f"{name!r} returned {type(variant).__name__}, expected flowrl.grpo.Variant.")
    return variant
