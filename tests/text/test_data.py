"""Task files, per-step rows, prompt formatting and the character tokenizer, against hand-written expectations."""

import pytest

from flowrl.text.arith import ALPHABET, held_out_problems, sample_problem, train_stream
from flowrl.text.char_tokenizer import char_tokenizer
from flowrl.text.data import load_jsonl, step_rows
from flowrl.text.prompts import encode_prompts, format_prompt, left_pad


def test_step_rows_cover_each_epoch_once_and_repeat():
    rows = [r for s in range(5) for r in step_rows(10, 2, seed=3, step=s)]
    assert sorted(rows) == list(range(10))  # steps 0-4 = one epoch of 10 rows
    assert step_rows(10, 2, seed=3, step=7) == step_rows(10, 2, seed=3, step=7)
    assert sorted(r for s in range(5, 10) for r in step_rows(10, 2, seed=3, step=s)) == list(range(10))


def test_jsonl_errors_name_the_line(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "1+1=", "answer": "2"}\n{"prompt": "no answer"}\n')
    with pytest.raises(ValueError, match=r"bad.jsonl:2: each row must be an object with 'prompt' and 'answer'"):
        load_jsonl(bad)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_jsonl(tmp_path / "missing.jsonl")


def test_arith_answers_and_split():
    import random

    rng = random.Random(0)
    for _ in range(200):
        p = sample_problem(rng)
        a, op, b = p.prompt[:-1].partition("+") if "+" in p.prompt else p.prompt[:-1].partition("-")
        assert int(p.answer) == (int(a) + int(b) if op == "+" else int(a) - int(b))
        assert 2 <= len(a) <= 3 and 2 <= len(b) <= 3
    test = held_out_problems(100)
    assert len({p.prompt for p in test}) == 100
    stream = train_stream(seed=0, exclude={p.prompt for p in test})
    assert not {next(stream).prompt for _ in range(2000)} & {p.prompt for p in test}


def test_char_tokenizer_ids_and_round_trip(tmp_path):
    from transformers import AutoTokenizer

    tok = char_tokenizer(ALPHABET)
    assert tok("12-3=")["input_ids"] == [1, 5, 6, 15, 7, 16]  # <bos> then '0' = 4, ..., '+' = 14, '-' = 15, '=' = 16
    tok.save_pretrained(tmp_path)
    again = AutoTokenizer.from_pretrained(tmp_path)
    assert again("939-48=")["input_ids"] == tok("939-48=")["input_ids"]
    assert again.decode([1, 13, 7, 13, 2], skip_special_tokens=True) == "939"
    with pytest.raises(ValueError, match="unique, non-whitespace"):
        char_tokenizer("0 1")


def test_chat_template_is_used_when_present():
    tok = char_tokenizer(ALPHABET)
    tok.chat_template = (
        "{% for m in messages %}{{ m['content'] }}{% endfor %}{% if add_generation_prompt %}={% endif %}"
    )
    assert format_prompt(tok, "12+34") == "12+34="
    # the template carries its own special tokens: no <bos> from the post-processor
    assert encode_prompts(tok, ["12+34"], max_prompt_length=8) == [[5, 6, 14, 7, 8, 16]]


def test_left_pad():
    ids, mask = left_pad([[5, 6], [7]], pad_id=0)
    assert ids.tolist() == [[5, 6], [0, 7]] and mask.tolist() == [[1, 1], [0, 1]]
