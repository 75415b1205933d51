"""The update of one text training step: inner epochs of micro-batch forward / backward through the GRPO core (or
a whole-loss hook), gradient sum over processes, clip, optimizer step (`update`); the micro-batching it uses.

Rows whose advantage is zero at every token are not in ``data.train_rows`` (`flowrl.text.collect`): counted in the
normaliser, never forwarded. Metrics accumulate on the device (`MetricSums`) and are read with one host sync.
"""

from __future__ import annotations

import torch

from flowrl.grpo import PolicyBatch, Variant, normalizer, policy_loss, top_entropy_mask
from flowrl.grpo.hints import guided_old_logp
from flowrl.runtime.distributed import all_reduce_sum, clip_gradients, sync_gradients
from flowrl.runtime.metric_sums import MetricSums
from flowrl.text import hooks as H
from flowrl.text.collect import StepData, TrainerHooks, regularized, soft_params
from flowrl.text.config import TextTrainConfig
from flowrl.text.logprobs import completion_logprobs
from flowrl.text.policy import TextPolicy, reference_logprobs, trainable_parameters
from flowrl.text.soft_rollout import rows_logprobs


def _trimmed(data: StepData, rows: torch.Tensor) -> tuple[torch.Tensor, ...]:
    """Rows of the step with all-padding columns cut: prompt ids/mask, completion ids/mask(attention), loss mask."""
    ro = data.rollout
    p_ids, p_mask = ro.prompt_ids[rows], ro.prompt_mask[rows]  # (M, P)
    c_ids, c_mask, loss_mask = ro.completion_ids[rows], ro.completion_mask[rows], data.mask[rows]  # (M, C)
    first = int((p_mask.sum(0) > 0).nonzero()[0])
    last = int((c_mask.sum(0) > 0).nonzero()[-1]) + 1 if c_mask.any() else 1
    return p_ids[:, first:], p_mask[:, first:], c_ids[:, :last], c_mask[:, :last], loss_mask[:, :last]


