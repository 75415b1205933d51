"""Loss reductions: hand-derived values and micro-batch invariance. Run: pytest tests/grpo/test_reduce.py -q"""

from functools import partial

import pytest
import torch

from flowrl.grpo import reduce as R

LOSS = torch.tensor([[1.0, 2.0], [3.0, 4.0]])
MASK = torch.tensor([[1.0, 0.0], [1.0, 1.0]])


def test_hand_derived_values():
    norm = R.normalizer(MASK)
    assert norm.num_tokens == 3 and norm.num_sequences == 2
    torch.testing.assert_close(R.token_mean(LOSS, MASK, norm=norm), torch.tensor(8 / 3))  # (1 + 3 + 4) / 3
    torch.testing.assert_close(R.seq_mean_token_mean(LOSS, MASK, norm=norm), torch.tensor(2.25))  # (1 + 7/2) / 2
    torch.testing.assert_close(R.seq_mean_token_sum(LOSS, MASK, norm=norm), torch.tensor(4.0))  # (1 + 7) / 2
    torch.testing.assert_close(R.constant_norm(LOSS, MASK, norm=norm, max_len=4), torch.tensor(1.0))  # 8 / (2 * 4)


def test_masked_nan_does_not_leak():
    loss = torch.tensor([[1.0, float("nan")], [3.0, float("inf")]])
    mask = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    assert R.token_mean(loss, mask, norm=R.normalizer(mask)).item() == 2.0


REDUCTIONS = {
    "token_mean": R.token_mean,
    "seq_mean_token_mean": R.seq_mean_token_mean,
    "seq_mean_token_sum": R.seq_mean_token_sum,
    "constant_norm": partial(R.constant_norm, max_len=7),
}


@pytest.mark.parametrize("name", sorted(REDUCTIONS))
def test_micro_batches_add_up_to_the_full_batch(name):
    # One batch of 8 sequences with ragged masks equals 2 micro-batches of 4 accumulated, value and gradient,
    # when the normaliser is computed once for the whole step.
    reduce = REDUCTIONS[name]
    x = torch.randn(8, 7, requires_grad=True)
    lengths = torch.tensor([7, 1, 3, 5, 2, 7, 4, 6])
    mask = (torch.arange(7)[None, :] < lengths[:, None]).float()
    norm = R.normalizer(mask)
    full = reduce(x**2, mask, norm=norm)
    (g_full,) = torch.autograd.grad(full, x)
    parts = sum(reduce(x[i : i + 4] ** 2, mask[i : i + 4], norm=norm) for i in (0, 4))
    (g_parts,) = torch.autograd.grad(parts, x)
    torch.testing.assert_close(parts, full)
    torch.testing.assert_close(g_parts, g_full)


def test_local_token_mean_is_invariant_with_equal_token_counts():
    x = torch.randn(8, 5, requires_grad=True)
    mask = torch.ones(8, 5)
    full = R.token_mean_local(x**2, mask, norm=R.normalizer(mask))
    split_norm = R.normalizer(mask, num_micro_batches=2)
    parts = sum(R.token_mean_local(x[i : i + 4] ** 2, mask[i : i + 4], norm=split_norm) for i in (0, 4))
    torch.testing.assert_close(parts, full)
