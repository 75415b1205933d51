"""DeepVideo-R1's difficulty-aware data augmentation (arXiv 2506.07464), the piece beside Reg-GRPO: move each
question towards a solvable difficulty so its group's rewards differ (GRPO's "vanishing advantage": a group whose
completions all score the same gives no gradient).

Our notes of the paper give the structure only: a question's difficulty is its reward measured against a reference
reward; an easy question is made harder by perturbing its visual input, a hard one easier by adding a reasoning cue.
Every quantity below that the notes do not give is a keyword argument marked [?]:

    r_bar_q = mean_{i in group q} r_i                                   (the question's group mean reward)
    r_ref  <- m r_ref + (1 - m) mean_q r_bar_q                          (running reference, m = 0.9 [?]; the
                                                                        first step sets r_ref = mean_q r_bar_q)
    d_q     = r_bar_q - r_ref                                           (signed difficulty gap, against r_ref
                                                                        before this step's update [?])
    action  = harder if d_q > tau;  easier if d_q < -tau;  else keep     (tau = 0.1 [?])
    harder:  x' = clip(x + sigma_q eps, 0, 1),  eps ~ N(0, I),
             sigma_q = sigma_max min(1, d_q / (1 - r_ref))              (sigma_max = 0.3 [?]: the paper perturbs
                                                                        video frames; Gaussian pixel noise is ours)
    easier:  the first k_q objects of the reference reasoning start the completion's <think>,
             k_q = ceil(rho n_q min(1, -d_q / r_ref))                   (rho = 0.5 [?]: the paper's cue is a
                                                                        reasoning hint; a prefix of the gold
                                                                        object list is our ShapeWorld form)

``n_q`` is the number of objects in the question's reference reasoning. The gaps are normalised by the room left on
their side (``1 - r_ref`` above, ``r_ref`` below), so the strongest augmentation goes to a question as far from the
reference as it can be. Pure functions on tensors (torch only), tested on hand-computed values; not yet wired into a
`train-vlm` preset (it needs per-row image and prompt edits in the step's collect).
"""

from __future__ import annotations

import math

import torch

HARDER, KEEP, EASIER = 1, 0, -1


def update_reference(reference: float | None, group_means: torch.Tensor, *, momentum: float = 0.9) -> float:
    """``r_ref <- m r_ref + (1 - m) mean(group_means)``; the first call (`reference` None) returns the mean."""
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"momentum must be in [0, 1), got {momentum}: it is the running reference's decay [?].")
    if group_means.numel() == 0:
        raise ValueError("update_reference needs at least one question's group mean reward.")
    mean = float(group_means.float().mean())
    return mean if reference is None else momentum * reference + (1.0 - momentum) * mean


def difficulty_actions(group_means: torch.Tensor, reference: float, *, tau: float = 0.1) -> torch.Tensor:
    """`(Q,)` int: HARDER (1) where ``d_q > tau``, EASIER (-1) where ``d_q < -tau``, else KEEP (0)."""
    if tau < 0:
        raise ValueError(f"tau must be >= 0, got {tau}: it is the dead band around the reference reward [?].")
    d = group_means.float() - reference
    return (d > tau).long() - (d < -tau).long()


def noise_scales(group_means: torch.Tensor, reference: float, *, sigma_max: float = 0.3) -> torch.Tensor:
    """`(Q,)` pixel-noise std ``sigma_max min(1, d_q / (1 - r_ref))`` for questions above the reference, 0 below."""
    d = (group_means.float() - reference).clamp(min=0.0)
    room = max(1.0 - reference, 1e-8)
    return sigma_max * (d / room).clamp(max=1.0)


def noisy_images(images: torch.Tensor, sigmas: torch.Tensor, *, generator: torch.Generator | None = None):
    """``clip(x + sigma eps, 0, 1)`` for float `(Q, 3, H, W)` images in [0, 1] and `(Q,)` stds."""
    if images.ndim != 4 or not images.is_floating_point():
        raise TypeError(f"noisy_images expects float (Q, 3, H, W) images in [0, 1], got {images.dtype} "
                        f"{tuple(images.shape)}.")  # fmt: skip
    if sigmas.shape != images.shape[:1]:
        raise ValueError(f"one noise std per image: got {tuple(sigmas.shape)} stds for {images.shape[0]} images.")
    eps = torch.randn(images.shape, generator=generator, dtype=images.dtype, device=images.device)
    return (images + sigmas.to(images)[:, None, None, None] * eps).clamp(0.0, 1.0)


def cue_lengths(group_means: torch.Tensor, reference: float, n_objects: torch.Tensor, *, rho: float = 0.5):
    """`(Q,)` objects of the reference reasoning given as a cue: ``ceil(rho n_q min(1, -d_q / r_ref))`` below the
    reference, 0 above it."""
    if not 0.0 <= rho <= 1.0:
        raise ValueError(f"rho must be in [0, 1], got {rho}: it is the largest share of the reasoning given [?].")
    if n_objects.shape != group_means.shape:
        raise ValueError(f"one object count per question: {tuple(n_objects.shape)} for {tuple(group_means.shape)}.")
    d = (reference - group_means.float()).clamp(min=0.0)
    share = (d / max(reference, 1e-8)).clamp(max=1.0)
    # ceil after rounding off float noise (a product of 1 + 1e-7 must give 1, not 2)
    cues = [math.ceil(round(rho * float(n) * float(s), 6)) for n, s in zip(n_objects, share, strict=True)]
    return torch.tensor(cues, dtype=torch.long)


def reasoning_cue(think: str, k: int) -> str:
    """The first `k` ``colour shape`` objects of a reference reasoning (the ShapeWorld cue)."""
    return " ".join(think.split()[: 2 * k])
