"""Completion masks, truncation flags and stop strings, checked against hand-written expectations."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from flowrl.text.prompts import encode_prompts
from flowrl.text.rollout import SamplingConfig, completion_mask, position_ids, sample_groups


def test_completion_mask_by_hand():
    comp = torch.tensor([[5, 2, 0, 0], [5, 6, 7, 8], [2, 0, 0, 0], [5, 2, 5, 2]])
    mask, truncated = completion_mask(comp, eos_ids={2})
    assert mask.tolist() == [[1, 1, 0, 0], [1, 1, 1, 1], [1, 0, 0, 0], [1, 1, 0, 0]]
    assert truncated.tolist() == [False, True, False, False]


def test_completion_mask_pad_equal_to_eos():
    comp = torch.tensor([[5, 9, 9, 9]])  # eos = pad = 9
    mask, truncated = completion_mask(comp, eos_ids={9})
    assert mask.tolist() == [[1, 1, 0, 0]] and truncated.tolist() == [False]


def test_position_ids_skip_left_padding():
    assert position_ids(torch.tensor([[0, 0, 1, 1, 1], [1, 1, 1, 1, 1]])).tolist() == [
        [0, 0, 0, 1, 2],
        [0, 1, 2, 3, 4],
    ]


def test_stop_string_ends_the_completion(tiny_folder):
    tok = AutoTokenizer.from_pretrained(tiny_folder)
    tok.padding_side = "left"
    model = AutoModelForCausalLM.from_pretrained(tiny_folder).eval()
    rows = encode_prompts(tok, ["1+1="], max_prompt_length=8)
    torch.manual_seed(0)
    digits = tuple("0123456789")
    ro = sample_groups(model, tok, rows, group_size=8, sampling=SamplingConfig(8, stop_strings=digits), eos_ids={2})
    for ids, m, trunc in zip(
        ro.completion_ids.tolist(), ro.completion_mask.tolist(), ro.truncated.tolist(), strict=True
    ):
        text = tok.decode([t for t, k in zip(ids, m, strict=True) if k], skip_special_tokens=True)
        if not trunc and text:  # stopped: a digit is the last decoded character, none before it
            assert text[-1] in digits or ids[sum(m) - 1] == 2
            assert not any(c in digits for c in text[:-1])
