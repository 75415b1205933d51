"""flow_grpo's CPS log-probability -mean_d (x_next - mean)^2 beside the Gaussian one. Run: pytest tests/flow -q"""

import pytest
import torch

from flowrl.flow import build_method, gaussian_logprob, rollout
from flowrl.flow.loss import cps_flow_grpo_logprob, evaluate_edges, old_logp, policy_batch


def _tree():
    method = build_method("flow_grpo_fast", num_inference_steps=6, group_size=3, window_range=(0, 3))  # CPS a = 0.8
    model = lambda x, s, c: 0.5 * x  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    return model, rollout(model, method.plan, None, torch.randn(1, 3, 2, 4, 4, dtype=torch.float64), generator=gen)


def test_by_hand():
    # x_next - mean = [1, -1, 2, 0] -> -mean(1, 1, 4, 0) = -1.5
    x_next, mean = torch.tensor([[1.0, -1.0, 2.0, 0.0]]), torch.zeros(1, 4)
    assert cps_flow_grpo_logprob(x_next, mean).item() == pytest.approx(-1.5)


def test_on_policy_ratio_is_one_and_the_log_ratio_is_2_std_squared_times_the_gaussian_one():
    model, tree = _tree()
    e = tree.edges
    same = evaluate_edges(model, tree, None, cps_logprob="flow_grpo")
    torch.testing.assert_close(same.logp, old_logp(tree, torch.arange(e.parent.numel()), cps_logprob="flow_grpo"))
    moved = lambda x, s, c: 0.5 * x + 0.01  # noqa: E731
    idx = torch.arange(e.parent.numel())
    current = evaluate_edges(moved, tree, None, cps_logprob="flow_grpo")
    torch.testing.assert_close(current.logp, cps_flow_grpo_logprob(e.x_next, current.mean))
    torch.testing.assert_close(
        old_logp(tree, idx, cps_logprob="flow_grpo"), cps_flow_grpo_logprob(e.x_next, e.old_mean)
    )
    # Gaussian log-ratio -(d_new^2 - d_old^2) / (2 std^2) vs flow_grpo's -(d_new^2 - d_old^2), in float64
    x_next, new_mean, old_mean, std = (t.double() for t in (e.x_next, current.mean, e.old_mean, e.std))
    gauss = gaussian_logprob(x_next, new_mean, std) - gaussian_logprob(x_next, old_mean, std)
    anchor = cps_flow_grpo_logprob(x_next, new_mean) - cps_flow_grpo_logprob(x_next, old_mean)
    torch.testing.assert_close(anchor.double(), 2 * std**2 * gauss, rtol=1e-6, atol=1e-12)
    assert anchor.abs().max() > 0
    batch = policy_batch(tree, current, torch.zeros(idx.numel()), cps_logprob="flow_grpo")
    torch.testing.assert_close(
        batch.old_logp.flatten().double(), cps_flow_grpo_logprob(x_next, old_mean).float().double()
    )
    with pytest.raises(ValueError, match="cannot be pooled"):
        evaluate_edges(model, tree, None, pool=2, cps_logprob="flow_grpo")
