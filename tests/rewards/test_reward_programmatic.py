"""JPEG, text and ShapeWorld rewards, the registry and multi-reward aggregation; doctests of the cheap rewards.
Run: pytest tests/rewards/test_reward_programmatic.py
"""

from __future__ import annotations

import doctest
import importlib
import io

import pytest
import torch
from PIL import Image

import rewards
from rewards import REWARDS, load_reward
from rewards.combine import MultiReward


@pytest.mark.parametrize(
    "module",
    ["rewards.text", "rewards.jpeg", "rewards.ocr", "rewards.images", "rewards.preprocess", "rewards.blip_keys",
     "rewards.mlp_head", "rewards.combine"],
)  # fmt: skip
def test_doctests(module):
    result = doctest.testmod(importlib.import_module(module))
    assert result.failed == 0 and result.attempted > 0


def test_jpeg_rewards_are_flow_grpo_kilobytes_at_quality_95():
    images = torch.rand(2, 3, 48, 40, generator=torch.Generator().manual_seed(0))
    sizes = []
    for img in images:  # the reference: PIL at quality 95, size / 1000 (Flow-GRPO rewards.py)
        buf = io.BytesIO()
        u8 = (img * 255).round().clamp(0, 255).to(torch.uint8).permute(1, 2, 0).numpy()
        Image.fromarray(u8).save(buf, format="JPEG", quality=95)
        sizes.append(len(buf.getvalue()) / 1000)
    sizes = torch.tensor(sizes)
    torch.testing.assert_close(load_reward("jpeg_incompressibility")(images, ["", ""]), sizes)
    torch.testing.assert_close(load_reward("jpeg_compressibility")(images, ["", ""]), -sizes / 500)


def test_jpeg_prefers_flat_images():
    flat = torch.full((1, 3, 64, 64), 0.3)
    noise = torch.rand(1, 3, 64, 64)
    r = load_reward("jpeg_compressibility")(torch.cat([flat, noise]), ["", ""])
    assert r.dtype == torch.float32 and r[0] > r[1]


def test_jpeg_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"\(B, 3, H, W\)"):
        load_reward("jpeg_compressibility")(torch.rand(2, 32, 32), ["", ""])


def test_text_rewards_by_hand():
    completions = ["55-21=34", "the answer is 35", "<think>x</think><answer>34</answer>"]
    meta = [{"answer": "34"}] * 3
    assert load_reward("exact_match")(completions, ["q"] * 3, meta).tolist() == [1.0, 0.0, 1.0]
    assert load_reward("format")(completions, ["q"] * 3).tolist() == [0.0, 0.0, 1.0]
    # DAPO overlong: lengths 8, 16, 35 with max 20 and cache 10 -> 0, -(16 - 10) / 10, -1
    out = load_reward("length", max_length=20, cache_length=10)(completions, ["q"] * 3)
    torch.testing.assert_close(out, torch.tensor([0.0, -0.6, -1.0]))


def test_exact_match_needs_answers():
    with pytest.raises(ValueError, match="'answer'"):
        load_reward("exact_match")(["34"], ["q"], None)


def test_shapes_reward_via_registry():
    from flowrl.shapes.render import render_prompts

    prompts = ["a red circle", "two blue squares"]
    out = load_reward("shapes")(render_prompts(prompts, seed=0), prompts, None)
    assert out.tolist() == [1.0, 1.0]


def test_registry_is_complete_and_errors_list_valid_names():
    expected = {
        "shapes", "shapes_strict", "jpeg_compressibility", "jpeg_incompressibility", "ocr", "pickscore", "clip_score",
        "hpsv2", "hpsv2_v2_0", "image_reward", "aesthetic", "exact_match", "format", "length", "uniform_noise",
        "geneval", "geneval_strict", "geneval_correct",
    }  # fmt: skip
    assert set(REWARDS) == expected
    with pytest.raises(ValueError, match="Valid:"):
        load_reward("nope")


def test_dotted_path_user_reward():
    fn = load_reward("rewards.jpeg:JpegReward", compressible=False)
    assert fn.name == "rewards.jpeg:JpegReward"
    assert fn(torch.rand(1, 3, 8, 8), [""]).shape == (1,)


class _Fixed:
    def __init__(self, name, values):
        self.name, self.values = name, torch.tensor(values)

    def __call__(self, images, prompts, metadata=None):
        return self.values.clone()


def test_multi_reward_total_components_and_advantages():
    from flowrl.grpo.aggregate import normalize_then_sum, sum_then_normalize

    a, b = _Fixed("a", [1.0, 3.0, 5.0, float("nan")]), _Fixed("b", [0.0, 2.0, 4.0, 8.0])
    multi = MultiReward([a, b], weights=[2.0, 1.0])
    out = multi.score(None, [""] * 4)
    # by hand: 2 * a + b, NaN components skipped in the sum (the core's convention)
    torch.testing.assert_close(out.total, torch.tensor([2.0, 8.0, 14.0, 8.0]))
    assert list(out.components) == ["a", "b"] and multi.name == "2*a+1*b"
    torch.testing.assert_close(multi(None, [""] * 4), out.total)
    groups = torch.tensor([0, 0, 1, 1])
    table = torch.stack([a.values, b.values], dim=1)  # (B, K) in the order the rewards were given
    weights = torch.tensor([2.0, 1.0])
    torch.testing.assert_close(
        multi.advantages(out, groups, order="normalize_then_sum"), normalize_then_sum(table, groups, weights=weights)
    )
    torch.testing.assert_close(multi.advantages(out, groups), sum_then_normalize(table, groups, weights=weights))
    with pytest.raises(ValueError, match="distinct names"):
        MultiReward([a, a])
    with pytest.raises(ValueError, match="order"):
        multi.advantages(out, groups, order="mean")


def test_package_exports():
    assert callable(rewards.load_reward) and "RewardFn" in rewards.__all__


def test_uniform_noise_control_is_deterministic_and_ignores_content():
    from rewards import load_reward

    reward = load_reward("uniform_noise")
    images = torch.rand(64, 3, 16, 16, generator=torch.Generator().manual_seed(0))
    scores = reward(images, ["a red circle"] * 64)
    assert scores.shape == (64,) and torch.equal(scores, reward(images, ["a red circle"] * 64))
    assert 0.0 <= float(scores.min()) and float(scores.max()) < 1.0
    assert 0.3 < float(scores.mean()) < 0.7  # uniform: mean 1/2, s.e. 0.036 over 64 samples
    flipped = images.clone()
    flipped[0, 0, 0, 0] = 1.0 - flipped[0, 0, 0, 0]  # one pixel changed: an independent score
    assert float(reward(flipped[:1], ["a red circle"])) != float(scores[0])
