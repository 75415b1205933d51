"""Prompt samplers of the text trainer (config ``hooks.prompt_sampler``): which training rows a step rolls out.

Without a sampler a step takes the next slice of a per-epoch permutation (`flowrl.text.data.step_rows`). A sampler
instead picks the step's rows from what it has seen of earlier groups, to spend rollouts on prompts whose group will
have reward variance (a group whose rewards are all equal has zero GRPO advantage and no gradient):

* ``vas``: MMR1's Variance-Aware Sampling (`flowrl.grpo.variance_sampling`);
* ``vade``: VADE's Beta posteriors and Thompson sampler (`flowrl.grpo.vade`).

Both read the first reward column (reward.names[0]) as each completion's success in [0, 1]. A sampler's draws come
from a generator seeded by (train.seed, step), so two runs with one seed pick the same rows; its statistics are not
checkpointed (a resumed run starts them empty, like the other stateful hooks), and they are per process, so a
sampler runs on one process only.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from flowrl.grpo.vade import beta_update, decay_to_prior, thompson_scores
from flowrl.grpo.variance_sampling import (
    outcome_variance,
    trajectory_diversity,
    variance_promotion_score,
    vas_probabilities,
)
from flowrl.runtime.seeding import generator
from flowrl.text.rollout import Rollout

SAMPLER_STREAM = 7_927  # a seed key of the samplers' draws, apart from the rollout's (seed, step, rank)


def _groups(indices: list[int], group_index: torch.Tensor) -> list[tuple[int, torch.Tensor]]:
    """(row key, `(N,)` bool rows of its group) of each prompt position j of the step that has rows."""
    out = []
    for j, key in enumerate(indices):
        rows = group_index == j
        if bool(rows.any()):
            out.append((key, rows))
    return out


class VarianceAwareSampler:
    """MMR1's Variance-Aware Sampling (arXiv 2509.21268, Sec. 3), `flowrl.grpo.variance_sampling`.

    A prompt's score after a visit with G rollouts of success c_j and pass rate p::

        VPS = alpha OVS + beta TDS,   OVS = p (1 - p),   TDS = mean over rollout pairs of 1 - Jaccard(bigrams)

    and a step draws its P rows without replacement with probabilities
    ``P_i = lam VPS_i / sum_k VPS_k + (1 - lam) / N``. A prompt not yet visited scores ``prior``, or (None) the mean
    score of the visited ones (uniform before any visit) [ours: the paper scores the whole set every T_update steps
    with extra rollouts; here a prompt's score is refreshed each time it is rolled out, with no extra rollouts].
    alpha, beta, lam [?] (defaults 1, 1, 0.5).
    """

    def __init__(self, *, alpha: float = 1.0, beta: float = 1.0, lam: float = 0.5, prior: float | None = None):
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"vas lam (the VPS-weighted share of a step) must be in [0, 1], got {lam}.")
        self.alpha, self.beta, self.lam, self.prior = alpha, beta, lam, prior
        self.vps: dict[int, float] = {}

    def probabilities(self, num_rows: int) -> torch.Tensor:
        """`(num_rows,)` sampling probabilities of the rows."""
        if not self.vps:
            return torch.full((num_rows,), 1.0 / num_rows)
        prior = self.prior if self.prior is not None else sum(self.vps.values()) / len(self.vps)
        scores = torch.full((num_rows,), float(prior))
        known = {k: v for k, v in self.vps.items() if k < num_rows}  # (a task whose rows changed: ReST rounds)
        if known:
            scores[torch.tensor(list(known))] = torch.tensor(list(known.values()))
        return vas_probabilities(scores, lam=self.lam)

    def select(self, num_rows: int, per_step: int, *, seed: int, step: int) -> list[int]:
        p = self.probabilities(num_rows)
        return torch.multinomial(
            p, per_step, replacement=False, generator=generator(seed, step, SAMPLER_STREAM)
        ).tolist()

    def report(self, indices: list[int], outcome: torch.Tensor, rollout: Rollout) -> None:
        """Score the step's prompts from their groups: `outcome` `(N,)` (reward.names[0]) of the `rollout`'s rows,
        whose `group_ids` are positions in `indices`."""
        group_index = rollout.group_ids.cpu()
        lengths = rollout.completion_mask.sum(-1).tolist()
        completions = [r[:n] for r, n in zip(rollout.completion_ids.tolist(), lengths, strict=True)]
        for key, rows in _groups(indices, group_index):
            ovs = outcome_variance(outcome[rows].float()[None])  # (1,)
            tds = trajectory_diversity([[completions[i] for i in torch.nonzero(rows).flatten().tolist()]])
            self.vps[key] = float(variance_promotion_score(ovs, tds, alpha=self.alpha, beta=self.beta)[0])


class VadeSampler:
    """VADE (arXiv 2511.18902), `flowrl.grpo.vade`: each row's success rate has a posterior ``Beta(a_i, b_i)``
    (prior ``(a0, b0)``). A step draws ``p_i ~ Beta(a_i, b_i)`` for every row and rolls out the P rows with the
    highest ``p_i (1 - p_i)`` (Thompson sampling of the expected group variance). After the step, every posterior
    decays toward the prior, ``a <- a0 + gamma (a - a0)`` (and b), with ``gamma_fast`` for the rows just rolled out
    and ``gamma_slow`` for the others [ours: our reading of the two-scale decay], then the rolled-out rows take the
    conjugate update ``a += s, b += G - s`` (s = the group's summed success). Prior (1, 1), gamma 0.9 / 0.99 [?].
    """

    def __init__(self, *, a0: float = 1.0, b0: float = 1.0, gamma_fast: float = 0.9, gamma_slow: float = 0.99) -> None:
        if a0 <= 0 or b0 <= 0 or not (0 < gamma_fast <= 1 and 0 < gamma_slow <= 1):
            raise ValueError(
                f"vade needs a prior a0, b0 > 0 and decays in (0, 1], got a0={a0}, b0={b0}, "
                f"gamma_fast={gamma_fast}, gamma_slow={gamma_slow}."
            )
        self.a0, self.b0, self.gamma_fast, self.gamma_slow = a0, b0, gamma_fast, gamma_slow
        self.a: torch.Tensor | None = None  # (num_rows,)
        self.b: torch.Tensor | None = None

    def _posteriors(self, num_rows: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.a is None or self.a.numel() != num_rows:
            self.a, self.b = torch.full((num_rows,), self.a0), torch.full((num_rows,), self.b0)
        return self.a, self.b

    def select(self, num_rows: int, per_step: int, *, seed: int, step: int) -> list[int]:
        a, b = self._posteriors(num_rows)
        scores = thompson_scores(a, b, generator=generator(seed, step, SAMPLER_STREAM))
        return torch.topk(scores, per_step).indices.tolist()

    def report(self, indices: list[int], outcome: torch.Tensor, rollout: Rollout) -> None:
        """Decay every posterior, then update the rolled-out rows with their groups' successes (arguments as in
        `VarianceAwareSampler.report`; `select` comes first)."""
        if self.a is None or self.b is None:
            raise RuntimeError("VadeSampler.report before select: the posteriors are sized by select's num_rows.")
        groups = _groups(indices, rollout.group_ids.cpu())
        keys = torch.tensor([k for k, _ in groups], dtype=torch.long)
        seen = torch.zeros(self.a.numel(), dtype=torch.bool)
        seen[keys] = True
        a, b = decay_to_prior(
            self.a, self.b, seen, a0=self.a0, b0=self.b0, gamma_fast=self.gamma_fast, gamma_slow=self.gamma_slow
        )
        s = torch.tensor([float(outcome[rows].float().sum()) for _, rows in groups])
        n = torch.tensor([float(rows.sum()) for _, rows in groups])
        a[keys], b[keys] = beta_update(a[keys], b[keys], s, n)
        self.a, self.b = a, b


PromptSampler = VarianceAwareSampler | VadeSampler
PROMPT_SAMPLERS: dict[str, Callable[..., PromptSampler]] = {"vas": VarianceAwareSampler, "vade": VadeSampler}
