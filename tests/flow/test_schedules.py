"""Window schedules, finishing grids, timestep subsets and pruning. Run: pytest tests/flow/test_schedules.py -q"""

import pytest
import torch

from flowrl.flow import FinishSpec, RolloutPlan, StepSpec, finish_grids, time_grid, window_start, window_steps
from flowrl.flow.schedules import (
    decay_window,
    depth_noise,
    depth_prune_mask,
    exp_decay_window,
    progressive_window,
    timestep_subset_mask,
    width_prune_mask,
)


def test_progressive_with_roll_back_visits_every_start_then_restarts():
    T = 8  # starts 0..T-2 = 0..6, one move per iteration, then back to 0
    starts = [progressive_window(it, num_steps=T, interval=1, stride=1, roll_back=True) for it in range(T + 1)]
    assert starts == [0, 1, 2, 3, 4, 5, 6, 0, 1]


def test_progressive_moves_every_interval_and_clamps_without_roll_back():
    # MixGRPO defaults: +1 every 25 iterations
    assert [progressive_window(it, num_steps=25) for it in (0, 24, 25, 49, 50, 300)] == [0, 0, 1, 1, 2, 12]
    assert progressive_window(100, num_steps=5, interval=1, roll_back=False) == 3


def test_frozen_windows_never_move():
    # MixGRPO-Flash*: stride 0; and the fixed schedule
    assert {progressive_window(it, num_steps=25, interval=20, stride=0) for it in range(200)} == {0}
    assert {window_start("fixed", it, start=3) for it in range(50)} == {3}


def test_random_window_range_and_reproducibility():
    # Flow-GRPO-Fast: start ~ U{0, ..., 5 - 3}
    starts = [window_start("random", it, low=0, high=5, size=3, seed=7) for it in range(200)]
    assert set(starts) == {0, 1, 2}
    assert starts == [window_start("random", it, low=0, high=5, size=3, seed=7) for it in range(200)]
    with pytest.raises(ValueError, match="cannot hold"):
        window_start("random", 0, low=0, high=2, size=3)


def test_decay_intervals_by_hand():
    # T = 12 -> L = 10; tau(l) = max(1, floor(10 (1 - l / 10) + l / 10)): tau(0) = 10, tau(1) = 9
    # so l = 1 after 10 iterations, l = 2 after 10 + 9 = 19
    assert [decay_window(it, num_steps=12) for it in (9, 10, 18, 19)] == [0, 1, 1, 2]


def test_exp_decay_intervals_by_hand():
    # tau(l) = ceil(25 exp(-0.1 max(0, l - 13))) = 25 for l <= 13: same as progressive early on
    assert exp_decay_window(50, num_steps=25) == progressive_window(50, num_steps=25)
    # from l = 14 the interval is ceil(25 e^-0.1) = 23
    it_14 = 14 * 25
    assert exp_decay_window(it_14, num_steps=40) == 14
    assert exp_decay_window(it_14 + 22, num_steps=40) == 14 and exp_decay_window(it_14 + 23, num_steps=40) == 15


def test_unknown_schedule_lists_valid_ones():
    with pytest.raises(ValueError, match="Valid"):
        window_start("linear", 0)


def test_window_never_includes_the_final_step():
    assert window_steps(0, size=4, num_steps=25) == (0, 1, 2, 3)
    assert window_steps(23, size=4, num_steps=25) == (23,)


def test_g2rpo_strided_grids_by_hand():
    # Granular-GRPO: grid = sigmas[:k+2] ++ sigmas[k+2::g]; from the child at j = k + 1 that is [j, j+1, j+1+g, ...],
    # and the last strided point is never evaluated (x0 decoded from the point before = Euler jump to 0).
    sig = time_grid(8, shift=3.0)
    plan = RolloutPlan(sig, (StepSpec(),), FinishSpec(strides=(1, 2, 3)))
    g1, g2, g3 = finish_grids(plan, 3)
    torch.testing.assert_close(g1, sig[3:])  # stride 1 = the main grid
    # stride 2: indices [3, 4, 6, 8] -> [s3, s4, s6, 0]
    torch.testing.assert_close(g2, torch.stack([sig[3], sig[4], sig[6], sig[8]]))
    # stride 3: indices [3, 4, 7] -> last point 7 replaced by 0: [s3, s4, 0]
    torch.testing.assert_close(g3, torch.stack([sig[3], sig[4], torch.zeros((), dtype=sig.dtype)]))


def test_flash_compressed_grid_by_hand():
    # MixGRPO sampling_utils: n = int(max((T - l_e) * rho, 1)) points of shift(linspace(t_{l_e+1}, 0, n));
    # T = 25, window 0..3 (l_e = 3): n = int(22 * 0.4) = 8 points -> 7 steps from sigmas[4]
    sig = time_grid(25, shift=3.0)
    plan = RolloutPlan(sig, (StepSpec(),) * 4, FinishSpec("dpmpp_2m", compress=0.4, shift=3.0))
    (grid,) = finish_grids(plan, 4)
    t0 = 1 - 4 / 25
    expected = torch.linspace(t0, 0, 8, dtype=torch.float64)
    expected = 3 * expected / (1 + 2 * expected)
    torch.testing.assert_close(grid, expected)


def test_timestep_subset_keeps_sixty_percent_per_trajectory():
    # DanceGRPO: int((16 - 1) * 0.6) = 9 of the 15 trainable steps of every trajectory
    steps = torch.arange(15).repeat(4)
    traj = torch.arange(4).repeat_interleave(15)
    keep = timestep_subset_mask(steps, traj, num_steps=16, fraction=0.6, generator=torch.Generator().manual_seed(0))
    assert keep.reshape(4, 15).sum(1).tolist() == [9, 9, 9, 9]
    assert not torch.equal(keep.reshape(4, 15)[0], keep.reshape(4, 15)[1])  # independent draws


def test_depth_noise_repeats_the_last_level():
    assert [depth_noise((0.9, 0.7, 0.5), d) for d in range(5)] == [0.9, 0.7, 0.5, 0.5, 0.5]


def test_depth_pruning_slides_towards_the_root():
    depth = torch.arange(20)
    # D = {15..18}; at iteration 65 slide = min(65 // 30, 15 - 9) = 2 -> drop depths 13..16
    keep = depth_prune_mask(depth, depths=(15, 16, 17, 18), iteration=65)
    assert torch.nonzero(~keep).flatten().tolist() == [13, 14, 15, 16]
    assert bool(depth_prune_mask(depth, depths=()).all())


def test_width_pruning_by_hand():
    adv = torch.tensor([0.1, -2.0, 3.0, 0.5, -1.0, 2.0])
    branch = torch.tensor([0, 0, 0, 1, 1, 1])
    # mode 1: top round(3 * 0.5) = 2 per branch: {0.1, 3.0} and {0.5, 2.0}
    assert width_prune_mask(adv, branch, ratio=0.5, mode=1).tolist() == [True, False, True, True, False, True]
    # mode 2: best and worst round(6 * 0.25) = 2 each
    assert width_prune_mask(adv, branch, ratio=0.5, mode=2).tolist() == [False, True, True, False, True, True]
