"""Step kernels against closed forms and torch.distributions. Run: pytest tests/flow/test_kernels.py -q

Closed-form velocities used here (rectified flow, x = (1 - sigma) x0 + sigma eps, v = E[eps - x0 | x]):
* point mass x0 = mu: eps = (x - (1 - sigma) mu) / sigma, so v = eps - mu = (x - mu) / sigma exactly.
"""

import math

import pytest
import torch

from flowrl.flow import cps, dance_sde, dpmpp_2m, flow_sde, gaussian_logprob, ode_euler, time_grid
from flowrl.flow.grid import flux_time_grid
from flowrl.flow.kernels import pooled_gaussian_logprob

MU = torch.tensor([[0.3, -1.2], [2.0, 0.5]], dtype=torch.float64)  # (2, 2): a point-mass "image"


def point_mass_v(x: torch.Tensor, sigma: float) -> torch.Tensor:
    return (x - MU) / sigma


def random_grid(n: int, seed: int) -> torch.Tensor:
    # any strictly decreasing grid from 1 to 0: sorted uniform interior points
    g = torch.Generator().manual_seed(seed)
    inner = torch.sort(torch.rand(n - 1, generator=g, dtype=torch.float64), descending=True).values
    return torch.cat([torch.ones(1, dtype=torch.float64), inner, torch.zeros(1, dtype=torch.float64)])


@pytest.mark.parametrize(
    "grid",
    [
        time_grid(1),
        time_grid(7, shift=3.0),
        random_grid(13, 0),
        random_grid(4, 1),
        flux_time_grid(5, image_seq_len=1024),
    ],
)
def test_euler_lands_on_point_mass(grid):
    # x_next = x - Delta (x - mu) / sigma = mu + (sigma_next / sigma)(x - mu): telescopes to mu at sigma = 0
    x = torch.randn(3, 2, 2, dtype=torch.float64)
    for s, s_next in zip(grid[:-1].tolist(), grid[1:].tolist(), strict=True):
        x = ode_euler(x, point_mass_v(x, s), s, s_next).mean
    torch.testing.assert_close(x, MU.expand_as(x), atol=1e-6, rtol=0)


@pytest.mark.parametrize("grid", [time_grid(1), time_grid(7, shift=3.0), random_grid(13, 2), random_grid(3, 3)])
def test_dpmpp_2m_exact_on_point_mass(grid):
    # x0_hat = x - sigma v = mu at every step, so the 2nd-order correction (D0 - D_prev) vanishes and the first-order
    # update mu + (sigma_next / sigma)(x - mu) telescopes to mu as for Euler
    x = torch.randn(3, 2, 2, dtype=torch.float64)
    prev_x0, prev_sigma = None, None
    for s, s_next in zip(grid[:-1].tolist(), grid[1:].tolist(), strict=True):
        v = point_mass_v(x, s)
        x, prev_x0, prev_sigma = dpmpp_2m(x, v, s, s_next, prev_x0=prev_x0, prev_sigma=prev_sigma).mean, x - s * v, s
    torch.testing.assert_close(x, MU.expand_as(x), atol=1e-6, rtol=0)


def test_dpmpp_2m_is_second_order():
    # Gaussian data N(m, s^2) has an affine closed-form velocity (derived in test_statistics.py); the exact ODE maps
    # x_1 = eps to m + s eps. Doubling the steps should cut DPM++2M's error by ~4 and Euler's by ~2 (asymptotically:
    # the first step from sigma = 1 and the last into 0 are first order, so use fine grids).
    m, s = 0.5, 0.6

    def v(x, sig):
        a = 1 - sig
        var = a**2 * s**2 + sig**2
        r = x - a * m
        return sig / var * r - (m + a * s**2 / var * r)

    eps = torch.linspace(-2, 2, 9, dtype=torch.float64)
    exact = m + s * eps

    def solve(n, kernel):
        grid, x, prev = time_grid(n, shift=1.0), eps.clone(), (None, None)
        for a, b in zip(grid[:-1].tolist(), grid[1:].tolist(), strict=True):
            vel = v(x, a)
            step = dpmpp_2m(x, vel, a, b, prev_x0=prev[0], prev_sigma=prev[1]) if kernel else ode_euler(x, vel, a, b)
            x, prev = step.mean, (x - a * vel, a)
        return (x - exact).abs().max().item()

    e_dpm, e_dpm2 = solve(40, True), solve(80, True)
    e_eul, e_eul2 = solve(40, False), solve(80, False)
    assert e_dpm < e_eul / 5
    assert e_dpm / e_dpm2 > 3.0 and 1.8 < e_eul / e_eul2 < 2.2


