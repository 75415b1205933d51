"""Training-time schedules that feed rollout plans: SDE windows, per-depth noise, timestep subsets and pruning.

Window schedules are pure functions of the training iteration (stateless, so a resumed run gets the same window):
each returns the window start l; the window is the steps ``{l, ..., min(l + size, T - 1) - 1}`` (the final step
T - 1 -> 0 is never trained). Pick one by name from `WINDOW_SCHEDULES`.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch


def window_steps(start: int, *, size: int, num_steps: int) -> tuple[int, ...]:
    """The trained window ``{start, ..., min(start + size, T - 1) - 1}`` (never the last step)."""
    if not 0 <= start <= num_steps - 2:
        raise ValueError(f"Window start {start} outside 0..T-2 = 0..{num_steps - 2}.")
    return tuple(range(start, min(start + size, num_steps - 1)))


def fixed_window(iteration: int, *, start: int = 0, **_: object) -> int:
    """A frozen window (MixGRPO-Flash* uses stride 0, i.e. this, at l = 0)."""
    del iteration
    return start


def random_window(iteration: int, *, low: int, high: int, size: int, seed: int = 0, **_: object) -> int:
    """Flow-GRPO-Fast: ``l ~ U{low, ..., high - size}`` drawn per iteration (`sde_window_range`,
    `train_sd3_fast.py`); seeded by (seed, iteration) so every rank draws the same window."""
    if high - size < low:
        raise ValueError(f"random_window: range [{low}, {high}) cannot hold a window of {size} steps.")
    g = torch.Generator().manual_seed(seed * 1_000_003 + iteration)
    return int(torch.randint(low, high - size + 1, (1,), generator=g))


def _progressive(
    iteration: int, *, num_steps: int, stride: int, roll_back: bool, interval: Callable[[int], int]
) -> int:
    # MixGRPO `grpo_states.py`: every interval(l) iterations l += stride; past T - 2 roll back to 0 (or clamp)
    start, since = 0, 0
    for _ in range(iteration):
        since += 1
        if since >= interval(start):
            since = 0
            start += stride
            if start > num_steps - 2:
                start = 0 if roll_back else num_steps - 2
    return start


def progressive_window(
    iteration: int, *, num_steps: int, interval: int = 25, stride: int = 1, roll_back: bool = True, **_: object
) -> int:
    """MixGRPO progressive window: l moves by `stride` every `interval` iterations, from 0 (highest noise);
    past T - 2 it rolls back to 0 (`roll_back`, on in the official scripts) or stays at T - 2.

    Defaults: interval (`iters_per_group`) 25, stride (`prog_overlap_step`) 1 (MixGRPO scripts; Flash uses 20 and
    Flash* stride 0)."""
    return _progressive(
        iteration, num_steps=num_steps, stride=stride, roll_back=roll_back, interval=lambda _start: interval
    )


def decay_window(
    iteration: int,
    *,
    num_steps: int,
    stride: int = 1,
    roll_back: bool = True,
    interval_max: int = 10,
    interval_min: int = 1,
    **_: object,
) -> int:
    """MixGRPO `decay`: the interval shrinks linearly with l,
    ``tau(l) = max(tau_min, floor(tau_max (1 - l / L) + tau_min l / L))``, L = T - 2 (tau_max 10, tau_min 1)."""
    span = max(num_steps - 2, 1)

    def interval(start: int) -> int:
        return max(interval_min, math.floor(interval_max * (1 - start / span) + interval_min * start / span))

    return _progressive(iteration, num_steps=num_steps, stride=stride, roll_back=roll_back, interval=interval)


def exp_decay_window(
    iteration: int,
    *,
    num_steps: int,
    stride: int = 1,
    roll_back: bool = True,
    interval: int = 25,
    rate: float = 0.1,
    decay_start: int = 13,
    **_: object,
) -> int:
    """MixGRPO `exp_decay`: ``tau(l) = ceil(tau_0 exp(-k max(0, l - l_0)))`` with k = 0.1 and l_0 = 13 (the official
    constant, about half of T = 25)."""
    return _progressive(
        iteration,
        num_steps=num_steps,
        stride=stride,
        roll_back=roll_back,
        interval=lambda start: math.ceil(interval * math.exp(-rate * max(0, start - decay_start))),
    )


WINDOW_SCHEDULES: dict[str, Callable[..., int]] = {
    "fixed": fixed_window,
    "random": random_window,
    "progressive": progressive_window,
    "decay": decay_window,
    "exp_decay": exp_decay_window,
}


def window_start(kind: str, iteration: int, **kwargs) -> int:
    """`WINDOW_SCHEDULES[kind](iteration, **kwargs)`; unknown kinds raise with the valid options."""
    if kind not in WINDOW_SCHEDULES:
        raise ValueError(f"Unknown window schedule {kind!r}. Valid: {sorted(WINDOW_SCHEDULES)}.")
    return WINDOW_SCHEDULES[kind](iteration, **kwargs)


def depth_noise(levels: tuple[float, ...], depth: int) -> float:
    """Per-depth noise level (Dynamic-TreeRPO "dynamic noise intensity per tree depth"): `levels[depth]`, the last
    entry repeating beyond the list."""
    if not levels:
        raise ValueError("`levels` must list at least one noise level (one per tree depth).")
    return levels[min(depth, len(levels) - 1)]


def timestep_subset_mask(
    step: torch.Tensor,
    trajectory: torch.Tensor,
    *,
    num_steps: int,
    fraction: float,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """DanceGRPO timestep selection: per trajectory, a random permutation of the ``T - 1`` trainable steps, of which
    the first ``int((T - 1) * fraction)`` are trained (`timestep_fraction` 0.6).

    Args:
        step: `(E,)` main-grid step of each edge.
        trajectory: `(E,)` id of the trajectory each edge belongs to (its leaf, for chains).

    Returns:
        `(E,)` bool mask of selected edges.
    """
    keep = int((num_steps - 1) * fraction)
    ids = torch.unique(trajectory)
    # rank of each step in a per-trajectory random permutation: (n_traj, T - 1)
    ranks = torch.argsort(torch.rand(ids.numel(), num_steps - 1, generator=generator), dim=1).argsort(dim=1)
    row = torch.searchsorted(ids, trajectory)
    return ranks[row, step.clamp(max=num_steps - 2)] < keep


def depth_prune_mask(
    depth: torch.Tensor, *, depths: tuple[int, ...], iteration: int = 0, interval: int = 30, stop_depth: int = 9
) -> torch.Tensor:
    """BranchGRPO depth pruning: drop edges whose child depth is in `depths`, the set sliding towards the root by
    ``min(iteration // interval, min(depths) - stop_depth)`` (interval 30, stop depth 9 in the official script).

    Returns:
        `(E,)` bool, True = keep.
    """
    if not depths:
        return torch.ones_like(depth, dtype=torch.bool)
    slide = max(0, min(iteration // interval, min(depths) - stop_depth))
    pruned = torch.tensor([d - slide for d in depths], dtype=depth.dtype)
    return ~torch.isin(depth, pruned)


def width_prune_per_branch(adv: torch.Tensor, branch: torch.Tensor, *, ratio: float = 0.5) -> torch.Tensor:
    """BranchGRPO width pruning, mode 1: within each last-split branch keep the top `ratio` of edges by advantage.

    Args:
        adv: `(E,)` advantages of the candidate edges (those after the last split).
        branch: `(E,)` id of the last-split branch each edge belongs to.

    Returns:
        `(E,)` bool, True = keep.
    """
    keep = torch.zeros_like(adv, dtype=torch.bool)
    for b in torch.unique(branch).tolist():
        sel = torch.nonzero(branch == b).flatten()
        k = max(1, int(round(sel.numel() * ratio)))
        keep[sel[torch.topk(adv[sel], k).indices]] = True
    return keep


def width_prune_extremes(adv: torch.Tensor, branch: torch.Tensor, *, ratio: float = 0.5) -> torch.Tensor:
    """BranchGRPO width pruning, mode 2: keep the best ``ratio / 2`` and the worst ``ratio / 2`` of all candidate
    edges (`branch` unused; same signature as `width_prune_per_branch`)."""
    del branch
    keep = torch.zeros_like(adv, dtype=torch.bool)
    k = max(1, int(round(adv.numel() * ratio / 2)))
    order = torch.argsort(adv)
    keep[order[:k]] = True
    keep[order[-k:]] = True
    return keep


WIDTH_PRUNERS: dict[int, Callable[..., torch.Tensor]] = {1: width_prune_per_branch, 2: width_prune_extremes}
"""BranchGRPO's `width_pruning_mode` values and their rules."""


def width_prune_mask(adv: torch.Tensor, branch: torch.Tensor, *, ratio: float = 0.5, mode: int = 1) -> torch.Tensor:
    """`WIDTH_PRUNERS[mode](adv, branch, ratio=ratio)`: `(E,)` bool keep-mask; unknown modes raise."""
    if mode not in WIDTH_PRUNERS:
        raise ValueError(f"Unknown width pruning mode {mode}. Valid: 1 (top ratio per branch), 2 (best and worst).")
    return WIDTH_PRUNERS[mode](adv, branch, ratio=ratio)
