"""`train.prompts_file` formats: plain text lines and JSONL rows with a "prompt" (GenEval metadata files).
Run: python -m pytest tests/train/test_prompts_file.py -q
"""

from pathlib import Path

import pytest

from flowrl.train.prompts import read_prompts_file

PROMPTS = Path(__file__).resolve().parents[2] / "prompts"


def test_text_and_jsonl_prompts(tmp_path):
    text = tmp_path / "p.txt"
    text.write_text("# comment\na red circle\n\ntwo blue squares\n")
    assert read_prompts_file(text) == ["a red circle", "two blue squares"]
    rows = read_prompts_file(PROMPTS / "geneval_shapes_test.jsonl")
    assert len(rows) == 18 and rows[0] == "a yellow triangle"


def test_bad_jsonl_lines_are_named(tmp_path):
    path = tmp_path / "p.jsonl"
    path.write_text('{"prompt": "a red circle"}\n{oops\n\n{"text": "x"}\n')
    with pytest.raises(ValueError, match=r"2 bad line\(s\): line 2: invalid JSON .*; line 4: needs a non-empty"):
        read_prompts_file(path)
    empty = tmp_path / "e.jsonl"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="holds no prompts"):
        read_prompts_file(empty)
