"""The arithmetic task's strict exact match, and reward loading by name."""

import pytest

from flowrl.text.task_rewards import load_text_reward


def test_exact_match_eos_by_hand():
    fn = load_text_reward("exact_match_eos")
    meta = [
        {"answer": "46", "terminated": True},  # right and stopped
        {"answer": "46", "terminated": False},  # right digits but no EOS: the model did not stop
        {"answer": "-333", "terminated": True},
        {"answer": "46", "terminated": True},  # extra text around the number
    ]
    out = fn(["46", "46", "-333", "x46"], ["p"] * 4, meta)
    assert out.tolist() == [1.0, 0.0, 1.0, 0.0]


def test_registry_names_and_errors():
    assert load_text_reward("exact_match").name == "exact_match"  # rewards.REWARDS' free-text version
    with pytest.raises(ValueError, match="Text-task rewards here: \\['chain_result', 'exact_match_eos', 'rubric'\\]"):
        load_text_reward("no_such_reward")
