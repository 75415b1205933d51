"""Extension points of the text trainer (`flowrl train-text`), where the LLM GRPO variants of docs/papers_llm.md
plug in. Each hook is an entry of a dict literal below, chosen by name in the `hooks` config section, and the
trainer calls it at one place of its step::

    prompts -> sample (group sizes: hooks.group_sizes) -> score -> HINTED SECOND ROLLOUT (hooks.hints)
      -> REWARD SHAPING (hooks.shaping)
      -> advantages (loss.variant; group keys: hooks.group_ids) -> TOKEN WEIGHTS / MASK (hooks.token_weights,
      hooks.token_mask) -> rows with a non-zero advantage -> update: REGULARISER (hooks.regularizer, coefficient
      loss.kl_beta ramped to hooks.kl_beta_end) and the loss: `policy_loss`, or a WHOLE-LOSS plugin (hooks.whole_loss)

The hooks are thin: the math is the pure functions of `flowrl.grpo`, and the stateful parts (dynamic reward
weights, the knapsack planner's success rates, the hint tiers) are small objects here, built once per run.
Stand-ins for what cannot run here (a process reward model, a multi-label alignment reward model, natural-language
hints) are rule-based pieces of the arithmetic task, selected by name or given as ``package.module:function``.
"""

from __future__ import annotations

import pkgutil
import re
from collections.abc import Callable
from typing import NamedTuple

import torch

from flowrl.grpo.advantages_llm import entropy_shaped_advantages
from flowrl.grpo.budget import gvm_allocation, knapsack_allocation
from flowrl.grpo.discriminative import disco_loss, drpo_positive_weights, kl_hinge, mean_logp_score
from flowrl.grpo.kl import KL_ESTIMATORS, kl_k3
from flowrl.grpo.regularizers import llds_penalty, masked_teacher_kl
from flowrl.grpo.reward_weights import multi_objective_rewards
from flowrl.grpo.schedules import ExponentialBudget, HintPlanner, LinearSchedule
from flowrl.grpo.segments import cutpoint_segments, probability_mask, segment_advantages
from flowrl.grpo.selection import adv_entropy_token_mask
from flowrl.grpo.shaping import budget_rewards, grpo_lambda_rewards, posterior_rewards, unlikeliness_rewards
from flowrl.grpo.thoughts import group_accuracy, thought_rewards, thought_segments
from flowrl.grpo.trackers import DynamicRewardWeights
from flowrl.grpo.weights_llm import conflict_token_weights, group_kl_token_weights
from flowrl.text.logprobs import TokenLogProbs

# ----------------------------------------------------------------------------------------------- reward shaping


class ShapingInput(NamedTuple):
    """What a reward-shaping hook sees of one step (N = sampled completions, C = completion positions)."""

    rewards: torch.Tensor  # (N, K) one column per reward function
    total: torch.Tensor  # (N,) the configured weighted sum (reward.weights)
    outcome: torch.Tensor  # (N,) column 0 of `rewards`: the verifier's outcome (0/1 for the shapers that need it)
    lengths: torch.Tensor  # (N,) completion lengths in tokens
    terminated: torch.Tensor  # (N,) bool: ended with EOS or a stop string
    group_ids: torch.Tensor  # (N,) group keys
    mask: torch.Tensor  # (N, C) completion tokens
    texts: list[str]  # decoded completions (up to EOS)
    tokens: list[list[str]]  # each completion's tokens as strings (EOS included), for step scorers
    answers: list[str]  # each completion's task answer
    step: int
    max_new_tokens: int
    sampling: Callable[[], TokenLogProbs]  # no-grad log-probs and entropies of the sampled tokens (computed once)
    policy_gradient: Callable[[torch.Tensor], torch.Tensor]  # (N,) rewards -> flat GRPO-loss gradient, output head
    model: torch.nn.Module | None = None  # the policy model (GRPO-CARE keeps an EMA copy of it)
    logprobs_under: Callable[[torch.nn.Module], TokenLogProbs] | None = None  # the rollout scored by another model


class Shaped(NamedTuple):
    total: torch.Tensor  # (N,) the reward the variant's advantage function sees
    token_adv: torch.Tensor | None = None  # (N, C) added to the advantage of each token (TP-GRPO's process part)


