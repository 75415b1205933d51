"""KL estimators against hand values and exact expectations. Run: pytest tests/grpo/test_kl.py -q"""

import math

import torch

from flowrl.grpo import KL_ESTIMATORS, gaussian_kl_same_std, kl_k1, kl_k2, kl_k3, straight_through


def test_hand_derived_values():
    # logp = 0, ref = ln 2 -> d = ref - logp = ln 2: k1 = -ln 2, k2 = (ln 2)^2 / 2, k3 = e^d - d - 1 = 1 - ln 2
    logp, ref = torch.zeros(1, 1), torch.full((1, 1), math.log(2))
    torch.testing.assert_close(kl_k1(logp, ref), torch.tensor([[-math.log(2)]]))
    torch.testing.assert_close(kl_k2(logp, ref), torch.tensor([[math.log(2) ** 2 / 2]]))
    torch.testing.assert_close(kl_k3(logp, ref), torch.tensor([[1 - math.log(2)]]))


def test_k1_and_k3_are_unbiased_on_a_categorical():
    # E_{x~p}[k(x)] computed exactly by summing over the support must equal KL(p || q).
    p = torch.tensor([0.5, 0.2, 0.2, 0.1])
    q = torch.tensor([0.25, 0.25, 0.4, 0.1])
    exact = torch.distributions.kl_divergence(torch.distributions.Categorical(p), torch.distributions.Categorical(q))
    logp, logq = p.log()[None], q.log()[None]
    for k in (kl_k1, kl_k3):
        torch.testing.assert_close((p * k(logp, logq)[0]).sum(), exact)


def test_straight_through_has_k3_value_and_k2_gradient():
    logp = torch.tensor([[-1.0, -0.3]], requires_grad=True)
    ref = torch.tensor([[-0.5, -2.0]])
    out = straight_through(kl_k3)(logp, ref)
    torch.testing.assert_close(out, kl_k3(logp, ref))
    out.sum().backward()
    torch.testing.assert_close(logp.grad, (logp - ref).detach())  # d/dlogp of (logp - ref)^2 / 2
    assert set(KL_ESTIMATORS) == {"k1", "k2", "k3", "k1+", "k3+"}


def test_gaussian_kl_matches_torch_distributions():
    mean, ref = torch.randn(3, 2, 4, 4), torch.randn(3, 2, 4, 4)
    std = torch.tensor([0.5, 1.0, 2.0])
    s = std.view(3, 1, 1, 1).expand_as(mean)
    exact = torch.distributions.kl_divergence(torch.distributions.Normal(mean, s), torch.distributions.Normal(ref, s))
    torch.testing.assert_close(gaussian_kl_same_std(mean, ref, std), exact.mean(dim=(1, 2, 3)))
