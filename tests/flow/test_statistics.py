"""SDE kernels on Gaussian data: rollouts through the tree sampler reach the data's statistics.
Run: pytest tests/flow/test_statistics.py -q

Closed-form velocity for x0 ~ N(m, s^2) (per element), x = (1 - sigma) x0 + sigma eps, eps ~ N(0, 1):
  x is Gaussian with mean (1 - sigma) m and variance V = (1 - sigma)^2 s^2 + sigma^2;
  Cov(x0, x) = (1 - sigma) s^2 and Cov(eps, x) = sigma, so with r = x - (1 - sigma) m
  E[x0 | x] = m + (1 - sigma) s^2 / V * r,  E[eps | x] = sigma / V * r,
  v(x, sigma) = E[eps - x0 | x] = sigma / V * r - m - (1 - sigma) s^2 / V * r   (affine in x).
Every kernel mean is affine in (x, v), so the chain stays Gaussian and its exact discrete-time mean and variance
follow the recursion E' = A E + B, Var' = A^2 Var + std^2, with A, B read off the published formula written out
below (independently of flowrl's code). The tests check (1) the sampler against that recursion within sampling
error and (2) the recursion against the data within a discretisation allowance.
"""

import math

import pytest
import torch

from flowrl.flow import RolloutPlan, StepSpec, cps, rollout, time_grid

M, S = 0.5, 0.3
N = 8000  # rollouts: standard error of the mean ~ 0.3 / 90 = 0.0034, of the std ~ 0.3 / 126 = 0.0024
T = 40


def gaussian_v(x: torch.Tensor, sigma: torch.Tensor, cond) -> torch.Tensor:
    sig = sigma.reshape(-1, *([1] * (x.ndim - 1))).to(x.dtype)
    a = 1 - sig
    var = a**2 * S**2 + sig**2
    r = x - a * M
    return sig / var * r - (M + a * S**2 / var * r)


def _v_scalar(x: float, sig: float) -> float:
    a = 1 - sig
    var = a**2 * S**2 + sig**2
    r = x - a * M
    return sig / var * r - (M + a * S**2 / var * r)


def _reverse_sde(g_sq):
    # docs/flow_methods.md, Shared pieces: mean = x + dt [v + g^2 / (2 s) (x + (1 - s) v)], std^2 = g^2 (s - s')
    def step(x, s, s_next):
        dt = s_next - s
        v = _v_scalar(x, s)
        return x + dt * (v + g_sq(s, s_next) / (2 * s) * (x + (1 - s) * v)), g_sq(s, s_next) * (s - s_next)

    return step


def _cps(a):
    # arXiv 2509.05952: std = s' sin(a pi / 2), mean = (1 - s') (x - s v) + sqrt(s'^2 - std^2) (x + (1 - s) v)
    def step(x, s, s_next):
        std = s_next * math.sin(a * math.pi / 2)
        v = _v_scalar(x, s)
        return (1 - s_next) * (x - s * v) + math.sqrt(s_next**2 - std**2) * (x + (1 - s) * v), std**2

    return step


def _euler(x, s, s_next):
    return x + (s_next - s) * _v_scalar(x, s), 0.0


FORMULAS = {
    "flow_sde": (0.7, _reverse_sde(lambda s, s2: 0.49 * s / (1 - (s2 if s == 1 else s)))),
    "dance_sde": (0.3, _reverse_sde(lambda s, s2: 0.09)),
    "cps": (0.8, _cps(0.8)),
}


def exact_final_stats(kernel: str, grid: torch.Tensor) -> tuple[float, float]:
    """Mean and std after SDE steps 0..T-2 and a final Euler step, by the affine recursion (starts at N(0, 1))."""
    mean, var = 0.0, 1.0
    _, formula = FORMULAS[kernel]
    sig = grid.tolist()
    for i in range(len(sig) - 1):
        f = formula if i < len(sig) - 2 else _euler
        b, noise_var = f(0.0, sig[i], sig[i + 1])
        a = f(1.0, sig[i], sig[i + 1])[0] - b
        mean, var = a * mean + b, a**2 * var + noise_var
    return mean, math.sqrt(var)


def sample_final(kernel: str, grid: torch.Tensor) -> torch.Tensor:
    level, _ = FORMULAS[kernel]
    steps = tuple(StepSpec(kernel, level) for _ in range(T - 1)) + (StepSpec(),)  # last step ODE: clean samples
    plan = RolloutPlan(grid, steps, num_roots=N)
    g = torch.Generator().manual_seed(1)
    tree = rollout(gaussian_v, plan, None, torch.randn(1, N, 1, generator=g, dtype=torch.float64), generator=g)
    return tree.x[tree.leaves].flatten()


@pytest.mark.parametrize("kernel", ["flow_sde", "dance_sde", "cps"])
def test_sde_rollouts_match_the_exact_discrete_law(kernel):
    grid = time_grid(T, shift=1.0)
    x = sample_final(kernel, grid)
    mean, std = exact_final_stats(kernel, grid)
    assert abs(x.mean().item() - mean) < 4 * std / math.sqrt(N)
    assert abs(x.std().item() - std) < 4 * std / math.sqrt(2 * N)


@pytest.mark.parametrize("kernel, std_allowance", [("flow_sde", 0.01), ("dance_sde", 0.01)])
def test_marginal_preserving_sdes_reach_the_data_distribution(kernel, std_allowance):
    # discretisation error only: at T = 40 the Euler-Maruyama chains lose < 0.01 of the data std 0.3
    grid = time_grid(T, shift=1.0)
    x = sample_final(kernel, grid)
    assert abs(x.mean().item() - M) < 4 * S / math.sqrt(N)
    assert abs(x.std().item() - S) < std_allowance + 4 * S / math.sqrt(2 * N)


def test_cps_preserves_the_marginal_of_a_point_mass_but_shrinks_gaussian_data():
    # Point mass (x0_hat exact): x' = (1 - s') mu + sqrt(s'^2 - std^2) eps_hat + std z has noise variance exactly
    # s'^2, i.e. CPS keeps the flow marginal N((1 - s') mu, s'^2) at every step.
    mu, grid = 0.7, time_grid(10, shift=3.0)
    x = (1 - grid[3]) * mu + grid[3] * torch.randn(20000, 1, dtype=torch.float64)
    for i in range(3, 6):
        s, s_next = float(grid[i]), float(grid[i + 1])
        step = cps(x, (x - mu) / s, s, s_next, noise_level=0.8)
        x = step.mean + step.std * torch.randn_like(x)
    s_end = float(grid[6])
    assert abs(x.mean().item() - (1 - s_end) * mu) < 4 * s_end / math.sqrt(20000)
    assert abs(x.std().item() - s_end) < 4 * s_end / math.sqrt(2 * 20000)
    # With non-degenerate data x0_hat is a posterior *mean*; by Cauchy-Schwarz every CPS step with
    # sqrt(s'^2 - std^2) / s != (1 - s') / (1 - s) loses variance, so the final std is below the data's
    # (flagged in docs/flow_methods.md): exact recursion, a = 0.8, T = 40 -> about 0.22 instead of 0.3.
    _, std = exact_final_stats("cps", time_grid(T, shift=1.0))
    assert std < S - 0.05