ShapeFn = Callable[[ShapingInput], Shaped]


def _binary_outcome(x: ShapingInput, hook: str) -> torch.Tensor:
    if not bool(((x.outcome == 0) | (x.outcome == 1)).all()):
        raise ValueError(
            f"hooks.shaping={hook} needs a 0/1 verifier outcome in the first reward column (reward.names[0], e.g. "
            f"exact_match_eos), got values {sorted(set(x.outcome.tolist()))[:5]}. Put the verifier first."
        )
    return x.outcome.float()


def grpo_lambda(*, top_fraction: float = 0.2) -> ShapeFn:
    """GRPO-λ (`shaping.grpo_lambda_rewards`): the length-aware reward only for the most accurate groups."""
    return lambda x: Shaped(
        grpo_lambda_rewards(_binary_outcome(x, "grpo_lambda"), x.lengths, x.group_ids, top_fraction=top_fraction)
    )


def unlikely(*, beta_rank: float = 0.25) -> ShapeFn:
    """Rewarding the Unlikely (`shaping.unlikeliness_rewards`): rank by the sampling policy's mean token log-prob."""

    def shape(x: ShapingInput) -> Shaped:
        seq_logp = mean_logp_score(x.sampling().logp, x.mask)  # (N,)
        return Shaped(unlikeliness_rewards(x.total, seq_logp, x.group_ids, beta_rank=beta_rank))

    return shape


def think_short(
    *, initial: float | None = None, gamma: float = 0.9, every: int = 100, length_weight: float = 0.5
) -> ShapeFn:
    """Train Long, Think Short (`shaping.budget_rewards` against `schedules.ExponentialBudget`); ``initial`` None =
    generation.max_new_tokens (the paper's 256 is far above the arithmetic task's 8)."""

    def shape(x: ShapingInput) -> Shaped:
        budget = ExponentialBudget(initial or float(x.max_new_tokens), gamma, every)(x.step)
        outcome = _binary_outcome(x, "think_short")
        return Shaped(budget_rewards(outcome, x.lengths, budget=budget, length_weight=length_weight))

    return shape


def posterior(*, thinking: str = "digit_prefix") -> ShapeFn:
    """Posterior-GRPO (`shaping.posterior_rewards`): ``R_format + R_outcome + R_outcome R_think`` with the format
    reward = ended with EOS and ``R_think`` from a pluggable process scorer `(N,)` in [0, 1]."""
    scorer = resolve(thinking, THINKING_SCORERS, what="thinking scorer")

    def shape(x: ShapingInput) -> Shaped:
        return Shaped(posterior_rewards(x.terminated.float(), _binary_outcome(x, "posterior"), scorer(x)))

    return shape


def tp_grpo(*, steps: str = "digit_steps", process_weight: float = 0.5) -> ShapeFn:
    """TP-GRPO (`flowrl.grpo.thoughts`): step labels from a pluggable step scorer `(N, C)`, thoughts, the
    capability-adaptive thought reward with the group accuracy as proficiency; ``process_weight`` times it is added
    to every token's advantage (the variant's group advantage of the outcome is the other term)."""
    scorer = resolve(steps, STEP_SCORERS, what="step scorer")

    def shape(x: ShapingInput) -> Shaped:
        outcome = _binary_outcome(x, "tp_grpo")
        process = thought_rewards(thought_segments(scorer(x), x.mask), group_accuracy(outcome, x.group_ids))
        return Shaped(outcome, token_adv=process_weight * process)

    return shape


def multi_objective(*, weights: list[float], scorer: str = "arith_aspects") -> ShapeFn:
    """Multi-objective weighted reward (`reward_weights.multi_objective_rewards`): a multi-label scorer's `(N, K)`
    heads combined with fixed ``weights`` (required: the paper's are not known)."""
    heads = resolve(scorer, MULTI_LABEL_SCORERS, what="multi-label scorer")
    w = torch.tensor(weights, dtype=torch.float32)
    return lambda x: Shaped(multi_objective_rewards(heads(x), weights=w))


