"""Selection masks, hand-derived. Run: pytest tests/grpo/test_masks.py -q"""

import pytest
import torch

from flowrl.grpo import nonzero_variance_mask, top_entropy_mask, truncation_mask


def test_constant_groups_are_dropped():
    keep = nonzero_variance_mask(torch.tensor([1.0, 1.0, 2.0, 3.0, 4.0]), torch.tensor([0, 0, 1, 1, 2]))
    # group 0 is constant, group 1 varies, group 2 is a singleton (std 0)
    assert keep.tolist() == [False, False, True, True, False]


def test_truncated_rows_are_zeroed():
    mask = torch.ones(3, 4)
    out = truncation_mask(mask, torch.tensor([False, True, False]))
    assert out.sum(-1).tolist() == [4.0, 0.0, 4.0]
    with pytest.raises(ValueError, match="shape"):
        truncation_mask(mask, torch.tensor([True]))


def test_top_entropy_quantile_hand_derived():
    # valid entropies 1..8: quantile(H, 0.75) with linear interpolation = 1 + 0.75 * 7 = 6.25 -> keep 7 and 8.
    # The masked token (entropy 100) neither counts in the threshold nor is kept.
    ent = torch.tensor([[1.0, 2.0, 3.0, 4.0, 100.0], [5.0, 6.0, 7.0, 8.0, 0.0]])
    mask = torch.tensor([[1.0, 1, 1, 1, 0], [1, 1, 1, 1, 0]])
    out = top_entropy_mask(ent, mask, quantile=0.25)
    assert out.tolist() == [[0, 0, 0, 0, 0], [0, 0, 1, 1, 0]]
    torch.testing.assert_close(top_entropy_mask(ent, mask, quantile=1.0), mask)
    with pytest.raises(ValueError, match="kept fraction"):
        top_entropy_mask(ent, mask, quantile=0.0)
