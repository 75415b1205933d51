"""Time grids and the TempFlow normaliser computed from them. Run: pytest tests/flow/test_grid.py -q"""

import math

import pytest
import torch

from flowrl.flow import build_method, flux_mu, flux_time_grid, rollout, sd3_time_grid, step_weights, time_grid
from flowrl.flow.grid import named_grid

# stabilityai/stable-diffusion-3.5-medium scheduler/scheduler_config.json (the same for SD3-Medium and SD3.5-Large)
SD35_SCHEDULER_CONFIG = {"_class_name": "FlowMatchEulerDiscreteScheduler", "num_train_timesteps": 1000, "shift": 3.0}


def test_static_shift_by_hand():
    # linspace(1, 0, 3) = [1, 0.5, 0]; shift 3: 3 * 0.5 / (1 + 2 * 0.5) = 0.75
    torch.testing.assert_close(time_grid(2, shift=3.0), torch.tensor([1.0, 0.75, 0.0], dtype=torch.float64))
    torch.testing.assert_close(time_grid(4, shift=1.0), torch.linspace(1, 0, 5, dtype=torch.float64))


def test_flux_dynamic_shift_by_hand():
    # 1024^2 FLUX image: (1024 / 16)^2 = 4096 tokens -> mu = max_shift = 1.15; sigma'(0.5) = e^mu / (e^mu + 1)
    assert flux_mu(4096) == pytest.approx(1.15)
    assert flux_mu(256) == pytest.approx(0.5)
    grid = flux_time_grid(2, image_seq_len=4096)
    assert float(grid[1]) == pytest.approx(math.exp(1.15) / (math.exp(1.15) + 1))
    assert float(grid[0]) == 1.0 and float(grid[-1]) == 0.0


@pytest.mark.parametrize("T", [10, 28, 40])
def test_sd3_grid_is_the_diffusers_scheduler(T):
    from diffusers import FlowMatchEulerDiscreteScheduler

    scheduler = FlowMatchEulerDiscreteScheduler.from_config(SD35_SCHEDULER_CONFIG)
    scheduler.set_timesteps(T)
    ours = sd3_time_grid(T, shift=3.0)
    assert ours.shape == (T + 1,)
    torch.testing.assert_close(ours, scheduler.sigmas.double(), atol=1e-6, rtol=0)


def test_sd3_grid_by_hand():
    # sigma_min = shift(1 / 1000) = 0.003 / 1.002 = 0.0029940; T = 2: linspace(1, sigma_min, 2) = [1, sigma_min],
    # shifted again: 3 * 0.0029940 / (1 + 2 * 0.0029940) = 0.0089286 (= 0.009 / 1.008), then 0 appended
    grid = sd3_time_grid(2, shift=3.0)
    torch.testing.assert_close(grid, torch.tensor([1.0, 0.009 / 1.008, 0.0], dtype=torch.float64), atol=1e-7, rtol=0)
    # the T = 10 numbers: 1, .960, .913, .858, .790, .707, .602, .465, .278, .0089, 0
    expected = [1, 0.960, 0.913, 0.858, 0.790, 0.707, 0.602, 0.465, 0.278, 0.0089, 0]
    torch.testing.assert_close(sd3_time_grid(10), torch.tensor(expected, dtype=torch.float64), atol=6e-4, rtol=0)
    torch.testing.assert_close(named_grid("sd3", 10, shift=3.0), sd3_time_grid(10))
    torch.testing.assert_close(named_grid("linear", 10, shift=3.0), time_grid(10))
    with pytest.raises(ValueError, match="Unknown time grid 'karras'"):
        named_grid("karras", 10, shift=3.0)


def test_builders_take_the_grid_of_their_paper():
    assert build_method("flow_grpo").plan.sigmas[-2] < 0.01  # SD3.5-M methods: diffusers' SD3 grid
    assert build_method("mixgrpo").plan.sigmas[-2] > 0.1  # FastVideo FLUX methods: shifted linspace
    torch.testing.assert_close(build_method("dance_grpo", grid="sd3").plan.sigmas, sd3_time_grid(16))


def test_time_grid_rejects_bad_arguments():
    with pytest.raises(ValueError, match="num_inference_steps"):
        time_grid(0)
    with pytest.raises(ValueError, match="shift"):
        time_grid(4, shift=0.0)


def _tempflow_normaliser(**kwargs) -> float:
    # TempFlow weight w_i = std_i / mean_j std_j, so w_i / std_i = 1 / mean std: the repo's hard-coded constant
    method = build_method("tempflow_grpo", num_seeds=1, num_probes=2, **kwargs)
    T = method.plan.num_inference_steps
    tree = rollout(lambda x, s, c: torch.zeros_like(x), method.plan, None, torch.randn(1, 1, 1, 2, 2))
    w = step_weights(tree, noise_aware=True)
    steps = tree.edges.step
    per_step = torch.stack([w[steps == i][0] for i in range(T - 1)])
    assert per_step.mean().item() == pytest.approx(1.0, abs=1e-6)  # weights average 1 over the trained steps
    std = torch.stack([tree.edges.std[steps == i][0] for i in range(T - 1)])
    return (per_step / std).mean().item()


def test_tempflow_normaliser_sd35():
    # docs/flow_methods.md, tempflow: SD3.5-M, 10 steps, shift 3, a = 0.7 -> 1 / mean(sigma_i sqrt(Delta_i)) over the 9
    # trained steps. On diffusers' SD3 grid (what TempFlow samples on) it is 2.252: the repo's hard-coded 2.25; on the
    # shifted linspace(1, 0, 11) it would be 2.24.
    assert _tempflow_normaliser(num_inference_steps=10, shift=3.0, noise_level=0.7) == pytest.approx(2.252, abs=1e-3)
    linear = _tempflow_normaliser(num_inference_steps=10, shift=3.0, noise_level=0.7, grid="linear")
    assert linear == pytest.approx(2.24, abs=0.01)


def test_tempflow_normaliser_flux():
    # FLUX 1024^2 (dynamic shift e^1.15), 10 steps, a = 0.9 -> 1.73 (repo constant 1.73)
    method = build_method("tempflow_grpo", num_inference_steps=10, noise_level=0.9)
    grid = flux_time_grid(10, image_seq_len=4096)
    stds = []
    for i in range(9):
        s, s_next = float(grid[i]), float(grid[i + 1])
        g = 0.9 * math.sqrt(s / (1 - (s_next if s == 1.0 else s)))
        stds.append(g * math.sqrt(s - s_next))
    assert 1 / (sum(stds) / 9) == pytest.approx(1.73, abs=0.01)  # the hand formula on the FLUX grid
    plan = method.plan._replace(sigmas=grid)
    tree = rollout(lambda x, s, c: torch.zeros_like(x), plan, None, torch.randn(1, 4, 1, 2, 2))
    w = step_weights(tree, noise_aware=True)
    first = torch.nonzero(tree.edges.step == 0).flatten()[0]
    assert (w[first] / tree.edges.std[first]).item() == pytest.approx(1.73, abs=0.01)