def dynamic_weights(*, scorer: str = "arith_aspects", lr: float = 1.0, every: int = 1) -> ShapeFn:
    """Dynamic reward weighting, gradient mode (`trackers.DynamicRewardWeights`): each step the GRPO-loss gradient of
    every objective on the output head, their influence, a mirror-descent step on the weights, then the weighted
    sum. ``lr`` stands for the paper's eta / lambda_reg (our value)."""
    heads = resolve(scorer, MULTI_LABEL_SCORERS, what="multi-label scorer")
    state: dict[str, DynamicRewardWeights] = {}

    def shape(x: ShapingInput) -> Shaped:
        scores = heads(x)  # (N, K)
        tracker = state.setdefault("weights", DynamicRewardWeights(scores.shape[1], lr=lr, every=every))
        grads = torch.stack([x.policy_gradient(scores[:, k]) for k in range(scores.shape[1])])  # (K, P)
        return Shaped(scores @ tracker.update(grads))

    return shape


def answer_span_mask(tokens: list[list[str]], width: int, *, open_tag: str = "<answer>") -> torch.Tensor:
    """`(N, width)` float mask of each completion's answer tokens: the tokens after its first `open_tag` token, up
    to its end (the closing tag and EOS included); all zero for a completion without the tag."""
    mask = torch.zeros(len(tokens), width)
    for i, toks in enumerate(tokens):
        if open_tag in toks[:width]:
            mask[i, toks.index(open_tag) + 1 : min(len(toks), width)] = 1.0
    return mask


def care(*, lam: float = 0.5, momentum: float = 0.995, open_tag: str = "<answer>") -> ShapeFn:
    """GRPO-CARE's consistency bonus (arXiv 2506.16141; `flowrl.grpo.consistency`): a slowly-evolving reference, the
    EMA ``theta_ref <- m theta_ref + (1 - m) theta`` of the policy (a copy made at the first step, updated with the
    weights of the previous step's update before each step's scoring), scores each completion's answer given the
    prompt, the image and its own reasoning, ``c_i = exp(mean over the answer tokens of log pi_ref)``; the correct
    completions (reward.names[0] = 1) whose ``c_i`` is at least the mean of the group's correct ones get
    ``b_i = lam``, and the trained reward is ``r_i + b_i``. The answer tokens follow the first `open_tag` token
    (`answer_span_mask`); a completion without one has c_i = 0. lam 0.5, m 0.995 [?]."""
    from flowrl.grpo.consistency import consistency_bonus, ema_update

    state: dict[str, torch.nn.Module] = {}

    def shape(x: ShapingInput) -> Shaped:
        if x.model is None or x.logprobs_under is None:
            raise ValueError("hooks.shaping=care needs the policy model and a scorer in ShapingInput (the trainer).")
        correct = _binary_outcome(x, "care")
        if "ema" not in state:
            state["ema"] = _frozen_copy(x.model)
        else:
            ema_update(state["ema"], x.model, momentum=momentum)
        logp = x.logprobs_under(state["ema"]).logp  # (N, C)
        span = answer_span_mask(x.tokens, logp.shape[1], open_tag=open_tag) * x.mask  # (N, C)
        n = span.sum(-1)
        likelihood = torch.where(n > 0, torch.exp((logp * span).sum(-1) / n.clamp(min=1)), 0.0)  # (N,)
        return Shaped(x.total + consistency_bonus(correct, likelihood, x.group_ids, lam=lam))

    return shape


def _frozen_copy(model: torch.nn.Module) -> torch.nn.Module:
    """A frozen copy in eval mode; a VLM's copy shares the policy's image store (images bound later reach it)."""
    import copy

    from flowrl.vlm.model import KeyedImageVLM

    out = copy.deepcopy(model).eval().requires_grad_(False)
    if isinstance(model, KeyedImageVLM):
        out.images = model.images
    return out


SHAPERS: dict[str, Callable[..., ShapeFn]] = {
    "care": care,
    "grpo_lambda": grpo_lambda,
    "unlikely": unlikely,
    "think_short": think_short,
    "posterior": posterior,
    "tp_grpo": tp_grpo,
    "multi_objective": multi_objective,
    "dynamic_weights": dynamic_weights,
}