def micro_batches(rows: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Consecutive chunks of at most `size` row indices."""
    return [rows[s : s + size] for s in range(0, rows.numel(), size)]


def group_micro_batches(rows: torch.Tensor, groups: torch.Tensor, size: int) -> list[torch.Tensor]:
    """Chunks of at most `size` row indices that never split a group (a whole-loss plugin compares a group's rows)."""
    out, current = [], []
    for g in torch.unique_consecutive(groups[rows]).tolist():
        members = rows[groups[rows] == g].tolist()
        if current and len(current) + len(members) > size:
            out.append(torch.tensor(current))
            current = []
        current += members
    if current:
        out.append(torch.tensor(current))
    return out


def update(
    cfg: TextTrainConfig,
    policy: TextPolicy,
    variant: Variant,
    data: StepData,
    optimizer: torch.optim.Optimizer,
    accelerator,
    *,
    hooks: TrainerHooks,
    teacher=None,
) -> dict[str, float]:
    """Inner epochs over the step's rollout: micro-batch forward / backward through the core (or the whole-loss hook),
    gradient sum over processes, clip, AdamW. Returns metrics averaged over the trained tokens (one host sync)."""
    world = accelerator.num_processes
    model, params = policy.model, trainable_parameters(policy)
    groups = data.rollout.group_ids.cpu()
    if hooks.whole_loss is not None:
        mbs = group_micro_batches(data.train_rows, groups, cfg.train.micro_batch_size)
    else:
        mbs = micro_batches(data.train_rows, cfg.train.micro_batch_size)
    counts = normalizer(data.mask, num_micro_batches=max(len(mbs), 1))
    norm = counts._replace(  # CPU scalars: all_reduce_sum stages them through the GPU under NCCL
        num_tokens=all_reduce_sum(counts.num_tokens.clone(), world),
        num_sequences=all_reduce_sum(counts.num_sequences.clone(), world),
    )
    temp, chunk = cfg.generation.temperature, cfg.train.logprob_chunk
    reg = H.REGULARIZERS[cfg.hooks.regularizer] if regularized(cfg) and hooks.whole_loss is None else None
    old, ref, teach = {}, {}, {}
    with torch.no_grad():
        for i, mb in enumerate(mbs):
            args = _trimmed(data, mb)[:4]
            if cfg.train.inner_epochs > 1:
                old[i] = completion_logprobs(model, *args, temperature=temp, chunk_size=chunk).logp
            if reg is not None and cfg.hooks.regularizer == "reference_kl":
                ref[i] = reference_logprobs(policy, *args, temperature=temp, chunk_size=chunk).logp
            if reg is not None and cfg.hooks.regularizer == "teacher_kl":
                teach[i] = completion_logprobs(teacher, *args, temperature=temp, chunk_size=chunk).logp
    sums = MetricSums()
    sums.add_count("num_trained_tokens", 0.0)
    for _ in range(cfg.train.inner_epochs):
        optimizer.zero_grad(set_to_none=False)
        for i, mb in enumerate(mbs):
            p_ids, p_mask, c_ids, c_mask, loss_mask = _trimmed(data, mb)
            if data.soft is None:
                lp = completion_logprobs(model, p_ids, p_mask, c_ids, c_mask, temperature=temp, chunk_size=chunk)
            else:  # SofT-GRPO: soft steps' Gumbel log-density, answer tokens' log-prob (flowrl/text/soft_rollout.py)
                lp = rows_logprobs(model, data.soft, mb, p_ids, p_mask, c_ids.shape[1], soft_params(cfg))
            dev, width = lp.logp.device, c_ids.shape[1]
            tok_mask = loss_mask.to(dev)
            if cfg.loss.top_entropy_quantile < 1.0:
                tok_mask = top_entropy_mask(lp.entropy, tok_mask, quantile=cfg.loss.top_entropy_quantile)
            old_logp = old[i] if i in old else lp.logp.detach()
            if data.old_logp is not None:  # Guide: the guided rows' denominator is the hinted sampler
                hinted = data.old_logp[mb][:, :width].to(dev)
                old_logp = guided_old_logp(old_logp, hinted, data.guided[mb].to(dev))
            adv = data.adv[mb]
            adv = (adv[:, :width] if adv.ndim == 2 else adv).to(dev)
            outcome = data.outcome[mb].to(dev)
            if hooks.whole_loss is not None:  # hook: a loss that replaces advantages + policy_loss
                pos_w = None if data.pos_weights is None else data.pos_weights[mb].to(dev)
                whole_in = H.WholeLossInput(
                    lp.logp, old_logp, tok_mask, outcome, groups[mb].to(dev), pos_w, cfg.train.prompts_per_step, adv
                )
                loss = hooks.whole_loss.loss(whole_in)
                metrics = {"policy_loss": loss.detach()}
            else:
                kl = None
                if reg is not None:  # hook: the regulariser term (PolicyBatch.kl)
                    reg_in = H.RegularizerInput(lp.logp, old_logp, ref.get(i), teach.get(i), adv, tok_mask, outcome)
                    kl = reg(reg_in, estimator=cfg.loss.kl_estimator)
                weights = None if data.weights is None else data.weights[mb][:, :width].to(dev)
                batch = PolicyBatch(lp.logp, old_logp, adv, tok_mask, kl=kl, weights=weights)
                loss, metrics = policy_loss(variant.objective, batch, norm=norm)
            accelerator.backward(loss)
            n = tok_mask.sum()
            metrics["entropy"] = (lp.entropy * c_mask).sum() / c_mask.sum().clamp(min=1)
            sums.add_weighted(metrics, n)  # means over the trained tokens
            sums.add_count("num_trained_tokens", n)
        sync_gradients(params, world)
        grad_norm = clip_gradients(params, cfg.optim.grad_clip)
        if grad_norm is not None:
            sums.add_count("grad_norm", grad_norm)
        optimizer.step()
    return sums.means(divide={"grad_norm": cfg.train.inner_epochs})
