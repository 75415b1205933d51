"""Cheap rewards for trainer tests (loaded by dotted path, as user rewards are)."""

import torch


def brightness(**_):
    """Mean pixel value: varies across samples of any model, so advantages are nonzero."""
    return lambda images, prompts, metadata=None: images.float().mean(dim=(1, 2, 3))


def nan_for_circles(**_):
    def reward(images, prompts, metadata=None):
        out = images.float().mean(dim=(1, 2, 3))
        return torch.where(torch.tensor(["circle" in p for p in prompts]), torch.nan, out)

    return reward


def wrong_shape(**_):
    return lambda images, prompts, metadata=None: torch.zeros(len(prompts), 2)


def constant(**_):
    """The same score for every image: no group has an advantage, so no policy-gradient signal."""

    class Constant:
        name = "constant"

        def __call__(self, images, prompts, metadata=None):
            return torch.zeros(images.shape[0])  # the LayerTuning-RL weight is base * (1 - mean reward)

    return Constant()