# ------------------------------------------------------------------- rule-based stand-ins of the arithmetic task


def digit_steps(x: ShapingInput) -> torch.Tensor:
    """`(N, C)` step labels, one step per token: token t is a correct step when it is the answer's character t, and
    the token after the answer (EOS) is correct when the whole completion is. A stand-in for TP-GRPO's generative
    process judge on the arithmetic task (character tokens)."""
    labels = torch.zeros(x.mask.shape)
    for i, (toks, answer) in enumerate(zip(x.tokens, x.answers, strict=True)):
        for t, tok in enumerate(toks[: x.mask.shape[1]]):
            if t < len(answer):
                labels[i, t] = float(tok == answer[t])
            elif t == len(answer):
                labels[i, t] = float(bool(x.terminated[i]) and x.texts[i] == answer)
    return labels


def digit_prefix(x: ShapingInput) -> torch.Tensor:
    """`(N,)` in [0, 1]: the fraction of the answer's characters reproduced at their position (a stand-in for a
    thinking-quality score)."""
    pairs = zip(x.texts, x.answers, strict=True)
    out = [sum(a == b for a, b in zip(t, ans, strict=False)) / max(len(ans), 1) for t, ans in pairs]
    return torch.tensor(out, dtype=torch.float32)


_NUMBER = re.compile(r"-?\d+")


def arith_aspects(x: ShapingInput) -> torch.Tensor:
    """`(N, 4)` rule-based heads standing in for a multi-label alignment reward model: correct (the verifier's
    outcome), stopped (ended with EOS), well-formed (the text is a number), concise (``1 - L / max_new_tokens``)."""
    formed = torch.tensor([float(bool(_NUMBER.fullmatch(t))) for t in x.texts])
    concise = 1.0 - x.lengths.float().cpu() / x.max_new_tokens
    return torch.stack([x.outcome.float().cpu(), x.terminated.float().cpu(), formed, concise], 1)


STEP_SCORERS: dict[str, Callable[[ShapingInput], torch.Tensor]] = {"digit_steps": digit_steps}
THINKING_SCORERS: dict[str, Callable[[ShapingInput], torch.Tensor]] = {"digit_prefix": digit_prefix}
MULTI_LABEL_SCORERS: dict[str, Callable[[ShapingInput], torch.Tensor]] = {"arith_aspects": arith_aspects}


def resolve(name: str, table: dict[str, Callable], *, what: str) -> Callable:
    """`table[name]`, or the function ``package.module:function``."""
    if name in table:
        return table[name]
    if ":" in name:
        return pkgutil.resolve_name(name)
    raise ValueError(f"Unknown {what} {name!r}. Valid: {sorted(table)}, or 'package.module:function'.")


# ----------------------------------------------------------------------------------------- token weights / mask


class TokenInput(NamedTuple):
    adv: torch.Tensor  # (N,) or (N, C) advantages
    completion_ids: torch.Tensor  # (N, C)
    mask: torch.Tensor  # (N, C) tokens in the loss
    group_ids: torch.Tensor  # (N,)
    step: int
    sampling: Callable[[], TokenLogProbs]  # no-grad log-probs and entropies of the sampled tokens
    full_logprobs: Callable[[], torch.Tensor]  # (N, C, V) full-vocabulary log-probs of the sampling policy
    outcome: torch.Tensor  # (N,) reward.names[0]
    mc_values: Callable[[list[tuple[int, int]], int], torch.Tensor]  # [(row, t)], n -> mean outcome of n continuations


class TokenOut(NamedTuple):
    adv: torch.Tensor  # (N,) or (N, C)
    weights: torch.Tensor | None  # (N, C) detached per-token weights (PolicyBatch.weights)


def _per_sample(adv: torch.Tensor, hook: str) -> torch.Tensor:
    if adv.ndim != 1:
        raise ValueError(f"hooks.token_weights={hook} needs per-sample advantages; hooks.shaping made them per token.")
    return adv


