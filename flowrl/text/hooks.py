"""Extension points of the text trainer (`flowrl train-text`), where the LLM GRPO variants of docs/papers_llm.md
plug in. Each hook is an entry of a dict literal below, chosen by name in the `hooks` config section, and the
trainer calls it at one place of its step::

    prompts -> sample (group sizes: hooks.group_sizes) -> score -> HINTED SECOND ROLLOUT (hooks.hints)
      -> REWARD SHAPING (hooks.shaping)
      -> advantages (loss.variant; group keys: hooks.group_ids) -> TOKEN WEIGHTS / MASK (hooks.token_weights,
      hooks.token_mask) -> rows with a non-zero advantage -> update: REGULARISER (hooks.regularizer, coefficient
      loss.kl_beta ramped to hooks.kl_beta_end) and the loss: `policy_loss`, or a WHOLE-LOSS plugin (hooks.whole_loss)

The hooks are thin: the math is the pure functions of `flowrl.grpo`, and the stateful parts (dynamic reward
weights, the knapsack planner's success rates, the hint tiers) are small objects, built once per run. What each
extension point sees and returns is `flowrl.text.hook_types`; the hooks with more than a few lines have their own
module, re-exported here: GRPO-CARE (`care`), Reg-GRPO (`reg_grpo_loss`), group sizes (`group_sizes`) and hinted
rollouts (`hints`).
Stand-ins for what cannot run here (a process reward model, a multi-label alignment reward model, natural-language
hints) are rule-based pieces of the arithmetic task, selected by name or given as ``package.module:function``.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import torch

from flowrl.grpo.advantages_llm import entropy_shaped_advantages
from flowrl.grpo.discriminative import disco_loss, drpo_positive_weights, kl_hinge, mean_logp_score
from flowrl.grpo.kl import KL_ESTIMATORS, kl_k3
from flowrl.grpo.regularizers import llds_penalty, masked_teacher_kl
from flowrl.grpo.reward_weights import multi_objective_rewards
from flowrl.grpo.schedules import ExponentialBudget, LinearSchedule
from flowrl.grpo.segments import cutpoint_segments, probability_mask, segment_advantages
from flowrl.grpo.selection import adv_entropy_token_mask
from flowrl.grpo.shaping import budget_rewards, grpo_lambda_rewards, posterior_rewards, unlikeliness_rewards
from flowrl.grpo.thoughts import group_accuracy, thought_rewards, thought_segments
from flowrl.grpo.trackers import DynamicRewardWeights
from flowrl.grpo.weights_llm import conflict_token_weights, group_kl_token_weights
from flowrl.text.care import answer_span_mask, care
from flowrl.text.group_sizes import GROUP_SIZES, GVMSizes, KnapsackSizes, Presample
from flowrl.text.hints import HINT_TEXTS, HINTS, Hints, answer_prefix, rubric_steps
from flowrl.text.hook_types import (
    RegularizerInput,
    Shaped,
    ShapeFn,
    ShapingInput,
    TokenInput,
    TokenOut,
    WholeLoss,
    WholeLossInput,
    resolve,
)
from flowrl.text.hook_types import binary_outcome as _binary_outcome
from flowrl.text.reg_grpo_loss import reg_grpo

# ----------------------------------------------------------------------------------------------- reward shaping


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

# ----------------------------------------------------------------------------------------- token weights / mask


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


WHOLE_LOSSES: dict[str, Callable[..., WholeLoss]] = {"disco": disco, "drpo": drpo, "reg_grpo": reg_grpo}


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
    "Presample",
    "ShapeFn",
    "answer_prefix",
    "care",
    "reg_grpo",
    "resolve",
    "rubric_steps",
]
