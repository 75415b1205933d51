"""Per-edge weights, hand-derived. Run: pytest tests/grpo/test_weights.py -q"""

import torch

from flowrl.grpo import inverse_delta_weights, noise_aware_weights


def test_noise_aware_weights_average_one_over_trained_steps():
    # stds [1, 2, 3] trained, the last step (std 0) not: mean 2 -> weights [0.5, 1, 1.5, 0]
    w = noise_aware_weights(torch.tensor([1.0, 2.0, 3.0, 0.0]), torch.tensor([1.0, 1.0, 1.0, 0.0]))
    torch.testing.assert_close(w, torch.tensor([0.5, 1.0, 1.5, 0.0]))


def test_inverse_delta_weights():
    torch.testing.assert_close(inverse_delta_weights(torch.tensor([0.5, 0.25, 0.0])), torch.tensor([2.0, 4.0, 0.0]))
