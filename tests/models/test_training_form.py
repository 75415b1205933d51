"""flow_grpo's training form on the SD3 adapter: the unconditional CFG half detached, the T5 length configurable.

Run: OMP_NUM_THREADS=1 pytest tests/models/test_training_form.py -q
"""

from __future__ import annotations

import torch
from adapter_checks import load
from tiny_pipelines import PROMPTS

from flowrl.train.adapters import build_adapter
from flowrl.train.image_cli import load_config


def _grads(adapter, fn):
    params = adapter.trainable_parameters()
    for p in params:
        p.grad = None
    fn().sum().backward()
    return torch.cat([p.grad.flatten() for p in params])


def test_detached_uncond_keeps_the_value_and_trains_the_conditional_half(sd3_folder):
    # v = v_u + w (v_c - v_u); detached v_u: dv = w dv_c (flow_grpo compute_log_prob), else (1 - w) dv_u + w dv_c
    w = 4.5
    plain, detached = (load("sd3", sd3_folder, lora_rank=4, detach_uncond=d) for d in (False, True))
    detached.load_trained_state(plain.trained_state())
    torch.manual_seed(0)
    for p in plain.trainable_parameters() + detached.trainable_parameters():  # LoRA B = 0 at init: move it
        torch.nn.init.normal_(p, std=0.02) if p.ndim > 1 else None
    detached.load_trained_state(plain.trained_state())
    x, sigma = torch.randn(2, *plain.latent_shape), torch.tensor([0.7, 0.4])
    cond = plain.encode(PROMPTS[:2])
    torch.testing.assert_close(detached.velocity(x, sigma, cond), plain.velocity(x, sigma, cond))
    g_detached = _grads(detached, lambda: detached.velocity(x, sigma, cond))
    g_cond = _grads(detached, lambda: detached.conditional_velocity(x, sigma, cond))
    g_plain = _grads(plain, lambda: plain.velocity(x, sigma, cond))
    torch.testing.assert_close(g_detached, w * g_cond, rtol=1e-3, atol=1e-5)
    assert not torch.allclose(g_plain, g_detached, rtol=1e-3, atol=1e-5)


def test_preset_sets_flow_grpo_prompt_length(sd3_folder):
    cfg = load_config(
        preset="sd35m_flow_grpo_pickscore",
        overrides=[f"model.path={sd3_folder}", "model.resolution=32", "model.mixed_precision='no'"],
    )
    assert cfg.model.max_sequence_length == 128 and cfg.model.detach_uncond  # flow_grpo train_sd3.py
    adapter = build_adapter(cfg, torch.device("cpu"))
    assert adapter.max_sequence_length == 128 and adapter.detach_uncond
    assert adapter.encode(PROMPTS[:1]).embeds.shape[1] == 77 + 128  # CLIP tokens, then 128 T5 tokens
