"""The keyed-image LLaVA policy: LLaVA's own forward under the text trainer's calls, image conditioning, bad input."""

import numpy as np
import pytest
import torch

from flowrl.shapes.questions import format_question, sample_items
from flowrl.shapes.scene import draw_scene
from flowrl.text.logprobs import completion_logprobs
from flowrl.text.prompts import encode_prompts
from flowrl.text.rollout import SamplingConfig, position_ids, sample_groups
from flowrl.vlm.model import KeyedImageVLM, build_processor, build_tiny_llava, load_vlm
from flowrl.vlm.tasks import bind_images, item_row
from flowrl.vlm.tokenizer import vlm_tokenizer


@pytest.fixture(scope="module")
def vlm():
    tok = vlm_tokenizer()
    return KeyedImageVLM(build_tiny_llava(tok, text_layers=1, vision_layers=1), tok, build_processor()).eval(), tok


def _prompts(model, n=3):
    rows = [item_row(it) for it in sample_items(n, split="train", seed=0)]
    return [r["prompt"] for r in bind_images(model, rows)]


def test_logprobs_are_llavas_forward(vlm):
    model, tok = vlm
    rows = encode_prompts(tok, _prompts(model), max_prompt_length=48)
    ro = sample_groups(model, tok, rows, group_size=2, sampling=SamplingConfig(6, 1.0, 0, 1.0, ()), eos_ids={2})
    lp = completion_logprobs(model, ro.prompt_ids, ro.prompt_mask, ro.completion_ids, ro.completion_mask).logp
    ids, att = torch.cat([ro.prompt_ids, ro.completion_ids], 1), torch.cat([ro.prompt_mask, ro.completion_mask], 1)
    swapped, pv = model.swap_keys(ids)
    logits = model.llava(input_ids=swapped, pixel_values=pv, attention_mask=att, position_ids=position_ids(att)).logits
    P, C = ro.prompt_ids.shape[1], ro.completion_ids.shape[1]
    ref = torch.log_softmax(logits[:, P - 1 : P + C - 1].float(), -1).gather(-1, ro.completion_ids[..., None])[..., 0]
    assert pv.shape == (6, 3, 32, 32)
    torch.testing.assert_close(lp, ref, atol=1e-5, rtol=1e-5)


def test_prefill_once_samples_what_plain_generate_samples(vlm):
    model, tok = vlm
    rows = encode_prompts(tok, _prompts(model), max_prompt_length=48)
    outs = []
    for once in (True, False):
        torch.manual_seed(3)
        ro = sample_groups(model, tok, rows, group_size=3, sampling=SamplingConfig(8, 1.0, 0, 1.0, ()), eos_ids={2},
                           prefill_once=once)  # fmt: skip
        outs.append(ro.completion_ids)
    assert torch.equal(outs[0], outs[1])


def test_the_image_changes_the_answer_distribution(vlm):
    model, tok = vlm
    items = sample_items(2, split="train", seed=1)
    q = format_question(items[0].question)
    a, b = (model.register(draw_scene(it.scene)) for it in items)
    ids = torch.tensor(encode_prompts(tok, [f"{a} {q}", f"{b} {q}"], max_prompt_length=48))
    logits = model(input_ids=ids).logits[:, -1]
    assert not torch.allclose(logits[0], logits[1])


def test_bad_images(vlm):
    model, _ = vlm
    with pytest.raises(ValueError, match="64x64.*32x32"):
        model.register(np.zeros((64, 64, 3), np.uint8))
    with pytest.raises(TypeError, match="list"):
        model.register([[0, 0, 0]])
    with pytest.raises(TypeError, match="uint8"):
        model.register(np.zeros((32, 32, 3), np.float32))
    with pytest.raises(TypeError, match=r"\(3, H, W\)"):
        model.register(torch.zeros(32, 32, 3))


def test_unregistered_key_and_partial_key(vlm):
    model, tok = vlm
    ids = torch.tensor(
        encode_prompts(tok, [" ".join(["<k0>"] * 16) + " is there a red circle ?"], max_prompt_length=48)
    )
    with pytest.raises(KeyError, match="not registered"):
        model(input_ids=ids)
    ids = torch.tensor(encode_prompts(tok, ["<k0> <k1> is there a red circle ?"], max_prompt_length=48))
    with pytest.raises(ValueError, match="exactly 16"):
        model(input_ids=ids)


def test_question_outside_the_grammar(vlm):
    model, _ = vlm
    row = item_row(sample_items(1, split="train", seed=0)[0])
    with pytest.raises(ValueError, match="outside the ShapeWorld question grammar"):
        bind_images(model, [{**row, "prompt": "<image> what is the meaning of life ?"}])
    with pytest.raises(ValueError, match="names no image"):
        bind_images(model, [{"prompt": row["prompt"], "answer": "yes"}], shapeworld=False)


def test_a_folder_that_is_not_a_vlm(tmp_path):
    with pytest.raises(ValueError, match="'llama' model, not a VLM"):
        load_vlm("assets/arith_lm")
    with pytest.raises(ValueError, match="no config.json"):
        load_vlm(tmp_path)


def test_save_and_reload(vlm, tmp_path):
    model, tok = vlm
    model.save_pretrained(tmp_path)
    tok.save_pretrained(tmp_path)
    again, tok2 = load_vlm(tmp_path)
    prompt = _prompts(model, 1)[0]
    again.register_many([np.zeros((32, 32, 3), np.uint8)])
    again.images.update(model.images)
    ids = torch.tensor(encode_prompts(tok2, [prompt], max_prompt_length=48))
    torch.testing.assert_close(again.eval()(input_ids=ids).logits, model(input_ids=ids).logits)


def test_text_policy_rejects_image_rows(tmp_path):
    from flowrl.text.policy import bind_task_images, load_policy

    policy = load_policy("assets/arith_lm")
    row = item_row(sample_items(1, split="train", seed=0)[0])
    with pytest.raises(ValueError, match="text-only causal LM"):
        bind_task_images(policy, [row], tmp_path / "t.jsonl")