def gtpo(
    *, threshold: float = 0.7, gamma: float = 0.1, positive_weight: float = 2.0, negative_weight: float = 0.0
) -> Callable[[TokenInput], TokenOut]:
    """GTPO: entropy-shaped advantages (`advantages_llm.entropy_shaped_advantages`, mean entropy of the sampling
    policy) and conflict-token weights (`weights_llm.conflict_token_weights`)."""

    def apply(x: TokenInput) -> TokenOut:
        ent = x.sampling().entropy
        m = x.mask.float()
        seq_h = (ent * m).sum(-1) / m.sum(-1).clamp(min=1)  # (N,)
        adv = entropy_shaped_advantages(_per_sample(x.adv, "gtpo"), seq_h, threshold=threshold, gamma=gamma)
        w = conflict_token_weights(
            x.completion_ids,
            x.mask,
            adv,
            x.group_ids,
            positive_weight=positive_weight,
            negative_weight=negative_weight,
        )
        return TokenOut(adv, w)

    return apply


def tw_grpo(*, alpha: float = 1.4) -> Callable[[TokenInput], TokenOut]:
    """TW-GRPO: group-KL token weights from the full-vocabulary log-probs (`weights_llm.group_kl_token_weights`)."""
    return lambda x: TokenOut(x.adv, group_kl_token_weights(x.full_logprobs(), x.mask, x.group_ids, alpha=alpha))


def d3s(*, start: float = 0.5, ramp_steps: int = 100) -> Callable[[TokenInput], torch.Tensor]:
    """D³S token level: keep the top ``keep(s)`` of the step's tokens by ``|A| H``
    (`selection.adv_entropy_token_mask`), ``keep(s)`` ramping from ``start`` to 1 over ``ramp_steps`` (our reading
    of the schedule)."""
    schedule = LinearSchedule(start, 1.0, ramp_steps)
    return lambda x: adv_entropy_token_mask(x.adv, x.sampling().entropy, x.mask, keep_ratio=schedule(x.step))


def segment_po(
    *, prob_threshold: float = 0.9, interval: int = 5, continuations: int = 2
) -> Callable[[TokenInput], TokenOut]:
    """Segment Policy Optimization, SPO-chain (`flowrl.grpo.segments`): segments cut at every ``interval``-th token
    sampled with probability < ``prob_threshold``; the value at each segment start is the mean outcome of
    ``continuations`` Monte-Carlo continuations of the policy from there (the trainer's `mc_values`), the last value
    the completion's own outcome; ``A_k = V(s_{k+1}) - V(s_k)`` replaces the advantage, and only the cutpoint tokens
    carry it (probability mask as the token weight)."""

    def apply(x: TokenInput) -> TokenOut:
        seg = cutpoint_segments(x.sampling().logp, x.mask, prob_threshold=prob_threshold, interval=interval)
        starts = [(i, t) for i, t in torch.nonzero(seg.starts).tolist()]  # row-major: segment k of row i in order
        mc = x.mc_values(starts, continuations) if starts else torch.zeros(0)
        values = torch.zeros(x.mask.shape[0], int(seg.count.max()) + 1)
        slot = torch.zeros(x.mask.shape[0], dtype=torch.long)
        for (i, _), v in zip(starts, mc.tolist(), strict=True):
            values[i, slot[i]] = v
            slot[i] += 1
        values[torch.arange(values.shape[0]), seg.count] = x.outcome.float().cpu()
        return TokenOut(segment_advantages(values, seg), probability_mask(seg, x.mask))

    return apply


TOKEN_WEIGHTS: dict[str, Callable[..., Callable[[TokenInput], TokenOut]]] = {
    "gtpo": gtpo,
    "tw_grpo": tw_grpo,
    "segment_po": segment_po,
}
TOKEN_MASKS: dict[str, Callable[..., Callable[[TokenInput], torch.Tensor]]] = {"d3s": d3s}

# ------------------------------------------------------------------------------------------------- regularisers


class RegularizerInput(NamedTuple):
    logp: torch.Tensor  # (M, C) with grad
    old_logp: torch.Tensor  # (M, C)
    ref_logp: torch.Tensor | None  # (M, C) reference (or SALSA soup) log-probs, when the regulariser needs them
    teacher_logp: torch.Tensor | None  # (M, C) teacher log-probs (KDRL)
    adv: torch.Tensor  # (M,) or (M, C)
    mask: torch.Tensor  # (M, C)
    outcome: torch.Tensor  # (M,)


