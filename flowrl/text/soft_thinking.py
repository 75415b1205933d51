"""SofT-GRPO's soft-thinking pieces (Zheng & Lee, arXiv 2511.06411; code zz1358m/SofT-GRPO-master), as pure functions.

Soft thinking feeds the model, in its thinking part, not a sampled token but the probability-weighted mixture of the
token embeddings. SofT-GRPO makes that mixture random with Gumbel noise (Gumbel-Softmax) and scores it with the
density of the noise. At a thinking step with next-token log-probabilities log p (temperature T, restricted to the
support S = top-k and top-p of p, renormalised on S):

    g_i ~ Gumbel(0, beta),  i in S                                                  (Gumbel noise, scale beta)
    q'_i = log p_i + g_i                                                            (perturbed log-probs, kept)
    y_i = softmax_{j in S}(q'_j / tau)_i,   y_i = 0 outside S                       (Gumbel-Softmax weights)
    e = sum_i y_i E_i = y @ E                                                       (the next input embedding)

e is a differentiable function of the logits for a fixed noise g (the reparameterisation trick): `soft_step`.
The rollout keeps q' (and S). Under a policy whose log-probs are log p^theta, the noise that turns them into the
same q' is eps_i = q'_i - log p^theta_i, so the policy's log-likelihood of the soft step is the Gumbel log-density of
that noise,

    log pi_theta(q') = sum_{i in S} [ -eps_i / beta - exp(-eps_i / beta) - log beta ],  eps_i = q'_i - log p^theta_i

(the official code takes the mean over the entries with log p^theta_i > -3, with eps clamped to [-1.5, 3]; see
`soft_logprob`)
(`soft_logprob`) and the importance ratio of a soft step is exp(log pi_theta(q') - log pi_old(q')), clipped as
GRPO's. Answer tokens are discrete: log pi_theta(o_t) = log p^theta(o_t) and the usual ratio (`token_logprob`).

Values (keyword arguments here; the config keys are `soft_thinking.*` when wired). Training values are the official
training script's (SofT-GRPO-deepscaler-8k.sh, `actor_rollout_ref.rollout.*`); the evaluation scripts differ:
- tau, the Gumbel-Softmax temperature: 0.1 in training (`gumbel_softmax_temperature=0.1`); 0.5 in evaluation
  (run_sample_gumbel_grpo.sh).
- beta, the Gumbel noise scale: 1.0 (`noise_factor=1`), noise added to the logits (`noise_on_logits=True`).
- top_k: 5 in training (`top_k=5`; 30 in evaluation); top_p: 0.95 (`top_p=0.95`); T: 1.0 in training
  (`temperature=1`; 0.6 in evaluation). The answer part after thinking samples discrete tokens with the same
  values (`after_thinking_*`).
- Group size 8 (`rollout.n=8`), lr 1e-6, KL 0.002 (low_var_kl), batch 64 prompts: the GRPO side, unchanged.
- log p in q' is renormalised on S (the official code renormalises on its stored top-k ids).
- The log-likelihood: as the official actor (verl-0.4.x dp_actor.py + torch_functional.py): log p renormalised on
  the stored top-k ids, z clamped to [-1.5, 3], mean over entries with log p > -3, one-token steps scored as tokens;
  the soft inputs of the training forward are constants (detached), as there.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch


class SoftStep(NamedTuple):
    embedding: torch.Tensor  # (R, D) e = y @ E
    weights: torch.Tensor  # (R, V) y, zero outside the support
    q_prime: torch.Tensor  # (R, V) log p + g on the support, -inf outside (what the rollout keeps)
    support: torch.Tensor  # (R, V) bool, S


def _fp32(x: torch.Tensor) -> torch.Tensor:
    """At least fp32 (fp64 stays fp64)."""
    return x.to(torch.promote_types(x.dtype, torch.float32))


def support_mask(logits: torch.Tensor, *, top_k: int | None = None, top_p: float | None = None) -> torch.Tensor:
    """(R, V) bool: the top-k tokens of each row, further cut to the smallest prefix (most likely first) whose
    probability reaches top_p (the token that crosses top_p is kept). None disables either cut."""
    V = logits.shape[-1]
    order = logits.argsort(dim=-1, descending=True)  # (R, V)
    keep = torch.ones_like(logits, dtype=torch.bool)
    if top_k is not None:
        keep &= torch.arange(V, device=logits.device)[None, :] < top_k
    if top_p is not None:
        p_sorted = torch.softmax(_fp32(logits), dim=-1).gather(-1, order)
        before = p_sorted.cumsum(-1) - p_sorted  # mass of the tokens ranked above
        keep &= before < top_p
    return torch.zeros_like(keep).scatter(-1, order, keep)


def restricted_logprobs(logits: torch.Tensor, support: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """log p_i = log softmax_{j in S}(logits_j / T)_i on the support, -inf outside; differentiable in `logits`."""
    return torch.log_softmax((_fp32(logits) / temperature).masked_fill(~support, float("-inf")), dim=-1)


def gumbel_noise(
    shape: torch.Size | tuple[int, ...], *, scale: float = 1.0, generator=None, device=None
) -> torch.Tensor:
    """g = -beta log(-log U), U ~ Uniform(0, 1): Gumbel(0, beta) noise."""
    u = torch.rand(shape, generator=generator, device=device).clamp(1e-20, 1 - 1e-7)
    return -scale * torch.log(-torch.log(u))


def soft_step(
    logits: torch.Tensor,
    embedding: torch.Tensor,
    *,
    noise: torch.Tensor | None = None,
    tau: float = 0.1,
    scale: float = 1.0,
    temperature: float = 1.0,
    top_k: int | None = 5,
    top_p: float | None = 0.95,
    generator: torch.Generator | None = None,
) -> SoftStep:
    """One soft-thinking step (module docstring): `logits` (R, V), `embedding` E (V, D); `noise` g (R, V) drawn as
    Gumbel(0, `scale`) when None. With a fixed `noise` the returned embedding is differentiable in `logits` and E."""
    support = support_mask(logits.detach(), top_k=top_k, top_p=top_p)
    logp = restricted_logprobs(logits, support, temperature=temperature)
    if noise is None:
        noise = gumbel_noise(logits.shape, scale=scale, generator=generator, device=logits.device)
    q_prime = torch.where(support, logp + noise, float("-inf"))
    weights = torch.softmax(q_prime / tau, dim=-1)  # exactly 0 outside S
    return SoftStep(weights.to(embedding.dtype) @ embedding, weights, q_prime, support)


def soft_logprob(
    logits: torch.Tensor, q_prime: torch.Tensor, support: torch.Tensor, *, scale: float = 1.0,
    temperature: float = 1.0, clamp: tuple[float, float] | None = (-1.5, 3.0), min_logp: float | None = -3.0,
    reduce: str = "mean",
) -> torch.Tensor:  # fmt: skip
    """(...,) log pi_theta(q'): the Gumbel(0, beta) log-density of z_i = (q'_i - log p^theta_i) / beta over the
    support (module docstring), differentiable in `logits` (the policy's logits at the step, with grad).

    The official code (verl-0.4.x/verl/utils/torch_functional.py, `logprobs_from_logits_topk_gumbel`) also clamps z
    to [-1.5, 3] (`clamp`), keeps only the entries with log p^theta_i > -3 (`min_logp`), averages instead of summing
    (`reduce="mean"`) and scores a step whose support is one token as that discrete token; these are the defaults.
    ``clamp=None, min_logp=None, reduce="sum"`` is the plain log-density.
    """
    logp = restricted_logprobs(logits, support, temperature=temperature)
    z = torch.where(support, (q_prime - logp) / scale, 0.0)
    if clamp is not None:
        z = z.clamp(*clamp)
    dens = -z - torch.exp(-z) - math.log(scale)
    keep = support if min_logp is None else support & (logp.detach() > min_logp)
    total = torch.where(keep, dens, 0.0).sum(-1)
    if reduce == "mean":
        total = total / keep.sum(-1).clamp(min=1)
    elif reduce != "sum":
        raise ValueError(f"reduce must be 'mean' or 'sum', got {reduce!r}.")
    single = support.sum(-1) == 1  # one candidate: a discrete token
    if single.any():
        only = support.long().argmax(-1)
        tok = torch.log_softmax(_fp32(logits) / temperature, dim=-1).gather(-1, only[..., None]).squeeze(-1)
        total = torch.where(single, tok, total)
    return total


def token_logprob(logits: torch.Tensor, tokens: torch.Tensor, *, temperature: float = 1.0) -> torch.Tensor:
    """(R,) log pi_theta(o_t) = log softmax(logits / T)[o_t]: the discrete answer tokens' log-likelihood."""
    return torch.log_softmax(_fp32(logits) / temperature, dim=-1).gather(-1, tokens[:, None]).squeeze(-1)


def clipped_ratio_loss(
    logp: torch.Tensor, old_logp: torch.Tensor, advantages: torch.Tensor, *, clip_eps: float = 0.2
) -> torch.Tensor:
    """Per-step PPO/GRPO surrogate -min(r A, clip(r, 1 - eps, 1 + eps) A), r = exp(logp - old_logp), for soft steps
    (logp from `soft_logprob`) and answer tokens (from `token_logprob`) alike."""
    ratio = torch.exp(logp - old_logp)
    return -torch.minimum(ratio * advantages, ratio.clamp(1 - clip_eps, 1 + clip_eps) * advantages)
