"""Several rewards as one: every component scored and kept for logging, then aggregated with the GRPO core's
`weighted_sum` (Flow-GRPO: sum, then normalise) or `normalize_then_sum` (MixGRPO / GDPO: per-reward advantages,
then the weighted sum). The aggregation math lives in `flowrl.grpo.aggregate`; this file only calls it.
"""

from __future__ import annotations

from typing import Any, Literal, NamedTuple

import torch

from flowrl.grpo.aggregate import normalize_then_sum, sum_then_normalize, weighted_sum
from rewards.base import RewardFn, check_reward_output


class MultiScore(NamedTuple):
    """Scores of one batch under several rewards.

    Args:
        total (`torch.Tensor`): `(B,)` float32 weighted sum of the components (Flow-GRPO's "avg").
        components (`dict[str, torch.Tensor]`): reward name -> `(B,)` float32 raw scores, for logging.
    """

    total: torch.Tensor
    components: dict[str, torch.Tensor]


class MultiReward:
    """Call each reward on the same batch and return `MultiScore`; as a `RewardFn` it returns the weighted sum.

    Args:
        rewards (`list[RewardFn]`): the components (names must be distinct).
        weights (`list[float]`, *optional*): one per reward; default 1.0 each.

    Example:
        >>> from rewards.jpeg import JpegReward
        >>> multi = MultiReward([JpegReward(compressible=True), JpegReward(compressible=False)], weights=[1.0, 0.0])
        >>> out = multi.score(torch.zeros(2, 3, 8, 8), ["", ""])
        >>> sorted(out.components), bool(torch.equal(out.total, out.components["jpeg_compressibility"]))
        (['jpeg_compressibility', 'jpeg_incompressibility'], True)
    """

    def __init__(self, rewards: list[RewardFn], *, weights: list[float] | None = None) -> None:
        names = [r.name for r in rewards]
        weights = [1.0] * len(rewards) if weights is None else list(weights)
        if not rewards or len(weights) != len(rewards) or len(set(names)) != len(names):
            raise ValueError(
                f"MultiReward needs >= 1 reward with distinct names and one weight each; got names {names} and "
                f"weights {weights}."
            )
        self.rewards, self.weights = list(rewards), torch.tensor(weights, dtype=torch.float32)
        self.name = "+".join(f"{w:g}*{n}" for w, n in zip(weights, names, strict=True))

    def score(self, images: Any, prompts: list[str], metadata: list[dict] | None = None) -> MultiScore:
        """Every component's `(B,)` scores and their weighted sum (NaN components are skipped in the sum)."""
        n = len(prompts)
        components = {r.name: check_reward_output(r.name, r(images, prompts, metadata), n) for r in self.rewards}
        table = torch.stack(list(components.values()), dim=1)  # (B, K)
        return MultiScore(weighted_sum(table, weights=self.weights), components)

    def advantages(
        self,
        scores: MultiScore,
        group_ids: torch.Tensor,
        *,
        order: Literal["sum_then_normalize", "normalize_then_sum"] = "sum_then_normalize",
        eps: float = 1e-4,
    ) -> torch.Tensor:
        """`(B,)` advantages of a scored batch: group-normalised weighted sum, or weighted sum of per-reward group
        advantages."""
        table = torch.stack(list(scores.components.values()), dim=1)  # (B, K)
        if order == "sum_then_normalize":
            return sum_then_normalize(table, group_ids, weights=self.weights, eps=eps)
        if order == "normalize_then_sum":
            return normalize_then_sum(table, group_ids, weights=self.weights, eps=eps)
        raise ValueError(f"order {order!r} unknown; valid: 'sum_then_normalize', 'normalize_then_sum'.")

    @torch.no_grad()
    def __call__(self, images: Any, prompts: list[str], metadata: list[dict] | None = None) -> torch.Tensor:
        return self.score(images, prompts, metadata).total