@pytest.mark.parametrize("sigma, sigma_next", [(1.0, 0.8), (0.6, 0.45), (0.1, 0.0)])
def test_zero_noise_reproduces_the_ode_step(sigma, sigma_next):
    x, v = torch.randn(4, 3, 5, 5), torch.randn(4, 3, 5, 5)
    ode = ode_euler(x, v, sigma, sigma_next).mean
    for step in (
        flow_sde(x, v, sigma, sigma_next, noise_level=0.0),
        dance_sde(x, v, sigma, sigma_next, eta=0.0),
        cps(x, v, sigma, sigma_next, noise_level=0.0),
    ):
        # cps at a = 0: (1 - s')(x - s v) + s'(x + (1 - s) v) = x + (s' - s) v, the Euler step (DDIM)
        torch.testing.assert_close(step.mean, ode, atol=1e-6, rtol=0)
        assert float(step.std.max()) == 0.0


def test_flow_sde_matches_the_published_formula():
    # docs/flow_methods.md: std_t = a sqrt(s / (1 - s)) (sigma_max = sigmas[1] in place of s when s = 1),
    # mean = x (1 + std_t^2 dt / (2 s)) + v (1 + std_t^2 (1 - s) / (2 s)) dt, dt = s' - s, std = std_t sqrt(-dt)
    x, v = torch.randn(2, 4, dtype=torch.float64), torch.randn(2, 4, dtype=torch.float64)
    for s, s_next in [(1.0, 0.9), (0.7, 0.5)]:
        std_t = 0.7 * math.sqrt(s / (1 - (s_next if s == 1.0 else s)))
        dt = s_next - s
        mean = x * (1 + std_t**2 * dt / (2 * s)) + v * (1 + std_t**2 * (1 - s) / (2 * s)) * dt
        step = flow_sde(x, v, s, s_next, noise_level=0.7)
        torch.testing.assert_close(step.mean, mean)
        torch.testing.assert_close(float(step.std), std_t * math.sqrt(-dt))


def test_kernels_broadcast_per_sample_sigma_on_video_latents():
    # (B, C, F, H, W) latents with one sigma per sample equal the per-sample scalar calls (rank-agnostic)
    x, v = torch.randn(3, 2, 4, 3, 3), torch.randn(3, 2, 4, 3, 3)
    sig, sig_next = torch.tensor([1.0, 0.5, 0.2]), torch.tensor([0.9, 0.4, 0.1])
    batched = flow_sde(x, v, sig, sig_next, noise_level=0.7)
    for b in range(3):
        one = flow_sde(x[b : b + 1], v[b : b + 1], float(sig[b]), float(sig_next[b]), noise_level=0.7)
        torch.testing.assert_close(batched.mean[b : b + 1], one.mean)
        torch.testing.assert_close(batched.std[b].flatten(), one.std.reshape(1))


def test_kernels_compute_in_fp32_for_half_inputs():
    x, v = torch.randn(2, 4).bfloat16(), torch.randn(2, 4).bfloat16()
    assert flow_sde(x, v, 0.5, 0.4, noise_level=0.7).mean.dtype == torch.float32
    assert gaussian_logprob(x, x, torch.tensor(0.5)).dtype == torch.float32


