"""Seeded prompt sampler over the ShapeWorld train or test split."""

import random
from collections.abc import Mapping
from typing import Any

from flowrl.shapes.grammar import FAMILIES, PromptSpec, Split, format_prompt, split_prompts

DEFAULT_FAMILY_WEIGHTS: dict[str, float] = {family: 1.0 for family in FAMILIES}


def sample_specs(
    num_prompts: int,
    *,
    split: Split,
    seed: int,
    family_weights: Mapping[str, float] | None = None,
    test_fraction: float = 0.2,
    split_seed: int = 0,
) -> list[PromptSpec]:
    """Draw prompts from one split: first a family by weight, then a prompt of that family uniformly.

    The draw depends only on the arguments (a private `random.Random(seed)`), never on global state.

    Args:
        num_prompts (`int`): how many prompts to draw (with replacement).
        split (`str`): ``"train"`` or ``"test"``.
        seed (`int`): the seed of the draw.
        family_weights (`Mapping[str, float]`, *optional*): relative weight per family; families left out get
            weight 0. Defaults to equal weights over `FAMILIES`.
        test_fraction (`float`, defaults to 0.2): see `grammar.split_prompts`.
        split_seed (`int`, defaults to 0): see `grammar.split_prompts`.

    Returns:
        `list[PromptSpec]` of length `num_prompts`.
    """
    weights = dict(DEFAULT_FAMILY_WEIGHTS if family_weights is None else family_weights)
    unknown = sorted(set(weights) - set(FAMILIES))
    if unknown:
        raise ValueError(
            f"Unknown prompt families {unknown} in family_weights; valid families: {', '.join(FAMILIES)}."
        )
    if any(weight < 0 for weight in weights.values()) or sum(weights.values()) <= 0:
        raise ValueError(f"family_weights must be >= 0 with a positive sum, got {weights}.")
    if num_prompts < 0:
        raise ValueError(f"num_prompts must be >= 0, got {num_prompts}.")
    families = [family for family in FAMILIES if weights.get(family, 0.0) > 0]
    pools = {
        family: split_prompts(family, split, test_fraction=test_fraction, split_seed=split_seed) for family in families
    }
    rng = random.Random(seed)
    chosen = rng.choices(families, weights=[weights[family] for family in families], k=num_prompts)
    return [rng.choice(pools[family]) for family in chosen]


def sample_prompts(num_prompts: int, **kwargs: Any) -> list[str]:
    """`sample_specs` returning the prompt texts (same keyword arguments, same draw)."""
    return [format_prompt(spec) for spec in sample_specs(num_prompts, **kwargs)]