def _reference_kl(x: RegularizerInput, *, estimator: str) -> torch.Tensor:
    return KL_ESTIMATORS[estimator](x.logp, x.ref_logp)


def _teacher_kl(x: RegularizerInput, *, estimator: str) -> torch.Tensor:
    del estimator  # KDRL's k2 is part of its definition
    return masked_teacher_kl(x.logp, x.teacher_logp, x.outcome)


def _llds(x: RegularizerInput, *, estimator: str) -> torch.Tensor:
    del estimator
    adv = x.adv if x.adv.ndim == 1 else (x.adv * x.mask).sum(-1)
    return llds_penalty(x.logp, x.old_logp, adv, x.mask)


REGULARIZERS: dict[str, Callable[..., torch.Tensor]] = {
    "reference_kl": _reference_kl,  # loss.kl_estimator of logp against the reference (or the SALSA soup)
    "teacher_kl": _teacher_kl,  # KDRL: k2 to a teacher, off on correct responses (hooks.teacher_path)
    "llds": _llds,  # LLDS likelihood preservation (non-zero from the second inner epoch on)
}

# ------------------------------------------------------------------------------------------------ whole losses


class WholeLossInput(NamedTuple):
    logp: torch.Tensor  # (M, C) with grad
    old_logp: torch.Tensor  # (M, C)
    mask: torch.Tensor  # (M, C)
    outcome: torch.Tensor  # (M,) 0/1
    group_ids: torch.Tensor  # (M,) whole groups only
    pos_weights: torch.Tensor | None  # (M,) DRPO's weights of the correct responses
    num_questions: int  # groups of the whole step (all ranks)
    adv: torch.Tensor | None = None  # (M,) or (M, C) the variant's advantages (Reg-GRPO's regression target)


class WholeLoss(NamedTuple):
    loss: Callable[[WholeLossInput], torch.Tensor]
    pos_weights: Callable[[torch.Tensor, torch.Tensor, torch.Tensor, int], torch.Tensor] | None  # lengths, outcome,
    # group ids, max_len -> (N,), computed over whole groups at rollout time


def disco(*, tau: float = 10.0, delta: float = 1e-4, beta: float = 1e3) -> WholeLoss:
    """DisCO (`discriminative.disco_loss` on the logL score + `kl_hinge` of k3(pi_old, pi_theta))."""

    def loss(x: WholeLossInput) -> torch.Tensor:
        scores = mean_logp_score(x.logp, x.mask)  # (M,)
        main = disco_loss(
            scores, x.outcome, x.group_ids, tau=tau, num_questions=x.num_questions, pos_weights=x.pos_weights
        )
        return main + kl_hinge(kl_k3(x.old_logp, x.logp), x.mask, delta=delta, beta=beta)

    return WholeLoss(loss, None)


def drpo(*, lam: float = 0.1, tau: float = 10.0, delta: float = 1e-4, beta: float = 1e3) -> WholeLoss:
    """DRPO: DisCO with length weights of the correct responses (`discriminative.drpo_positive_weights`)."""

    def weights(lengths, outcome, group_ids, max_len):
        return drpo_positive_weights(lengths, outcome, group_ids, max_len=max_len, lam=lam)

    return WholeLoss(disco(tau=tau, delta=delta, beta=beta).loss, weights)


