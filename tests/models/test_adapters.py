"""The `ImageAdapter` contract for SD3Adapter and FluxAdapter on tiny random pipelines (CPU, offline).

Run: OMP_NUM_THREADS=1 pytest tests/models -q
"""

from __future__ import annotations

import pytest
import torch
from adapter_checks import grpo_step, load
from tiny_pipelines import PROMPTS

KINDS = ["sd3", "flux"]


@pytest.fixture
def folder(request, sd3_folder, flux_folder):
    return {"sd3": sd3_folder, "flux": flux_folder}[request.param]


def _x(adapter, B=2, seed=1):
    return torch.randn((B, *adapter.latent_shape), generator=torch.Generator().manual_seed(seed))


@pytest.mark.parametrize("kind,folder", [(k, k) for k in KINDS], indirect=["folder"])
def test_shapes_and_encode_cache(kind, folder):
    a = load(kind, folder)
    assert a.latent_shape == (16, 16, 16)  # 32 px / vae_scale_factor 2
    calls = []
    encode_prompt = a.pipe.encode_prompt
    a.pipe.encode_prompt = lambda **kw: calls.append(kw["prompt"]) or encode_prompt(**kw)
    c1 = a.encode([PROMPTS[0], PROMPTS[1], PROMPTS[0]])
    c2 = a.encode([PROMPTS[1]])
    # each uncached prompt encoded once and alone (its embedding must not depend on its batch-mates), the repeat and
    # the second call served from the cache
    assert calls == [[p] for p in sorted(PROMPTS)]
    assert all(t.shape[0] == 3 for t in c1) and torch.equal(c1.embeds[0], c1.embeds[2])
    assert torch.equal(c2.embeds[0], c1.embeds[1]) and not c1.embeds.requires_grad
    v = a.velocity(_x(a), torch.tensor([0.9, 0.4]), a.encode(PROMPTS))
    assert v.shape == (2, 16, 16, 16) and v.dtype == torch.float32 and torch.isfinite(v).all()
    images = a.decode(_x(a))
    assert images.shape == (2, 3, 32, 32) and images.device.type == "cpu"
    assert images.min() >= 0 and images.max() <= 1


@pytest.mark.parametrize("kind,folder", [(k, k) for k in KINDS], indirect=["folder"])
def test_cfg_equals_two_separate_forwards(kind, folder):
    a = load(kind, folder, guidance_scale=3.0)
    x, sigma, cond = _x(a), torch.tensor([0.8, 0.3]), a.encode(PROMPTS)
    with torch.no_grad():
        v_cond = a.conditional_velocity(x, sigma, cond)
        v_uncond = a.conditional_velocity(x, sigma, a.encode(["", ""]))  # empty prompt = the negative prompt
        guided = a.velocity(x, sigma, cond)
    torch.testing.assert_close(guided, v_uncond + 3.0 * (v_cond - v_uncond), atol=1e-5, rtol=1e-5)
    assert not torch.allclose(guided, v_cond)


@pytest.mark.parametrize("lora_rank", [0, 4])
@pytest.mark.parametrize("kind,folder", [(k, k) for k in KINDS], indirect=["folder"])
def test_reference_is_the_initial_policy_after_a_step(kind, folder, lora_rank):
    a = load(kind, folder, lora_rank=lora_rank, lora_alpha=8.0)
    x, sigma, cond = _x(a), torch.tensor([0.7, 0.5]), a.encode(PROMPTS)
    with torch.no_grad():
        before = a.velocity(x, sigma, cond)
    params = a.trainable_parameters()
    if lora_rank:
        assert params and all("lora" in n for n, p in a.transformer.named_parameters() if p.requires_grad)
        assert all(p.dtype == torch.float32 for p in params)
    optimizer = torch.optim.SGD(params, lr=1.0)
    for _ in range(2):  # LoRA B starts at 0: the first step moves B, the second then moves the output
        optimizer.zero_grad()
        a.velocity(x, sigma, cond).square().mean().backward()
        optimizer.step()
    with torch.no_grad():
        after = a.velocity(x, sigma, cond)
    with a.reference():
        ref = a.reference_velocity(x, sigma, cond)
    assert not torch.allclose(after, before)
    torch.testing.assert_close(ref, before, atol=1e-6, rtol=1e-6)
    with torch.no_grad():
        torch.testing.assert_close(a.velocity(x, sigma, cond), after)  # the adapter is enabled again


