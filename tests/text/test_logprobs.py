"""Log-probs recomputed by the trainer equal the scores `generate` reports for the sampled tokens; padding, chunking
and the shared prefill do not change them."""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from flowrl.text.logprobs import completion_logprobs
from flowrl.text.prompts import encode_prompts, left_pad
from flowrl.text.rollout import SamplingConfig, completion_mask, sample_groups


def _load(folder):
    tok = AutoTokenizer.from_pretrained(folder)
    tok.padding_side = "left"
    return AutoModelForCausalLM.from_pretrained(folder).eval(), tok


def test_logprobs_match_generate_scores(tiny_folder):
    model, tok = _load(tiny_folder)
    rows = encode_prompts(tok, ["12+34=", "939-480=", "5-77="], max_prompt_length=16)
    ids, mask = left_pad(rows, pad_id=tok.pad_token_id)  # left padding of different widths
    torch.manual_seed(0)
    temperature = 0.7
    out = model.generate(
        input_ids=ids,
        attention_mask=mask,
        do_sample=True,
        temperature=temperature,
        top_k=0,
        top_p=1.0,
        max_new_tokens=6,
        pad_token_id=tok.pad_token_id,
        eos_token_id=tok.eos_token_id,
        return_dict_in_generate=True,
        output_scores=True,
    )
    comp = out.sequences[:, ids.shape[1] :]  # (B, C)
    scores = torch.stack(out.scores, dim=1).float()  # (B, C, V): logits / temperature
    expected = torch.log_softmax(scores, -1).gather(-1, comp[..., None]).squeeze(-1)  # (B, C)
    cmask, _ = completion_mask(comp, eos_ids={tok.eos_token_id})
    with torch.no_grad():
        got = completion_logprobs(model, ids, mask, comp, cmask, temperature=temperature, chunk_size=4).logp
    valid = cmask.bool()
    assert valid.sum() > 3
    torch.testing.assert_close(got[valid], expected[valid], atol=1e-5, rtol=0)


def test_left_padding_and_chunking_do_not_change_logprobs(tiny_folder):
    model, tok = _load(tiny_folder)
    prompt = encode_prompts(tok, ["12+34="], max_prompt_length=16)[0]
    long = encode_prompts(tok, ["123+456-789="], max_prompt_length=16)[0]
    comp = torch.tensor([[9, 7, 10, 2]])  # "5 3 6 <eos>" as ids
    cmask = torch.ones_like(comp)
    with torch.no_grad():
        alone_ids, alone_mask = left_pad([prompt], pad_id=tok.pad_token_id)
        alone = completion_logprobs(model, alone_ids, alone_mask, comp, cmask, chunk_size=64)
        ids, mask = left_pad([prompt, long], pad_id=tok.pad_token_id)  # the short prompt gets 6 pad columns
        both = completion_logprobs(model, ids, mask, comp.repeat(2, 1), cmask.repeat(2, 1), chunk_size=1)
    assert mask[0].tolist().count(0) == len(long) - len(prompt)
    torch.testing.assert_close(both.logp[0], alone.logp[0], atol=1e-5, rtol=0)
    torch.testing.assert_close(both.entropy[0], alone.entropy[0], atol=1e-5, rtol=0)
    # entropy of a 17-way distribution lies in (0, log 17]
    assert ((alone.entropy > 0) & (alone.entropy <= torch.log(torch.tensor(17.0)) + 1e-6)).all()


def test_prefill_once_samples_the_same_tokens_as_plain_generate(tiny_folder):
    model, tok = _load(tiny_folder)
    rows = encode_prompts(tok, ["12+34=", "939-480="], max_prompt_length=16)
    sampling = SamplingConfig(max_new_tokens=6)
    torch.manual_seed(3)
    shared = sample_groups(model, tok, rows, group_size=4, sampling=sampling, eos_ids={2}, prefill_once=True)
    torch.manual_seed(3)
    plain = sample_groups(model, tok, rows, group_size=4, sampling=sampling, eos_ids={2}, prefill_once=False)
    assert torch.equal(shared.completion_ids, plain.completion_ids)
    assert shared.group_ids.tolist() == [0, 0, 0, 0, 1, 1, 1, 1]


def test_grad_flows_through_chunks(tiny_folder):
    model, tok = _load(tiny_folder)
    ids, mask = left_pad(encode_prompts(tok, ["1+2="], max_prompt_length=8), pad_id=tok.pad_token_id)
    comp = torch.tensor([[7, 2, 0]])
    lp = completion_logprobs(model, ids, mask, comp, torch.tensor([[1, 1, 0]]), chunk_size=1)
    lp.logp[:, :2].sum().backward()
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
