"""The MLP heads of ImageReward and the LAION aesthetic predictor: `nn.Linear` layers at the indices of an
`nn.Sequential` whose other entries are dropouts (identities at inference), with no activations in between."""

from __future__ import annotations

import torch
from torch import nn


def linear_stack(sd: dict[str, torch.Tensor]) -> nn.Sequential:
    """An `nn.Sequential` of `nn.Linear` at the indices present in `sd` (``"{i}.weight"``) and `nn.Identity`
    elsewhere: the dropouts of ImageReward's and LAION's MLP heads are identities at inference, and there is no
    activation between the layers in either.

    Example:
        >>> stack = linear_stack({"0.weight": torch.zeros(4, 3), "0.bias": torch.zeros(4),
        ...                       "2.weight": torch.zeros(1, 4), "2.bias": torch.zeros(1)})
        >>> [type(m).__name__ for m in stack]
        ['Linear', 'Identity', 'Linear']
    """
    indices = sorted({int(k.split(".")[0]) for k in sd})
    layers: list[nn.Module] = [nn.Identity() for _ in range(indices[-1] + 1)]
    for i in indices:
        out_features, in_features = sd[f"{i}.weight"].shape
        layers[i] = nn.Linear(in_features, out_features)
    stack = nn.Sequential(*layers)
    stack.load_state_dict(sd, strict=True)
    return stack.float().eval().requires_grad_(False)