def reg_grpo(*, beta: float = 1.0) -> WholeLoss:
    """Reg-GRPO (DeepVideo-R1, arXiv 2506.07464; `flowrl.grpo.reg_grpo`): regress the group-normalised advantage
    by the centred sequence log-ratio, no clip::

        A_hat_i = (l_i - mean_{j in group} l_j) / beta,   l_i = sum_t mask_it (logp_it - old_logp_it)
        L = sum_i (A_i - A_hat_i)^2 / (rows of the step)

    ``A_i`` is the variant's advantage (per completion; a per-token one is averaged over the completion's tokens);
    the groups whose reward.names[0] outcomes are all equal are not forwarded (they add 0 to L at the rollout
    policy). beta 1 [?]."""
    if beta <= 0:
        raise ValueError(f"reg_grpo beta must be > 0, got {beta}.")
    from flowrl.grpo.reg_grpo import reg_grpo_targets

    def loss(x: WholeLossInput) -> torch.Tensor:
        if x.adv is None:
            raise ValueError("hooks.whole_loss=reg_grpo needs the advantages in WholeLossInput (the trainer).")
        m = x.mask.float()
        adv = x.adv if x.adv.ndim == 1 else (x.adv * m).sum(-1) / m.sum(-1).clamp(min=1)  # (M,)
        target = reg_grpo_targets(x.logp, x.old_logp, m, x.group_ids, beta=beta)  # (M,)
        group_size = int(torch.unique(x.group_ids, return_counts=True)[1][0])
        return ((adv - target) ** 2).sum() / (x.num_questions * group_size)

    return WholeLoss(loss, None)


WHOLE_LOSSES: dict[str, Callable[..., WholeLoss]] = {"disco": disco, "drpo": drpo, "reg_grpo": reg_grpo}

# ------------------------------------------------------------------------------------------------ rollout control


Presample = Callable[[int], tuple[torch.Tensor, torch.Tensor]]  # n0 -> (accept rates (P,), gradient norms (P,))


class KnapsackSizes:
    """Knapsack RL group sizes (`budget.knapsack_allocation`): per prompt the success rate of its last visit
    (``prior`` before the first), the step's budget ``prompts x group_size`` split by the exact knapsack."""

    def __init__(self, *, n_min: int = 2, n_max: int = 16, prior: float = 0.5) -> None:
        if n_min < 2 or n_max < n_min:
            raise ValueError(f"Knapsack group sizes need 2 <= n_min <= n_max (a group needs 2), got {n_min}, {n_max}.")
        self.n_min, self.n_max, self.prior = n_min, n_max, prior
        self.success: dict[int, float] = {}

    def sizes(self, keys: list[int], *, budget: int, presample: Presample) -> list[int]:
        del presample  # the knapsack uses the success rates of earlier visits
        rates = torch.tensor([self.success.get(k, self.prior) for k in keys])
        return knapsack_allocation(rates, budget=budget, n_min=self.n_min, n_max=self.n_max).tolist()

    def report(self, keys: list[int], outcome: torch.Tensor, group_index: torch.Tensor) -> None:
        """Fold the step's outcomes in; `group_index` `(N,)` is each row's position in `keys`."""
        for j, k in enumerate(keys):
            rows = group_index == j
            if bool(rows.any()):
                self.success[k] = float(outcome[rows].float().mean())


class GVMSizes:
    """GVM-RAFT group sizes (`budget.gvm_allocation`, arXiv 2505.02391): each step pre-samples ``n0`` completions per
    prompt, measures its acceptance rate (reward.names[0] > 0) and the gradient norm of its accepted samples' mean
    log-likelihood (on the output head), and splits the budget ``n_i ∝ G_i / sqrt(p_i + alpha / p_i^(beta - 1))``.
    A prompt given fewer than 2 completions is dropped from the step (a group needs 2); when no prompt is usable
    (nothing accepted) every prompt gets ``fallback`` completions. ``n0 = 8``, alpha 1e-3, beta 2 are the code's."""

    def __init__(self, *, n0: int = 8, alpha: float = 1e-3, beta: float = 2.0, fallback: int = 8) -> None:
        if n0 < 1 or fallback < 2:
            raise ValueError(f"GVM needs n0 >= 1 pre-samples and a fallback group of >= 2, got {n0}, {fallback}.")
        self.n0, self.alpha, self.beta, self.fallback = n0, alpha, beta, fallback

    def sizes(self, keys: list[int], *, budget: int, presample: Presample) -> list[int]:
        rates, norms = presample(self.n0)
        n = gvm_allocation(rates, norms, budget=budget, alpha=self.alpha, beta=self.beta)
        if int((n >= 2).sum()) == 0:
            return [self.fallback] * len(keys)
        return torch.where(n >= 2, n, torch.zeros_like(n)).tolist()

    def report(self, keys: list[int], outcome: torch.Tensor, group_index: torch.Tensor) -> None:
        del keys, outcome, group_index  # GVM measures afresh each step


