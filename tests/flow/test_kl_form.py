"""The Gaussian KL to the reference: exact, and flow_grpo's divisor (`kl_std`). Run: pytest tests/flow -q"""

import pytest
import torch

from flowrl.flow import build_method, rollout
from flowrl.flow.loss import EdgeEval, evaluate_edges, kl_std, policy_batch


def _tree(**kwargs):
    method = build_method("flow_grpo", num_inference_steps=10, group_size=2, **kwargs)  # sd3 grid, a = 0.7
    model = lambda x, s, c: torch.zeros_like(x)  # noqa: E731
    return rollout(model, method.plan, None, torch.randn(1, 2, 1, 4, 4), generator=torch.Generator().manual_seed(0))


def test_flow_grpo_kl_by_hand():
    # SD3 grid, T = 10, shift 3: step 1 runs sigma = 0.960129 -> 0.913349. flow_grpo's std_dev_t^2 =
    # a^2 sigma / (1 - sigma) = 0.49 * 0.960129 / 0.039871 = 11.79973. A mean shift of 0.1 on every element gives
    # flow_grpo's KL 0.01 / (2 * 11.79973) = 4.2374e-4 and the exact KL 0.01 / (2 * 11.79973 * 0.046780) = 9.0580e-3.
    tree = _tree()
    idx = torch.nonzero(tree.edges.step == 1).flatten()
    current = evaluate_edges(lambda x, s, c: torch.zeros_like(x), tree, None, idx)
    shifted = EdgeEval(logp=current.logp, mean=current.mean + 0.1, nfe=current.nfe)
    adv = torch.zeros(tree.edges.parent.numel())
    anchor = policy_batch(tree, current, adv, idx, reference=shifted, kl_form="flow_grpo").kl.flatten()
    exact = policy_batch(tree, current, adv, idx, reference=shifted).kl.flatten()
    torch.testing.assert_close(anchor, torch.full_like(anchor, 4.2374e-4), rtol=1e-4, atol=0)
    torch.testing.assert_close(exact, torch.full_like(exact, 9.0580e-3), rtol=1e-4, atol=0)


def test_flow_grpo_divisor_is_the_diffusion_coefficient():
    # std_dev_t = a sqrt(sigma / (1 - sigma)), with the official sigmas[1] in the denominator at sigma = 1
    tree = _tree()
    e = tree.edges
    s, s_next = e.sigma.double(), e.sigma_next.double()
    g = 0.7 * torch.sqrt(s / (1 - torch.where(s == 1, s_next, s)))
    torch.testing.assert_close(kl_std(tree, form="flow_grpo").double(), g, rtol=1e-5, atol=0)
    torch.testing.assert_close(kl_std(tree), e.std)  # exact: the step's std g sqrt(Delta)
    with pytest.raises(ValueError, match="Unknown KL form 'k3'"):
        kl_std(tree, form="k3")


def test_cps_divisor_is_the_step_std():
    # flow_grpo's CPS step returns std_dev_t = sigma_next sin(a pi / 2), the step std itself: both forms agree
    method = build_method("flow_grpo_fast", num_inference_steps=6, group_size=2, window_range=(0, 3))
    tree = rollout(lambda x, s, c: torch.zeros_like(x), method.plan, None, torch.randn(1, 2, 1, 4, 4))
    torch.testing.assert_close(kl_std(tree, form="flow_grpo"), kl_std(tree))
