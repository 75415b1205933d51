"""SofT-GRPO's soft-thinking functions against hand-computed cases: the mixture embedding on a 3-token vocabulary,
the top-k / top-p support, the reparameterised gradient against finite differences, the soft step's log-likelihood
against a slow scalar reference, and the clipped ratio."""

import math

import torch

from flowrl.text.soft_thinking import (
    clipped_ratio_loss,
    gumbel_noise,
    soft_logprob,
    soft_step,
    support_mask,
    token_logprob,
)
from tests.text.conftest import chain_files

E3 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [2.0, 2.0]])  # 3 tokens, 2-d embeddings
LOGITS3 = torch.tensor([[math.log(0.5), math.log(0.3), math.log(0.2)]])


def test_mixture_embedding_by_hand():
    zero = torch.zeros(1, 3)
    # tau 1, no noise, full support: y = p = (.5, .3, .2); e = .5 (1, 0) + .3 (0, 1) + .2 (2, 2) = (.9, .7)
    st = soft_step(LOGITS3, E3, noise=zero, tau=1.0, top_k=None, top_p=None)
    assert torch.allclose(st.weights, torch.tensor([[0.5, 0.3, 0.2]]))
    assert torch.allclose(st.embedding, torch.tensor([[0.9, 0.7]]))
    # tau 0.5: y ~ p^2 = (.25, .09, .04) / .38
    st = soft_step(LOGITS3, E3, noise=zero, tau=0.5, top_k=None, top_p=None)
    y = torch.tensor([[0.25, 0.09, 0.04]]) / 0.38
    assert torch.allclose(st.weights, y)
    assert torch.allclose(st.embedding, torch.tensor([[(0.25 + 0.08) / 0.38, (0.09 + 0.08) / 0.38]]))
    # top-k 2: S = {0, 1}, p renormalised to (.625, .375); tau 1 -> e = (.625, .375)
    st = soft_step(LOGITS3, E3, noise=zero, tau=1.0, top_k=2, top_p=None)
    assert torch.allclose(st.weights, torch.tensor([[0.625, 0.375, 0.0]]))
    assert torch.allclose(st.embedding, torch.tensor([[0.625, 0.375]]))
    assert st.q_prime[0, 2] == float("-inf")
    # noise g = (0, log 3, 0) at tau 1: y ~ p e^g = (.5, .9, .2) / 1.6
    st = soft_step(LOGITS3, E3, noise=torch.tensor([[0.0, math.log(3.0), 0.0]]), tau=1.0, top_k=None, top_p=None)
    assert torch.allclose(st.weights, torch.tensor([[0.5, 0.9, 0.2]]) / 1.6)


def test_support_top_p_keeps_the_crossing_token():
    # p = (.5, .3, .2): top_p .6 keeps {0, 1} (0.5 < .6, so the token that crosses it is kept); .5 keeps {0}
    assert support_mask(LOGITS3, top_p=0.6).tolist() == [[True, True, False]]
    assert support_mask(LOGITS3, top_p=0.5).tolist() == [[True, False, False]]
    assert support_mask(LOGITS3, top_k=1, top_p=0.99).tolist() == [[True, False, False]]
    # order is by probability, not by index
    assert support_mask(torch.tensor([[0.0, 2.0, 1.0]]), top_k=2).tolist() == [[False, True, True]]


def test_reparameterised_gradient_matches_finite_differences():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(2, 5, generator=g, dtype=torch.float64)
    emb = torch.randn(5, 3, generator=g, dtype=torch.float64)
    noise = gumbel_noise((2, 5), generator=g).double()
    w = torch.randn(2, 3, generator=g, dtype=torch.float64)  # a fixed linear read-out of e

    def f(x: torch.Tensor) -> torch.Tensor:
        return (soft_step(x, emb, noise=noise, tau=0.5, top_k=4, top_p=None).embedding * w).sum()

    x = logits.clone().requires_grad_(True)
    f(x).backward()
    h, fd = 1e-6, torch.zeros_like(logits)
    for idx in range(logits.numel()):
        d = torch.zeros(logits.numel(), dtype=torch.float64)
        d[idx] = h
        d = d.view_as(logits)
        fd.view(-1)[idx] = (f(logits + d) - f(logits - d)) / (2 * h)
    assert torch.allclose(x.grad, fd, atol=1e-7), (x.grad, fd)
    assert x.grad.abs().sum() > 0