def test_gaussian_logprob_matches_torch_distributions():
    x_next, mean = torch.randn(5, 3, 4, 4, dtype=torch.float64), torch.randn(5, 3, 4, 4, dtype=torch.float64)
    std = torch.rand(5, dtype=torch.float64) + 0.1
    ref = torch.distributions.Normal(mean, std.reshape(5, 1, 1, 1)).log_prob(x_next).mean(dim=(1, 2, 3))
    torch.testing.assert_close(gaussian_logprob(x_next, mean, std), ref)
    torch.testing.assert_close(gaussian_logprob(x_next, mean, std.reshape(5, 1, 1, 1)), ref)
    ref_scalar = torch.distributions.Normal(mean, 0.3).log_prob(x_next).mean(dim=(1, 2, 3))
    torch.testing.assert_close(gaussian_logprob(x_next, mean, torch.tensor(0.3, dtype=torch.float64)), ref_scalar)


# ------------------------------------------------------------------------------------- pooled (low-frequency) density


def test_pooled_logprob_is_the_normal_density_of_block_means():
    """Independent reference: block means by an explicit loop, scored by torch.distributions with std / pool."""
    g = torch.Generator().manual_seed(0)
    mean = torch.randn(3, 2, 8, 8, generator=g, dtype=torch.float64)
    x_next = mean + 0.3 * torch.randn(3, 2, 8, 8, generator=g, dtype=torch.float64)
    std = torch.tensor([0.3, 0.5, 0.2], dtype=torch.float64)
    got = pooled_gaussian_logprob(x_next, mean, std, pool=4)
    for b in range(3):
        values = []
        for c in range(2):
            for i in range(0, 8, 4):
                for j in range(0, 8, 4):
                    block_x = x_next[b, c, i : i + 4, j : j + 4].mean()
                    block_m = mean[b, c, i : i + 4, j : j + 4].mean()
                    values.append(torch.distributions.Normal(block_m, std[b] / 4).log_prob(block_x))
        assert got[b].item() == pytest.approx(torch.stack(values).mean().item(), rel=1e-12)


def test_pooled_logprob_with_pool_1_is_the_elementwise_density():
    g = torch.Generator().manual_seed(1)
    mean, x_next = torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 3, 4, 4, generator=g)
    std = torch.tensor([0.4, 0.9])
    assert torch.equal(pooled_gaussian_logprob(x_next, mean, std, pool=1), gaussian_logprob(x_next, mean, std))


def test_pooled_logprob_gradient_sees_only_block_means():
    """Changing the mean inside a block without changing the block's average leaves the density unchanged, and the
    gradient w.r.t. the mean is constant within each block."""
    g = torch.Generator().manual_seed(2)
    mean = torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64, requires_grad=True)
    x_next = torch.randn(1, 1, 4, 4, generator=g, dtype=torch.float64)
    std = torch.tensor([0.5], dtype=torch.float64)
    logp = pooled_gaussian_logprob(x_next, mean, std, pool=2)
    (grad,) = torch.autograd.grad(logp.sum(), mean)
    blocks = grad.reshape(2, 2, 2, 2).permute(0, 2, 1, 3).reshape(4, 4)  # rows: blocks, columns: their 4 pixels
    assert torch.allclose(blocks, blocks[:, :1].expand(4, 4))
    zero_mean_wiggle = torch.tensor([[1.0, -1.0], [-1.0, 1.0]], dtype=torch.float64).repeat(2, 2)[None, None]
    moved = pooled_gaussian_logprob(x_next, mean.detach() + 0.7 * zero_mean_wiggle, std, pool=2)
    assert moved.item() == pytest.approx(logp.item(), rel=1e-12)


def test_pooled_logprob_rejects_sizes_it_cannot_pool():
    x = torch.zeros(1, 3, 6, 6)
    with pytest.raises(ValueError, match="divisible by pool = 4"):
        pooled_gaussian_logprob(x, x, torch.ones(1), pool=4)
    with pytest.raises(ValueError, match=r"\(B, C, H, W\)"):
        pooled_gaussian_logprob(torch.zeros(2, 16, 8), torch.zeros(2, 16, 8), torch.ones(2), pool=2)