GROUP_SIZES: dict[str, Callable[..., KnapsackSizes | GVMSizes]] = {"knapsack": KnapsackSizes, "gvm": GVMSizes}


# --------------------------------------------------------------------------------------------- hinted rollouts


def answer_prefix(row: dict, tier: str) -> str:
    """Stand-in hints of the arithmetic task, by Scaf-GRPO tier: the answer's first character (knowledge), first two
    (planning), or the whole answer (solution). A char-level arithmetic LM cannot read natural-language hints, and an
    in-context worked example drops its accuracy to 0, so a forced answer prefix is the hint it can use."""
    answer = str(row["answer"])
    return {"knowledge": answer[:1], "planning": answer[:2], "solution": answer}[tier]


def rubric_steps(row: dict, tier: str) -> str:
    """RGR-GRPO's rubric guidance on the chain task (flowrl/text/chain.py; our stand-in for its rubric-guided
    self-refinement, which a char-level LM cannot read as text): the scratchpad up to and including the first
    (knowledge), second (planning) or every (solution) checkable partial result of the rubric's 'steps'."""
    answer = str(row["answer"])
    cuts = [i + 1 for i, c in enumerate(answer) if c == "="]  # ends of "s_k op a=" segments
    k = {"knowledge": 1, "planning": 2, "solution": len(cuts) + 1}[tier]
    return answer if k > len(cuts) else answer[: cuts[k - 1]]


HINT_TEXTS: dict[str, Callable[[dict, str], str]] = {"answer_prefix": answer_prefix, "rubric_steps": rubric_steps}


class Hints(NamedTuple):
    """A hinted second rollout for the groups whose every completion failed (reward.names[0] <= 0).

    ``scaf_grpo`` (arXiv 2510.19807): the hint is appended to the prompt and the guided completion is trained
    on-policy *with* the hint in its context. ``guide`` (arXiv 2506.13923): the guided completion is trained *as if
    the hint were absent*: the hint tokens become the start of the response to the plain prompt, and the ratio's
    denominator is the hinted sampler's probability (1 on the forced hint tokens, `grpo.hints.guided_old_logp`).
    Either way the first successful guided completion replaces the group's first failed one
    (`grpo.hints.replace_failed`), and the group's advantages are computed over the mixed group."""

    mode: str  # "scaf_grpo" | "guide"
    planner: HintPlanner  # tiers and the exemption phase
    text: Callable[[dict, str], str]  # (task row, tier) -> hint text
    guided_samples: int  # completions sampled per hinted prompt and tier


def _hints(mode: str):
    def make(*, exemption_steps: int = 0, guided_samples: int = 4, hint: str = "answer_prefix", tiers=None) -> Hints:
        if guided_samples < 1:
            raise ValueError(f"hints need guided_samples >= 1, got {guided_samples}.")
        planner_kwargs = {} if tiers is None else {"tiers": tuple(tiers)}
        planner = HintPlanner(exemption_steps=exemption_steps, **planner_kwargs)
        return Hints(mode, planner, resolve(hint, HINT_TEXTS, what="hint text function"), guided_samples)

    return make


HINTS: dict[str, Callable[..., Hints]] = {"scaf_grpo": _hints("scaf_grpo"), "guide": _hints("guide")}


__all__ = [
    "MULTI_LABEL_SCORERS",
    "REGULARIZERS",
    "SHAPERS",
    "STEP_SCORERS",
    "THINKING_SCORERS",
    "TOKEN_MASKS",
    "TOKEN_WEIGHTS",
    "WHOLE_LOSSES",
    "answer_span_mask",
    "GROUP_SIZES",
    "GVMSizes",
    "HINTS",
    "HINT_TEXTS",
    "Hints",
    "KnapsackSizes",
    "RegularizerInput",
    "Shaped",
    "ShapingInput",
    "TokenInput",
    "TokenOut",
    "WholeLoss",
    "WholeLossInput",
    "arith_aspects",
    "digit_prefix",
    "digit_steps",
    "resolve",
]