def _slow_soft_logprob(logits: list[float], q_prime: list[float], keep: list[bool], beta: float, T: float) -> float:
    z = [v / T for v, k in zip(logits, keep, strict=True) if k]
    lse = max(z) + math.log(sum(math.exp(v - max(z)) for v in z))
    out, j = 0.0, 0
    for i, k in enumerate(keep):
        if not k:
            continue
        eps = q_prime[i] - (z[j] - lse)
        j += 1
        out += math.log(1 / beta * math.exp(-eps / beta - math.exp(-eps / beta)))
    return out


def test_soft_logprob_against_slow_reference():
    g = torch.Generator().manual_seed(1)
    logits = torch.randn(3, 6, generator=g, dtype=torch.float64)
    for beta, T, top_k, top_p in [(1.0, 1.0, None, None), (0.7, 0.6, 4, None), (1.0, 0.6, 30, 0.8)]:
        noise = gumbel_noise((3, 6), scale=beta, generator=g).double()
        st = soft_step(logits, torch.eye(6, dtype=torch.float64), noise=noise, scale=beta, temperature=T, top_k=top_k,
                       top_p=top_p)  # fmt: skip
        # under the sampling policy itself, eps = g: the log-density of the drawn noise
        plain = dict(scale=beta, temperature=T, clamp=None, min_logp=None, reduce="sum")
        lp = soft_logprob(logits, st.q_prime, st.support, **plain)
        other = logits + torch.randn(3, 6, generator=g, dtype=torch.float64)  # another policy, same q'
        lp2 = soft_logprob(other, st.q_prime, st.support, **plain)
        for r in range(3):
            keep = st.support[r].tolist()
            ref = _slow_soft_logprob(logits[r].tolist(), st.q_prime[r].tolist(), keep, beta, T)
            assert math.isclose(lp[r].item(), ref, rel_tol=1e-9, abs_tol=1e-9)
            direct = sum(
                -n / beta - math.exp(-n / beta) - math.log(beta)
                for n, k in zip(noise[r].tolist(), keep, strict=True)
                if k
            )
            assert math.isclose(lp[r].item(), direct, rel_tol=1e-9, abs_tol=1e-9)
            ref2 = _slow_soft_logprob(other[r].tolist(), st.q_prime[r].tolist(), keep, beta, T)
            assert math.isclose(lp2[r].item(), ref2, rel_tol=1e-9, abs_tol=1e-9)


def _slow_official(logits: list[float], q_prime: list[float], keep: list[bool], T: float) -> float:
    z = [v / T for v, k in zip(logits, keep, strict=True) if k]
    lse = max(z) + math.log(sum(math.exp(v - max(z)) for v in z))
    terms, j = [], 0
    for i, k in enumerate(keep):
        if not k:
            continue
        lp = z[j] - lse
        j += 1
        if lp > -3:
            e = min(max(q_prime[i] - lp, -1.5), 3.0)
            terms.append(-e - math.exp(-e))
    return sum(terms) / max(len(terms), 1)


def test_soft_logprob_official_form_against_slow_reference():
    """Defaults = the official code: eps clamped to [-1.5, 3], mean over entries with log p > -3; a one-token support
    is scored as that token."""
    g = torch.Generator().manual_seed(2)
    logits = 2 * torch.randn(4, 8, generator=g, dtype=torch.float64)
    st = soft_step(logits, torch.eye(8, dtype=torch.float64), top_k=6, top_p=None, generator=g)
    other = logits + torch.randn(4, 8, generator=g, dtype=torch.float64)
    lp = soft_logprob(other, st.q_prime, st.support, temperature=0.7)
    for r in range(4):
        ref = _slow_official(other[r].tolist(), st.q_prime[r].tolist(), st.support[r].tolist(), 0.7)
        assert math.isclose(lp[r].item(), ref, rel_tol=1e-9, abs_tol=1e-9)
    one = support_mask(LOGITS3, top_k=1)
    q = torch.where(one, 0.3, float("-inf"))
    assert torch.allclose(soft_logprob(LOGITS3, q, one), torch.tensor([math.log(0.5)]))


