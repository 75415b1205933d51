"""DeepVideo-R1's difficulty-aware augmentation (flowrl/grpo/difficulty_augment.py) on hand-computed values."""

import pytest
import torch

from flowrl.grpo.difficulty_augment import (
    EASIER,
    HARDER,
    KEEP,
    cue_lengths,
    difficulty_actions,
    noise_scales,
    noisy_images,
    reasoning_cue,
    update_reference,
)

MEANS = torch.tensor([1.0, 0.5, 0.0, 0.375])  # four questions' group mean rewards


def test_reference_is_a_running_mean():
    assert update_reference(None, MEANS) == pytest.approx(0.46875)  # (1 + .5 + 0 + .375) / 4
    assert update_reference(0.5, MEANS, momentum=0.9) == pytest.approx(0.9 * 0.5 + 0.1 * 0.46875)
    with pytest.raises(ValueError, match="momentum"):
        update_reference(0.5, MEANS, momentum=1.0)


def test_actions_noise_and_cues_by_hand():
    # d = r_bar - 0.5 = [0.5, 0, -0.5, -0.125]
    assert difficulty_actions(MEANS, 0.5, tau=0.1).tolist() == [HARDER, KEEP, EASIER, EASIER]
    assert difficulty_actions(MEANS, 0.5, tau=0.2).tolist() == [HARDER, KEEP, EASIER, KEEP]
    # sigma = 0.3 min(1, d / (1 - 0.5)) above the reference
    assert noise_scales(MEANS, 0.5, sigma_max=0.3).tolist() == pytest.approx([0.3, 0.0, 0.0, 0.0])
    assert noise_scales(torch.tensor([0.75]), 0.5, sigma_max=0.3).tolist() == pytest.approx([0.15])
    # k = ceil(0.5 n min(1, -d / 0.5)) below it: shares [0, 0, 1, 0.25], n = [2, 2, 4, 4] -> [0, 0, 2, ceil(0.5)]
    assert cue_lengths(MEANS, 0.5, torch.tensor([2, 2, 4, 4]), rho=0.5).tolist() == [0, 0, 2, 1]
    assert reasoning_cue("red circle blue square green triangle", 2) == "red circle blue square"
    assert reasoning_cue("red circle", 0) == ""


def test_noisy_images_by_hand():
    images = torch.full((2, 3, 2, 2), 0.5)
    g = torch.Generator().manual_seed(0)
    out = noisy_images(images, torch.tensor([0.0, 0.2]), generator=g)
    eps = torch.randn((2, 3, 2, 2), generator=torch.Generator().manual_seed(0))
    assert torch.equal(out[0], images[0])  # sigma 0: untouched
    assert torch.allclose(out[1], (0.5 + 0.2 * eps[1]).clamp(0, 1))
    assert out.min() >= 0 and out.max() <= 1
    with pytest.raises(ValueError, match="one noise std per image"):
        noisy_images(images, torch.tensor([0.1]))
    with pytest.raises(TypeError, match="float"):
        noisy_images(torch.zeros((2, 3, 2, 2), dtype=torch.uint8), torch.tensor([0.1, 0.1]))