@pytest.mark.parametrize("method,kwargs", [("flow_grpo", {}), ("mixgrpo", {"window_size": 2})])
@pytest.mark.parametrize("kind,folder", [(k, k) for k in KINDS], indirect=["folder"])
def test_grpo_step_full_finetuning_moves_every_parameter(kind, folder, method, kwargs):
    a = load(kind, folder)
    before = {n: p.detach().clone() for n, p in a.transformer.named_parameters()}
    metrics = grpo_step(a, method, **kwargs)
    torch.testing.assert_close(metrics["ratio_mean"], torch.tensor(1.0), atol=1e-5, rtol=0)  # on-policy
    moved = [n for n, p in a.transformer.named_parameters() if not torch.equal(p, before[n])]
    assert len(moved) > 0.9 * len(before), f"only {len(moved)} of {len(before)} parameters moved"


@pytest.mark.parametrize("kind,folder", [(k, k) for k in KINDS], indirect=["folder"])
def test_trained_state_round_trip(kind, folder):
    a = load(kind, folder, lora_rank=4, lora_alpha=8.0)
    state = a.trained_state()
    assert state and all("lora" in k for k in state)
    grpo_step(a, "flow_grpo")
    moved = a.trained_state()
    assert any(not torch.equal(moved[k], state[k]) for k in state)
    a.load_trained_state(state)
    assert all(torch.equal(a.trained_state()[k], state[k]) for k in state)


@pytest.mark.parametrize("kind,folder", [(k, k) for k in KINDS], indirect=["folder"])
def test_resolution_decode_batches_and_errors(kind, folder):
    a = load(kind, folder, decode_batch_size=1)
    x = _x(a, B=3)
    one_by_one = a.decode(x)
    a.decode_batch_size = 8
    # batch 8 vs 1: the same math, but MKL picks other GEMM / conv blockings (float32 rounding, ~1e-6 on [0, 1])
    torch.testing.assert_close(a.decode(x), one_by_one, atol=1e-5, rtol=1e-5)
    latents = a.encode_images(one_by_one)
    assert latents.shape == (3, 16, 16, 16)
    a.set_resolution(height=16, width=48)  # evaluation resolution independent of the training one
    assert a.latent_shape == (16, 8, 24)
    assert a.velocity(_x(a), torch.tensor([0.5, 0.5]), a.encode(PROMPTS)).shape == (2, 16, 8, 24)
    with pytest.raises(ValueError, match="multiples of"):
        a.set_resolution(height=18, width=32)  # tiny VAE: factor 2, so multiples of 4
    with pytest.raises(ValueError, match="mixed_precision"):
        load(kind, folder, mixed_precision="fp16")
    with pytest.raises(FileNotFoundError, match="model_index.json"):
        type(a).from_folder(folder / "missing", guidance_scale=1.0)
    a.release_text_encoders()
    a.encode([PROMPTS[0]])  # cached
    with pytest.raises(RuntimeError, match="released"):
        a.encode(["a new prompt"])


@pytest.mark.parametrize("kind,folder", [(k, k) for k in KINDS], indirect=["folder"])
def test_gradient_checkpointing_and_bf16_autocast(kind, folder):
    plain = load(kind, folder)
    ckpt = load(kind, folder, gradient_checkpointing=True)
    x, sigma = _x(plain), torch.tensor([0.6, 0.2])
    grads = []
    for a in (plain, ckpt):
        a.transformer.train()  # diffusers checkpoints only in training mode
        a.velocity(x, sigma, a.encode(PROMPTS)).square().mean().backward()
        grads.append([p.grad.clone() for p in a.trainable_parameters()])
    for g0, g1 in zip(*grads, strict=True):
        torch.testing.assert_close(g1, g0, atol=1e-6, rtol=1e-5)
    bf16 = load(kind, folder, mixed_precision="bf16")
    with torch.no_grad():
        v32 = plain.velocity(x, sigma, plain.encode(PROMPTS))
        v16 = bf16.velocity(x, sigma, bf16.encode(PROMPTS))
    assert v16.dtype == torch.float32
    torch.testing.assert_close(v16, v32, atol=0.1, rtol=0.05)  # bf16 has 8 mantissa bits


@pytest.mark.parametrize("kind,folder", [(k, k) for k in KINDS], indirect=["folder"])
def test_full_finetuning_without_a_reference_copy(kind, folder):
    a = load(kind, folder, reference_copy=False)
    assert a.reference_transformer is None
    with pytest.raises(RuntimeError, match="reference_copy=False"):
        with a.reference():
            pass
    with pytest.raises(RuntimeError, match="reference_copy=False"):
        a.reference_velocity(_x(a), torch.tensor([0.5, 0.5]), a.encode(PROMPTS))
    grpo_step(a, "mixgrpo", window_size=2)  # kl_beta = 0: no reference needed