def test_soft_logprob_gradient_is_finite_with_a_cut_support():
    logits = torch.tensor([[2.0, 1.0, -1.0, -3.0]], requires_grad=True)
    st = soft_step(logits.detach(), torch.eye(4), noise=torch.zeros(1, 4), top_k=2, top_p=None)
    soft_logprob(logits, st.q_prime, st.support).sum().backward()
    assert torch.isfinite(logits.grad).all()
    assert logits.grad[0, 2:].abs().sum() == 0  # tokens outside S carry no gradient


def test_token_logprob_and_clipped_ratio():
    assert torch.allclose(token_logprob(LOGITS3, torch.tensor([1])), torch.tensor([math.log(0.3)]))
    old = torch.tensor([0.0, 0.0, 0.0])
    new = torch.tensor([math.log(1.5), math.log(1.1), math.log(0.5)])
    adv = torch.tensor([1.0, 1.0, -1.0])
    # r = 1.5 clipped to 1.2 for A > 0; r = 1.1 inside; r = .5 with A < 0 -> min(-.5, -.8) = -.8
    assert torch.allclose(clipped_ratio_loss(new, old, adv), torch.tensor([-1.2, -1.1, 0.8]))


def test_soft_rollout_on_the_chain_lm_and_recomputed_logprobs():
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from flowrl.text.prompts import encode_prompts
    from flowrl.text.soft_rollout import SoftParams, sequence_logprobs, soft_rollout

    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained("assets/chain_lm").eval()
    tok = AutoTokenizer.from_pretrained("assets/chain_lm")
    rows = encode_prompts(tok, ["7+5-8+3=", "2+2="], max_prompt_length=16)
    params = SoftParams(think_steps=3)
    eos = {tok.eos_token_id}
    ro = soft_rollout(
        model, rows, group_size=2, max_answer_tokens=6, eos_ids=eos, pad_id=tok.pad_token_id, params=params,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    N, V = 4, model.get_input_embeddings().weight.shape[0]
    assert ro.weights.shape == (N, 3, V) and ro.answer_ids.shape[0] == N
    assert torch.allclose(ro.weights.sum(-1), torch.ones(N, 3))
    assert (ro.support.sum(-1) <= 5).all() and (ro.weights[~ro.support] == 0).all()
    soft, toks, _ = sequence_logprobs(model, ro, params)  # the full forward reproduces the cached rollout's values
    assert torch.allclose(soft, ro.old_soft_logp, atol=1e-3), (soft, ro.old_soft_logp)
    assert torch.allclose(toks, ro.old_token_logp, atol=1e-4)
    model.zero_grad()
    (soft.sum() + toks.sum()).backward()
    assert model.get_input_embeddings().weight.grad.abs().sum() > 0


def test_chain_soft_preset_trains_two_steps(tmp_path):
    """chain_soft runs two steps end to end on assets/chain_lm (soft rollouts, the Gumbel log-density in the
    update); seeded, so the first step's groups have reward spread and are trained."""
    import json

    from flowrl.text.cli import load_config
    from flowrl.text.train import train

    cfg = load_config(
        preset="chain_soft",
        overrides=[
            *chain_files(tmp_path),
            f"run.root={tmp_path / 'runs'}", "run.tensorboard=false", "run.log_every=1", "train.steps=2",
            "eval.every_minutes=0", "task.test_size=4", "generation.group_size=4", "train.prompts_per_step=2",
        ],
    )  # fmt: skip
    assert cfg.rollout.kind == "soft"
    result = train(cfg)
    records = [json.loads(x) for x in (result.run_dir / "metrics.jsonl").read_text().splitlines()]
    trained = [r for r in records if "reward" in r]
    assert len(trained) == 2
    stepped = [r for r in trained if r["num_trained_tokens"] > 0]
    assert stepped and all(math.isfinite(r["policy_loss"]) and r["grad_norm"] > 0 for r in stepped), trained
    assert all(r["ratio_mean"] == 1.0 for r in stepped)  # one inner epoch: numerator = denominator


def test_soft_rollout_rejects_what_it_does_not_score():
    import pytest

    from flowrl.text.cli import load_config

    for bad in ["train.inner_epochs=2", "loss.kl_beta=0.01"]:
        with pytest.raises(Exception, match="rollout.kind=soft"):
            load_config(preset="chain_soft", overrides=[bad])
