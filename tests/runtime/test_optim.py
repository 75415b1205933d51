"""The learning-rate schedule (hand values) and its setter on a restored optimizer."""

import math

import pytest
import torch

from flowrl.runtime.optim import make_optimizer, scheduled_lr, set_lr


def test_constant_schedule_keeps_lr():
    assert [scheduled_lr(i, total=4, lr=3e-5) for i in range(4)] == [3e-5] * 4


def test_linear_decay_after_its_start_hand_values():
    # total 11: the decay starts at step 0.5 x 10 = 5 and reaches final_ratio x lr at step 10, in steps of 1/5
    lrs = [scheduled_lr(i, total=11, lr=1.0, schedule="linear", decay_start=0.5, final_ratio=0.0) for i in range(11)]
    assert lrs == pytest.approx([1.0] * 6 + [0.8, 0.6, 0.4, 0.2, 0.0])
    # with a floor: 0.1 + 0.9 x (1 - t)
    assert scheduled_lr(8, total=11, lr=2.0, schedule="linear", decay_start=0.5, final_ratio=0.1) == pytest.approx(
        2.0 * (0.1 + 0.9 * 0.4)
    )


def test_cosine_decay_hand_values():
    # from step 0 over 4 steps: t = i / 4, lr x (1 + cos(pi t)) / 2
    lrs = [scheduled_lr(i, total=5, lr=1.0, schedule="cosine") for i in range(5)]
    assert lrs == pytest.approx([(1 + math.cos(math.pi * i / 4)) / 2 for i in range(5)])
    assert lrs[0] == 1.0 and lrs[-1] == pytest.approx(0.0)


def test_warmup_then_decay_with_a_progress_floor_hand_values():
    # warm-up 4: (i + 1) / 4; then cosine from step 4 to step 8 (total 9), t = (i - 4) / 4, floor 0.1
    lrs = [scheduled_lr(i, total=9, lr=1.0, schedule="cosine", final_ratio=0.1, warmup=4) for i in range(9)]
    cos = [0.1 + 0.9 * (1 + math.cos(math.pi * (i - 4) / 4)) / 2 for i in range(4, 9)]
    assert lrs == pytest.approx([0.25, 0.5, 0.75, 1.0] + cos)
    # a progress floor (a time budget 3/4 spent) overrides the step count, even at the decay's first step
    floor = scheduled_lr(4, total=9, lr=1.0, schedule="cosine", final_ratio=0.1, warmup=4, min_progress=0.75)
    assert floor == pytest.approx(0.1 + 0.9 * (1 + math.cos(0.75 * math.pi)) / 2)
    assert scheduled_lr(2, total=9, lr=1.0, schedule="cosine", warmup=4, min_progress=0.75) == 0.75  # warm-up first


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"schedule": "step"}, "Unknown learning-rate schedule"),
        ({"schedule": "linear", "decay_start": 1.0}, "decay_start must be in"),
        ({"schedule": "linear", "final_ratio": -0.1}, "final_ratio in"),
    ],
)
def test_bad_schedule_settings_are_refused(kwargs, match):
    with pytest.raises(ValueError, match=match):
        scheduled_lr(0, total=10, lr=1.0, **kwargs)


def test_set_lr_overrides_the_rate_a_checkpoint_restored():
    w = torch.nn.Parameter(torch.ones(3))
    saved = make_optimizer([w], lr=3e-5)
    state = saved.state_dict()
    restored = make_optimizer([w], lr=1e-5)
    restored.load_state_dict(state)  # torch restores the saved param_groups, lr included
    assert restored.param_groups[0]["lr"] == 3e-5
    set_lr(restored, 1e-5)
    assert restored.param_groups[0]["lr"] == 1e-5
